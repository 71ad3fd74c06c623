"""ISBN and ISSN parsing: what libraries write (`7-5339-1234-5 (平装)`,
`9787533912345`, `ISBN 978-7-...`) into validated ISBN-13 keys."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from transforms.iso2709 import _speedups

_CANDIDATE = re.compile(r"(?<![0-9])(97[89][0-9]{9}[0-9]|[0-9]{9}[0-9X])(?![0-9X])")
_ISSN = re.compile(r"[0-9]{7}[0-9X]")
_SEPARATORS = re.compile(r"[\s\-‐‑–—]")
_ISBN10_WEIGHTS = range(10, 1, -1)
_ISBN13_WEIGHTS = (1, 3) * 6


def _compact(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _SEPARATORS.sub("", text.upper())


def isbn10_check_digit(first9: str) -> str:
    check = -sum(map(int.__mul__, map(int, first9), _ISBN10_WEIGHTS)) % 11
    return "X" if check == 10 else str(check)


def isbn10_is_valid(isbn: str) -> bool:
    return isbn[:9].isdigit() and isbn10_check_digit(isbn[:9]) == isbn[9]


def isbn13_check_digit(first12: str) -> str:
    total = sum(map(int.__mul__, map(int, first12), _ISBN13_WEIGHTS))
    return str(-total % 10)


def isbn13_is_valid(isbn: str) -> bool:
    return isbn.isdigit() and len(isbn) == 13 and isbn13_check_digit(isbn[:12]) == isbn[12]


def python_to_isbn13(raw: str) -> str | None:
    """The valid ISBN-13 in `raw`, converting an ISBN-10; None if there is none."""
    match = _CANDIDATE.search(_compact(raw))
    if not match:
        return None
    candidate = match.group()
    if len(candidate) == 13:
        return candidate if isbn13_is_valid(candidate) else None
    if not isbn10_is_valid(candidate):
        return None
    first12 = "978" + candidate[:9]
    return first12 + isbn13_check_digit(first12)


@lru_cache(maxsize=1 << 16)  # the same ISBN is written by many libraries
def to_isbn13(raw: str) -> str | None:
    """The valid ISBN-13 in `raw`, converting an ISBN-10; None if there is none."""
    if _speedups is None:
        return python_to_isbn13(raw)
    return _speedups.isbn13(raw if raw.isascii() else unicodedata.normalize("NFKC", raw))


def normalise_issn(raw: str) -> str | None:
    compact = _compact(raw)
    match = _ISSN.search(compact)
    if not match:
        return None
    issn = match.group()
    total = sum((8 - i) * int(c) for i, c in enumerate(issn[:7]))
    check = (11 - total % 11) % 11
    return f"{issn[:4]}-{issn[4:]}" if issn[7] == ("X" if check == 10 else str(check)) else None
