"""Chinese-first normalisation of catalogue text into matching keys.

Keys are for matching only; the displayed fields keep what the library wrote.
ASCII-only normalisation (stripping `[^a-z0-9]`) erases Chinese titles, so
everything here works on Unicode categories instead.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc
from pypinyin.pinyin_dict import pinyin_dict

# The definition of the keys: bumped when one changes, so that every library's staging
# is built again and no catalogue mixes keys of two definitions (2: per-character pinyin;
# 3: titles and names lose bidirectional overrides, TAB/LF become spaces).
KEYS_VERSION = "3"

_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_SPACE_BETWEEN_HAN = re.compile(rf"(?<={_HAN})\s+(?={_HAN})")
_SPACES = re.compile(r"\s+")
_HAN_CHAR = re.compile(_HAN)
# Text of CJK unified ideographs only (not the compatibility ones, which NFKC changes): NFKC,
# case folding, diacritics and separators leave it as it is, so folding it is t2s alone.
_ONLY_UNIFIED_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Everything that is not a letter or a digit separates words (\W is Unicode-aware).
_SEPARATORS = re.compile(r"[\W_]+")
_YEAR = re.compile(r"(1[0-9]{3}|20[0-9]{2})")
_PAGES = re.compile(r"(\d+)\s*(?:页|頁|p\b|pp\b|pages?\b|leaves\b|S\.)", re.IGNORECASE)
_FIRST_NUMBER = re.compile(r"\d+")
_PUBLISHER_SUFFIXES = ("有限责任公司", "股份有限公司", "有限公司", "总社")
_WESTERN_PUBLISHER_WORDS = re.compile(r"\b(inc|ltd|co|company|publishers?|publishing|press|verlag)\b")


@lru_cache(maxsize=1)
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1 << 17)  # titles and publishers repeat across libraries
def fold_text(text: str) -> str:
    """NFKC (full-width → half-width), traditional → simplified, case fold,
    diacritics off, punctuation and symbols to spaces, no spaces between Han."""
    if text.isascii():  # the common Western case: NFKC, casefold and the Han rules change nothing else
        return _SEPARATORS.sub(" ", text.lower()).strip()
    if _ONLY_UNIFIED_HAN.fullmatch(text):  # the common Chinese case: a name, a short title
        return _to_simplified().convert(text)
    return _folded(text)


def _folded(text: str) -> str:
    """fold_text of any text (not only ASCII, not only Han)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        if _HAN_CHAR.search(text):
            text = _to_simplified().convert(text)
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    text = _SEPARATORS.sub(" ", text)
    text = _SPACE_BETWEEN_HAN.sub("", text)
    return _SPACES.sub(" ", text).strip()


# What fold_text keeps of ASCII text once its spaces go: letters (lower-cased) and digits.
_ASCII_NOT_ALNUM = bytes(c for c in range(128) if not chr(c).isalnum())


def _compact_key(text: str) -> str:
    """fold_text(text) without its spaces."""
    if text.isascii():  # the same, without the regular expression: bytes.translate drops the rest
        return text.encode("ascii").lower().translate(None, _ASCII_NOT_ALNUM).decode("ascii")
    return fold_text(text).replace(" ", "")


@lru_cache(maxsize=1 << 17)
def title_key(title: str | None, subtitle: str | None = None) -> str:
    """Matching key of title proper + subtitle. Non-empty whenever the title has
    any visible character: a title made only of symbols keeps its symbols."""
    text = " ".join(part for part in (title, subtitle) if part)
    key = _compact_key(text)
    if not key:
        key = _SPACES.sub("", unicodedata.normalize("NFKC", text))
    return key


@lru_cache(maxsize=1)
def _toneless_readings() -> dict[str, str]:
    """Han character → its first (most common) reading in pypinyin's dictionary, toneless, ü as v."""
    def toneless(reading: str) -> str:
        reading = re.sub("[üǖǘǚǜ]", "v", reading)
        return _COMBINING.sub("", unicodedata.normalize("NFKD", reading))

    return {chr(code): toneless(readings.split(",", 1)[0]) for code, readings in pinyin_dict.items()}


@lru_cache(maxsize=1 << 16)
def pinyin_key(title: str | None) -> str | None:
    """Toneless pinyin of a title's Han characters, joined without spaces, as an
    extra matching key (catches homophone typos and 繁/简 forms opencc misses).
    Each character is read alone, without phrase segmentation (重庆 gives
    zhongqing): a key only has to agree across titles, and this is 5× faster."""
    if not title or title.isascii() or not _HAN_CHAR.search(title):
        return None
    readings = _toneless_readings()
    return "".join(readings[char] for char in fold_text(title) if char in readings) or None


@lru_cache(maxsize=1 << 17)
def author_key(name: str | None) -> str:
    return _compact_key(name or "")


@lru_cache(maxsize=1 << 14)
def publisher_key(publisher: str | None) -> str:
    key = fold_text(publisher or "")
    for suffix in _PUBLISHER_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
            break
    return _WESTERN_PUBLISHER_WORDS.sub("", key).replace(" ", "")


def part_key(part: str | None) -> str:
    """Volume designations compared across libraries: `第 1 册`, `第1册`, `1` and
    `v. 1` agree on the number; `上` / `下` stay as written."""
    folded = fold_text(part or "")
    number = _FIRST_NUMBER.search(folded)
    return number.group() if number else folded.replace(" ", "")


@lru_cache(maxsize=1 << 14)  # dates and extents repeat across records: "2015", "320页"
def parse_year(text: str | None) -> int | None:
    """First plausible year in `2015.3`, `c2015`, `[2015]`, `2015年`."""
    if not text:
        return None
    match = _YEAR.search(text if text.isascii() else unicodedata.normalize("NFKC", text))
    return int(match.group()) if match else None


@lru_cache(maxsize=1 << 14)
def parse_pages(extent: str | None) -> int | None:
    """Page count from `320页`, `xii, 320 p.`, `320p`; None when unclear."""
    if not extent:
        return None
    text = extent if extent.isascii() else unicodedata.normalize("NFKC", extent)
    match = _PAGES.search(text) or _FIRST_NUMBER.search(text)
    if not match:
        return None
    pages = int(match.group(1) if match.re is _PAGES else match.group())
    return pages if 0 < pages < 100_000 else None
