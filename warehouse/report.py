"""The data-quality and coverage report of a snapshot: one self-contained HTML page.

Charts are inline SVG drawn here (no JavaScript, no fonts or styles from the network), so the
page opens anywhere, offline, and can be archived with the snapshot. The build writes it into
the snapshot as `report.html` before the snapshot is frozen; `unioncat report` draws it again
from a published snapshot into a file of your choice (snapshots are read-only).

Sections: headline figures; records and unique holdings per library; overlap heatmap of the
libraries holding most; coverage by city and by CLC class; quarantine by reason; change since
the parent snapshot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from unioncat import atomic
from unioncat.settings import Settings
from warehouse import locks

HEATMAP_LIBRARIES = 20
COLOURS = {"records": "#9dbcd4", "unique": "#1f5f8b", "shared": "#9dbcd4", "only": "#c8553d", "bad": "#c8553d",
           "added": "#3a8d5c", "updated": "#1f5f8b", "merged": "#8a6bb0", "split": "#d08c2d", "deleted": "#c8553d"}
LEVEL_NAMES = {"province": "省馆", "city": "市馆", "county": "县区馆"}
CHANGE_KINDS = ("added", "updated", "merged", "split", "deleted")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float  # full bar
    part: float = 0  # darker part drawn over it, from the left
    note: str = ""  # text after the bar
    colour: str = ""  # instead of the chart's colours


# ---- SVG ------------------------------------------------------------------------------------------


def _text(x: float, y: float, content: str, *, anchor: str = "start", size: int = 12, cls: str = "", ink: str = "") -> str:
    css = f' class="{cls}"' if cls else ""
    style = f' style="fill:{ink}"' if ink else ""  # a style, not a fill attribute: the page's CSS would win over that
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"{css}{style}>{escape(content)}</text>'


def text_px(content: str, size: float) -> float:
    """Roughly how wide `content` is drawn at `size` px: Han characters and full-width forms
    are one em, the rest about 0.62 em (generous for digits and Latin in a sans-serif)."""
    import unicodedata

    return sum(size if unicodedata.east_asian_width(c) in "WF" else 0.62 * size for c in content)


CHART_WIDTH = 1100  # fits the page's main column (1180 px less the section's padding)


def bar_chart(bars: list[Bar], *, colours: tuple[str, str], width: int = CHART_WIDTH, row: int = 18, title: str = "",
              top: float | None = None, label_size: int = 11) -> str:
    """Horizontal bars with a darker part (e.g. records, and the unique holdings among them).
    The label column and the room for the note after the longest bar are measured from the
    texts, so nothing is clipped; `top` shares one scale between charts drawn side by side."""
    if not bars:
        return '<p class="empty">nothing to show</p>'
    top = top or max(b.value for b in bars) or 1
    label_width = int(max(text_px(b.label, label_size) for b in bars)) + 12
    notes = [b.note or f"{b.value:,.0f}" for b in bars]
    # As wide as every bar's note still fits after it: bar + 6 px + note <= width.
    room = width - label_width - 14
    plot = min([room] + [(room - text_px(note, 10)) / (b.value / top) for b, note in zip(bars, notes) if b.value > 0])
    plot = max(plot, 40.0)
    height = row * len(bars) + 28
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
             f"<title>{escape(title)}</title>"]
    for tick in _ticks(top):
        x = label_width + plot * tick / top
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 22}" class="grid"/>')
        parts.append(_text(x, height - 8, f"{tick:,.0f}", anchor="middle", size=10, cls="axis"))
    for n, (bar, note) in enumerate(zip(bars, notes)):
        y = n * row
        full, part = plot * bar.value / top, plot * bar.part / top
        parts.append(_text(label_width - 6, y + row * 0.72, bar.label, anchor="end", size=label_size))
        parts.append(f'<rect x="{label_width}" y="{y + 2}" width="{full:.1f}" height="{row - 4}" fill="{bar.colour or colours[0]}">'
                     f"<title>{escape(bar.label)}: {bar.value:,.0f}</title></rect>")
        if bar.part:
            parts.append(f'<rect x="{label_width}" y="{y + 2}" width="{part:.1f}" height="{row - 4}" fill="{bar.colour or colours[1]}">'
                         f"<title>{escape(bar.label)}: {bar.part:,.0f}</title></rect>")
        parts.append(_text(label_width + full + 6, y + row * 0.72, note, size=10, cls="note"))
    parts.append("</svg>")
    return "".join(parts)


def _ticks(top: float) -> list[float]:
    """Round tick values from 0 to `top`, at most 6 steps."""
    base = 10 ** max(len(str(int(top))) - 2, 0)
    step = next(base * f for f in (1, 2, 5, 10, 20, 50, 100) if top / (base * f) <= 6)
    return [step * k for k in range(int(top // step) + 1)]


def _shade(share: float) -> str:
    """White-blue to dark blue for 0-1."""
    return f"rgb({int(247 - 216 * share)},{int(251 - 156 * share)},{int(255 - 116 * share)})"


def heatmap(labels: list[str], matrix: list[list[float | None]], *, title: str, cell: int = 32) -> str:
    """A square matrix of shares 0-1 (None on the diagonal), darker = more shared, with its
    value in percent in each cell and a legend; label room is measured from the labels."""
    if not labels:
        return '<p class="empty">nothing to show</p>'
    import math

    top = max((v for r in matrix for v in r if v is not None), default=0) or 1
    longest = max(text_px(label, 12) for label in labels)
    left = int(longest) + 14
    head = int(longest * math.sin(math.radians(55))) + 18
    size = cell * len(labels)
    legend_x = left + size + 24
    width = max(legend_x + 110, left + size + int(longest * math.cos(math.radians(55))) + 16)
    height = head + size + 10
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
             f"<title>{escape(title)}</title>"]
    for i, label in enumerate(labels):
        parts.append(_text(left - 8, head + i * cell + cell * 0.62, label, anchor="end", size=12))
        x = left + i * cell + cell * 0.62
        parts.append(f'<text transform="translate({x:.1f},{head - 8}) rotate(-55)" font-size="12">{escape(label)}</text>')
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            x, y = left + j * cell, head + i * cell
            if value is None:
                parts.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="#eceef1"/>')
                continue
            shade = value / top
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{_shade(shade)}">'
                         f"<title>{escape(labels[i])} × {escape(labels[j])}: Jaccard {value:.3f}</title></rect>")
            parts.append(_text(x + (cell - 1) / 2, y + cell * 0.64, f"{value * 100:.0f}", anchor="middle", size=11,
                               ink="#fff" if shade > 0.5 else "#1d2a36"))
    parts.append(_text(legend_x, head - 8, "Jaccard, %", size=11, cls="axis"))
    steps = 6
    for k in range(steps):
        share = k / (steps - 1)
        y = head + k * 24
        parts.append(f'<rect x="{legend_x}" y="{y}" width="20" height="20" fill="{_shade(share)}" stroke="#d5d9de"/>')
        parts.append(_text(legend_x + 28, y + 14, f"{top * share * 100:.0f}", size=11))
    parts.append("</svg>")
    return "".join(parts)


# ---- data -----------------------------------------------------------------------------------------


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    return con.sql(sql, params=params).to_arrow_table().to_pylist() if params else con.sql(sql).to_arrow_table().to_pylist()


def gather(con, parent_manifest: dict | None) -> dict:
    """Everything the page shows, read from a snapshot's catalogue."""
    totals = _rows(con, """
        select (select count(*) from libraries) as libraries, (select count(*) from records) as records,
               (select count(*) from manifestations) as manifestations,
               (select count(*) from manifestations where n_libraries > 1) as shared,
               (select count(*) from manifestations where n_libraries = 1) as unique_holdings,
               (select count(*) from quarantine) as quarantined,
               (select count(*) from holdings_distribution) as holdings_distribution,
               (select count(*) from changes) as changes
    """)[0]
    libraries = _rows(con, "select * from library_stats order by records desc, library_id")
    top = [r["library_id"] for r in sorted(libraries, key=lambda r: (-r["manifestations"], r["library_id"]))[:HEATMAP_LIBRARIES]]
    overlap = _rows(con, "select library_a, library_b, jaccard from library_overlap where list_contains(?, library_a) "
                         "and list_contains(?, library_b)", [top, top]) if top else []
    return {
        "totals": totals,
        "libraries": libraries,
        "heatmap": {"libraries": top, "jaccard": {(r["library_a"], r["library_b"]): r["jaccard"] for r in overlap}},
        "cities": _rows(con, "select * from city_coverage"),
        "classes": _rows(con, "select * from class_coverage"),
        "quarantine": _rows(con, "select reason, count(*) as n, count(distinct library_id) as libraries "
                                 "from quarantine group by all order by n desc, reason"),
        "changes": dict(con.sql("select change, count(*) from changes group by all").fetchall()),
        "parent_counts": (parent_manifest or {}).get("counts"),
        "parent": (parent_manifest or {}).get("snapshot_id"),
    }


