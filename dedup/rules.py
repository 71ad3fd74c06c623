"""Every threshold and weight of the matcher, in one place, with the reason for each.

The matcher is a hand-weighted Fellegi–Sunter model: each field of a candidate pair is
compared into a level (exact, near, different, missing…), each level adds a weight (roughly
log2 of how much more often that level occurs between records of one manifestation than
between records of two different ones), and a pair whose summed weight reaches
`MATCH_THRESHOLD` is accepted — unless a hard rule (`VETOES`) forbids it. Weights were set
by hand and adjusted on two data sets: the generated province (seed 20261125) and DBLP-ACM
(whose articles lack publisher, pages and ISBN, so title, author and year levels had to carry
the decision); they were then checked, unchanged, on provinces generated with other seeds and
on the Pride and Prejudice editions (BENCHMARKS.md). They are plain data: a change here — or in
the code that computes features, blocks or scores — changes `fingerprint()`, and the next
dedup run re-matches everything instead of reusing cached pairs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from transforms import normalise

# ---- blocking: which records are compared at all ------------------------------------------------

# A block is the set of records sharing one key value. Keys (see blocking.py):
#   isbn             a valid ISBN-13 (every ISBN of the record)
#   issn             an ISSN
#   title_year       title key + year
#   title_author     title key + first author key
#   title_publisher  title key + publisher key (records without year or author)
#   author_year      an author's surname + year (a title rewritten by one source)
#   pinyin_publisher toneless pinyin of the title + publisher key (繁/简 forms opencc misses, homophone typos)
#   prefix_year      first TITLE_PREFIX_CHARS of the title key + year (a differing subtitle or ending)
TITLE_PREFIX_CHARS = 12
# Blocks up to this size compare every pair of their nodes (twin records count once, dedup.nodes).
# A larger block (a popular title from many publishers, a set ISBN on every volume, a generic
# title) is sorted (volume, edition, title, authors, publisher, pages, year) and each node is
# compared with its next BLOCK_WINDOW neighbours only: nodes of one manifestation sort together,
# so the chain of neighbour links still connects them, and the cost stays linear. Twins no longer
# take up the window, so 4 neighbours find what 8 did over records: on the 1M-record province
# pairs fell from 2.70M to 1.57M at the same precision and recall (BENCHMARKS.md).
BLOCK_ALL_PAIRS_MAX = 8
BLOCK_WINDOW = 4

# ---- field comparisons -------------------------------------------------------------------------

# Title keys (title proper + subtitle, folded) compared with rapidfuzz ratio (0-100).
TITLE_NEAR = 90  # a dropped or changed character in a long title, punctuation kept as a letter
TITLE_SIMILAR = 80  # a changed word in a short title
TITLE_WEAK = 60  # a rewritten title (`Career forum` / `Introduction to the Career Forum Column`);
# below TITLE_WEAK the titles are different books: a veto, whatever else agrees
# A title key that contains the other (subtitle given by one library only) is `near` when the
# shorter one is long enough not to be a generic word (数学, 史记 are inside many titles).
CONTAINED_TITLE_MIN_CHARS = 6
# "Long" titles carry more evidence: an exact 40-character title is nearly unique, a 2-character
# one (活着) is printed by a dozen publishers. Han characters count double (each carries about as
# much as a Western word's worth of letters).
LONG_TITLE_CHARS = 24
# Author lists compared as sets of name tokens (rapidfuzz token_set_ratio): `Austen, Jane` and
# `Jane Austen` agree; a translator missing on one side is a subset and still agrees.
AUTHORS_NEAR = 85
# Publisher keys (legal-form words already stripped): `Penguin` and `Penguin Books` agree by
# prefix; ratio for typos.
PUBLISHER_NEAR = 85
PUBLISHER_PREFIX_MIN_CHARS = 5
# Years: the same edition is dated `2015`, `2015.3`, `c2015`, `[2015]` (all parse to 2015); a
# reprint dated a year later is still tolerated, two years is another edition.
YEAR_TOLERANCE = 1
# Page counts: `320页` and `xii, 320 p.` parse alike; prelims counted or not differ a little in a
# long book. The canonical `pages` of an ancient book is its number of volumes (`12册`): there one
# more volume is another imprint, hence no absolute slack.
PAGES_TOLERANCE_ABS = 0
PAGES_TOLERANCE_REL = 0.02

# ---- weights (log2 Bayes factors, rounded) -----------------------------------------------------

WEIGHTS: dict[str, dict[str, float]] = {
    # title agreement is necessary, not sufficient: popular titles come from many publishers
    # near and similar weigh the same: on the benchmarks a 90 vs an 80 ratio did not separate
    # matches from non-matches once authors and year are counted; the levels stay apart in evidence
    "title": {"exact": 6, "near": 4, "similar": 4, "weak": -2},
    "title_long": {"exact": 3, "near": 3, "similar": 2},  # added when the shorter title is long
    "authors": {"agree": 3, "near": 2, "missing": 0, "different": -5},
    "authors_many": {"yes": 3},  # added when two or more surnames agree: a list of names is specific
    # the same title by a different publisher is another manifestation (红楼梦 by 12 publishers)
    "publisher": {"agree": 2, "near": 1, "missing": 0, "different": -5},
    "year": {"exact": 2, "near": -1, "missing": 0},
    "pages": {"agree": 1, "missing": 0, "different": -5},
    # ISBNs are shared by the volumes of a set and reused: strong, but never enough alone
    "isbn": {"shared": 4, "missing": 0},
    "issn": {"shared": 2, "missing": 0},
    # 205 given by one record only: mostly a first vs later edition
    "edition": {"agree": 1, "missing": 0, "one_sided": -2},
    "language": {"same": 0, "missing": 0, "different": -4},
}
# Accept a pair at this summed weight. A typical pair of one manifestation from two libraries
# scores 6 + 3 + 2 + 2 + 1 + 4 = 18 (title, authors, publisher, year, pages, ISBN); title +
# authors + publisher alone is 11; an article's long exact title + author + year (DBLP-ACM) 14;
# the same classic from another publisher in the same year 6 + 3 - 5 + 2 = 6.
MATCH_THRESHOLD = 10

# ---- hard rules: a pair (and any cluster holding it) must not be merged ------------------------
VETOES = (
    "different_part",  # volume/part keys differ (上 vs 下, 1 vs 2, a volume vs the whole set)
    "different_number",  # each title holds a number the other lacks (97/98中国发展报告, Part I/Part II, Windows 95/98)
    "different_edition",  # both give an edition statement and they differ (第2版 vs 第3版)
    "different_year",  # years further apart than YEAR_TOLERANCE
    "isbn_conflict",  # both have valid ISBNs and share none
    "different_title",  # titles below TITLE_WEAK (also when an ISBN is shared: reused ISBNs)
    "same_library",  # a library catalogues a book once: two of its records merge only when identical with an ISBN
)

# ---- works -------------------------------------------------------------------------------------
# A work groups manifestations with the same title proper (subtitle and `&`/`and` aside) that
# share an author surname (dedup.golden.build_works); no threshold to tune.


# Modules whose code decides a pair's blocks and score, beside this one.
MATCHING_CODE = ("rules.py", "features.py", "nodes.py", "blocking.py", "scoring.py")


def fingerprint() -> str:
    """Changes whenever a rule above, the matching code or the keys' definition (features are
    read with transforms.normalise) changes: cached features and pairs are then thrown away and
    the next run re-matches everything."""
    values = {name: value for name, value in globals().items() if name.isupper()} | {"keys": normalise.KEYS_VERSION}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode())
    for name in MATCHING_CODE:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]
