"""What the fault suite checks after a harvest: the records the test servers hold (the oracle),
the committed catalogue as the transform reads it, and that nothing partial reached the landing
zone."""

from __future__ import annotations

from pathlib import Path

from harvesters.landing import catalogue_pages
from transforms.readers import Accepted, Rejected, read_file, read_iso2709
from unioncat.settings import Settings

REPO = Path(__file__).resolve().parents[2]
LOC_FILE = REPO / "demo" / "real" / "loc_books_300.mrc"


def served_local_ids() -> set[str]:
    """The 001s of the records every test server holds."""
    return {r.row["local_id"] for r in read_iso2709(LOC_FILE.read_bytes(), library_id="T", run_id="r") if isinstance(r, Accepted)}


def catalogue_local_ids(settings: Settings, library_id: str) -> set[str]:
    """The 001s of the library's committed catalogue, read as the transform reads it; a page
    that is not whole fails here."""
    ids = set()
    for page in catalogue_pages(settings, library_id):
        for result in read_file(page, library_id=library_id, run_id="check"):
            assert not isinstance(result, Rejected), f"{page}: {result.reason} {result.detail}"
            ids.add(result.row["local_id"])
    return ids


def assert_landing_whole(settings: Settings) -> int:
    """Every page in the landing zone (committed or not) reads without a rejected record and no
    temp file is left; returns the number of pages checked."""
    landing = settings.data_dir / "landing"
    pages = [p for p in landing.rglob("*") if p.is_file()] if landing.exists() else []
    assert not [p for p in pages if p.name.endswith(".tmp")], "a temp file was left in the landing zone"
    checked = [p for p in pages if p.suffix in (".xml", ".mrc")]
    for page in checked:
        rejected = [r for r in read_file(page, library_id="T", run_id="check") if isinstance(r, Rejected)]
        assert not rejected, f"partial page {page}: {rejected[0].reason} {rejected[0].detail}"
    return len(checked)