# ---- page -----------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, "Noto Sans CJK SC", "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 0; color: #222; background: #f6f7f9; }
header { background: #1f3b57; color: #fff; padding: 22px 40px; }
header > div { max-width: 1180px; margin: 0 auto; }
header h1 { margin: 0 0 6px; font-size: 24px; font-weight: 600; }
header p { margin: 0; opacity: .85; font-size: 13px; }
main { padding: 10px 40px 40px; max-width: 1180px; margin: 0 auto; }
h3 { font-size: 14px; margin: 16px 0 6px; font-weight: 600; color: #333; }
svg.chart { display: block; max-width: 100%; height: auto; }
section { background: #fff; border-radius: 8px; padding: 18px 24px; margin: 18px 0; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 18px; margin: 0 0 4px; font-weight: 600; }
p.lead { margin: 0 0 12px; color: #555; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 18px; }
.card { background: #fff; border-radius: 8px; padding: 12px 16px; flex: 1 1 110px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.card b { display: block; font-size: 24px; font-weight: 600; color: #1f3b57; }
.card span { font-size: 12px; color: #666; }
.legend { font-size: 12px; color: #444; margin: 4px 0 8px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin: 0 4px -1px 12px; }
svg.chart text { fill: #333; }
svg.chart text.axis, svg.chart text.note { fill: #666; }
svg.chart line.grid { stroke: #e4e6ea; }
table { border-collapse: collapse; font-size: 12px; margin-top: 10px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eceef1; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { color: #555; font-weight: 600; }
.empty { color: #777; font-style: italic; }
.columns { display: flex; gap: 24px; flex-wrap: wrap; }
"""


def _legend(*items: tuple[str, str]) -> str:
    return '<div class="legend">' + "".join(f'<i style="background:{c}"></i>{escape(n)}' for n, c in items) + "</div>"


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value if value is not None else "–")


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun if n == 1 else noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def _section(anchor: str, title: str, lead: str, *body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2><p class="lead">{escape(lead)}</p>{"".join(body)}</section>'


def _library_label(row: dict) -> str:
    return f"{row['name']} {row['library_id']}"


LEVEL_GROUPS = (("province and city libraries", ("province", "city")), ("county libraries", ("county",)))
TWO_COLUMNS_FROM = 30  # bars; more than this are drawn in two columns on one scale


def _libraries_section(data: dict) -> str:
    rows = data["libraries"]
    charts = []
    for name, levels in LEVEL_GROUPS:
        group = [r for r in rows if r["level"] in levels]
        other = [r for r in rows if r["level"] not in {lv for _, lvs in LEVEL_GROUPS for lv in lvs}]
        group += other if levels == LEVEL_GROUPS[-1][1] else []  # a level we do not know goes last, not nowhere
        if not group:
            continue
        bars = [Bar(_library_label(r), r["records"], r["unique_holdings"],
                    f"{r['records']:,} · {r['unique_holdings']:,} unique") for r in group]
        top = max(b.value for b in bars) or 1
        title = f"records and unique holdings: {name}"
        if len(bars) > TWO_COLUMNS_FROM:
            half = (len(bars) + 1) // 2
            columns = [bar_chart(bars[:half], colours=(COLOURS["records"], COLOURS["unique"]), width=(CHART_WIDTH - 24) // 2,
                                 row=17, top=top, title=f"{title}, 1 of 2"),
                       bar_chart(bars[half:], colours=(COLOURS["records"], COLOURS["unique"]), width=(CHART_WIDTH - 24) // 2,
                                 row=17, top=top, title=f"{title}, 2 of 2")]
            chart = '<div class="columns">' + "".join(columns) + "</div>"
        else:
            chart = bar_chart(bars, colours=(COLOURS["records"], COLOURS["unique"]), row=19, title=title)
        charts.append(f"<h3>{escape(name[0].upper() + name[1:])} ({len(group)})</h3>{chart}")
    return _section("libraries", "Records and unique holdings per library",
                    "Each library's records (light) and, among its manifestations, those no other library holds (dark), "
                    "sorted by records. Province and city libraries hold far more than county ones, so each group has "
                    "its own scale.",
                    _legend(("records", COLOURS["records"]), ("unique holdings", COLOURS["unique"])), *charts)


def _overlap_section(data: dict) -> str:
    ids = data["heatmap"]["libraries"]
    names = {r["library_id"]: r["name"] for r in data["libraries"]}
    jaccard = data["heatmap"]["jaccard"]
    matrix = [[None if a == b else jaccard.get((a, b), 0.0) for b in ids] for a in ids]
    return _section("overlap", f"Overlap between the {len(ids)} libraries holding most",
                    "Jaccard similarity of the manifestations two libraries hold (shared ÷ held by either), in percent. "
                    "All pairs are in the catalogue's library_overlap table.",
                    heatmap([names[i] for i in ids], matrix, title="library overlap (Jaccard)"))


def _coverage_section(data: dict) -> str:
    cities = [Bar(r["city"], r["manifestations"], r["only_in_city"],
                  f"{r['manifestations']:,} ({r['share_of_catalogue']:.0%}) · {r['only_in_city']:,} only here") for r in data["cities"]]
    classes = [Bar(f"{r['class']} {r['name']}", r["manifestations"], r["held_by_one_library"],
                   f"{r['manifestations']:,} · {r['held_by_one_library']:,} in one library") for r in data["classes"]]
    return (_section("cities", "Coverage by city",
                     "Manifestations held by at least one library of the city (light); dark: held in no other city.",
                     _legend(("held in the city", COLOURS["shared"]), ("only in this city", COLOURS["only"])),
                     bar_chart(cities, colours=(COLOURS["shared"], COLOURS["only"]), title="coverage by city"))
            + _section("classes", "Coverage by CLC class",
                       "Manifestations per top class of the Chinese Library Classification (first letter of the first CLC "
                       "number); dark: held by one library only.",
                       _legend(("manifestations", COLOURS["shared"]), ("held by one library", COLOURS["only"])),
                       bar_chart(classes, colours=(COLOURS["shared"], COLOURS["only"]),
                                 title="coverage by CLC class")))


def _quarantine_section(data: dict) -> str:
    rows = data["quarantine"]
    read = data["totals"]["records"] + data["totals"]["quarantined"]
    chart = bar_chart([Bar(r["reason"], r["n"], r["n"], _plural(r["n"], "record") + " in " + _plural(r["libraries"], "library")
                           + f" ({r['n'] / read:.2%} of the records read)") for r in rows],
                      colours=(COLOURS["bad"], COLOURS["bad"]), width=800, title="quarantine by reason")
    worst = [r for r in sorted(data["libraries"], key=lambda r: (-r["quarantined"], r["library_id"])) if r["quarantined"]][:10]
    table = _table(["library", "records", "quarantined"], [[_library_label(r), r["records"], r["quarantined"]] for r in worst]) if worst else ""
    return _section("quarantine", "Quarantine by reason",
                    "Source records that could not be read; they are kept with their bytes in quarantine.parquet "
                    "(per library: unioncat status).", chart, table)


def _changes_section(data: dict) -> str:
    counts = data["changes"]
    bars = [Bar(kind, counts.get(kind, 0), colour=COLOURS[kind]) for kind in CHANGE_KINDS]
    chart = bar_chart(bars, colours=(COLOURS["updated"], COLOURS["updated"]), width=700,
                      title="manifestations changed since the parent snapshot") if counts else \
        '<p class="empty">No manifestation changed.</p>'

    parent = data["parent"]
    if not parent:
        return _section("changes", "Change since the last snapshot", "The first snapshot: every manifestation is added.", chart)
    table = ""
    if data["parent_counts"]:
        before, now = data["parent_counts"], data["totals"]
        rows = [[label, before.get(key, 0), now[ours], now[ours] - before.get(key, 0)]
                for label, key, ours in (("records", "records", "records"), ("manifestations", "manifestations", "manifestations"),
                                         ("library holdings", "holdings_distribution", "holdings_distribution"),
                                         ("quarantined", "quarantine", "quarantined"))]
        table = _table(["", f"parent {parent}", "this snapshot", "change"], rows)
    return _section("changes", "Change since the last snapshot",
                    f"Manifestations added, updated, merged, split or deleted since snapshot {parent} (changes.parquet).",
                    chart, table)


def render(data: dict, snapshot_id: str) -> str:
    t = data["totals"]
    share = t["shared"] / t["manifestations"] if t["manifestations"] else 0
    cards = [("libraries", t["libraries"]), ("records", t["records"]), ("manifestations", t["manifestations"]),
             (f"held by 2+ libraries ({share:.0%})", t["shared"]), ("held by one library", t["unique_holdings"]),
             ("quarantined records", t["quarantined"]),
             ("changes since parent" if data["parent"] else "added (first snapshot)", t["changes"])]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join((
        '<div class="cards">' + "".join(f'<div class="card"><b>{v:,}</b><span>{escape(k)}</span></div>' for k, v in cards) + "</div>",
        _libraries_section(data), _overlap_section(data), _coverage_section(data),
        _quarantine_section(data), _changes_section(data),
    ))
    return (f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>unioncat report · snapshot {escape(snapshot_id)}</title><style>{STYLE}</style></head><body>"
            f"<header><div><h1>Union catalogue · snapshot {escape(snapshot_id)}</h1>"
            f"<p>Data quality and coverage · parent {escape(data['parent'] or 'none')} · generated {generated}</p></div></header>"
            f"<main>{body}</main></body></html>")


def _parent_manifest(parent: Path | None) -> dict | None:
    path = parent / "manifest.json" if parent else None
    return json.loads(path.read_text(encoding="utf-8")) if path and path.is_file() else None


def write_report(snapshot: Path, snapshot_id: str, parent: Path | None, output: Path | None = None) -> Path:
    """Draw the report of the snapshot in `snapshot` (its catalogue must be built) into `output`
    (default: the snapshot's report.html)."""
    output = output or snapshot / "report.html"
    with locks.open_catalogue(snapshot) as con:
        data = gather(con, _parent_manifest(parent))
    atomic.write_bytes(output, render(data, snapshot_id).encode("utf-8"))
    return output


def regenerate_report(settings: Settings, snapshot: Path, output: Path) -> Path:
    """The report of a published snapshot (hold `locks.reading` around it), written to `output`."""
    manifest = json.loads((snapshot / "manifest.json").read_text(encoding="utf-8"))
    parent = settings.published_dir / manifest["parent"] if manifest.get("parent") else None
    return write_report(snapshot, manifest["snapshot_id"], parent, output)
