"""First-pass deduplication: records sharing a valid ISBN-13 are the same
manifestation when their titles agree and nothing vetoes the merge.

An ISBN alone never merges: every volume of a set shares the set's ISBN and
ISBNs are reused and mistyped, so volume, edition and year must agree too.
Records without a valid ISBN stay singletons until fuzzy matching arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz import fuzz

from transforms.normalise import fold_text, part_key

# Title keys are compared after normalisation; 85 tolerates a dropped
# character or a subtitle variant, not a different book.
TITLE_RATIO_MIN = 85.0
# A title key that contains the other whole (subtitle given or not) agrees
# when the shorter one is long enough not to be a generic word.
CONTAINED_TITLE_MIN_CHARS = 4
YEAR_TOLERANCE = 1


@dataclass(frozen=True)
class Candidate:
    record_key: str
    isbns: tuple[str, ...]
    title_key: str
    part: str
    edition: str
    year: int | None


def candidate(row: dict) -> Candidate:
    part = " ".join(p for p in (row.get("part_number"), row.get("part_name")) if p)
    return Candidate(
        record_key=row["record_key"],
        isbns=tuple(row.get("isbn") or ()),
        title_key=row["title_key"],
        part=part_key(part),
        edition=fold_text(row.get("edition") or "").replace(" ", ""),
        year=row.get("year"),
    )


def title_similarity(a: str, b: str) -> float:
    shorter, longer = sorted((a, b), key=len)
    if len(shorter) >= CONTAINED_TITLE_MIN_CHARS and shorter in longer:
        return 100.0
    return fuzz.ratio(a, b)


def veto(a: Candidate, b: Candidate) -> str | None:
    """The hard rule that forbids merging a and b, or None."""
    if a.part != b.part:
        return "different_part"
    if a.edition and b.edition and a.edition != b.edition:
        return "different_edition"
    if a.year and b.year and abs(a.year - b.year) > YEAR_TOLERANCE:
        return "different_year"
    if title_similarity(a.title_key, b.title_key) < TITLE_RATIO_MIN:
        return "different_title"
    return None


class _Clusters:
    """Union-find over record keys."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)


def cluster(candidates: list[Candidate]) -> dict[str, str]:
    """Map every record key to its cluster's representative record key.

    Within one ISBN block a record joins the first cluster all of whose members
    it may merge with; this keeps two volumes or editions apart even when a
    third record resembles both.
    """
    clusters = _Clusters()
    blocks: dict[str, list[Candidate]] = {}
    for c in sorted(candidates, key=lambda c: c.record_key):
        clusters.find(c.record_key)
        for isbn in c.isbns:
            blocks.setdefault(isbn, []).append(c)
    for block in blocks.values():
        groups: list[list[Candidate]] = []
        for c in block:
            home = next((g for g in groups if all(veto(c, member) is None for member in g)), None)
            if home is None:
                groups.append([c])
            else:
                home.append(c)
                clusters.union(home[0].record_key, c.record_key)
    return {c.record_key: clusters.find(c.record_key) for c in candidates}
