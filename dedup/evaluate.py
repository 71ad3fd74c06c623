"""Scoring a clustering against labelled data: pairwise and B-cubed precision/recall/F1,
cluster counts, and the errors listed by kind.

`evaluate` compares two mappings record_key → cluster label (only records in both count).
`evaluate_run` reads a dedup output folder and a truth CSV (`record_key,manifestation_label
[,work_label]`, as `unioncat.province` writes) — what `unioncat eval --truth FILE` prints.
Errors are classified with the records' matching features when they are available:
a false merge is `cross_volume`, `cross_edition`, `cross_year`, `cross_publisher`,
`same_title` or `other`; a missed merge names the first field its fragments disagree on.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from math import comb
from pathlib import Path
from typing import Mapping

import duckdb


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float

    @classmethod
    def of(cls, precision: float, recall: float) -> "Scores":
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(round(precision, 5), round(recall, 5), round(f1, 5))


@dataclass
class Evaluation:
    records: int
    pairwise: Scores
    bcubed: Scores
    predicted_clusters: int
    true_clusters: int
    exact_clusters: int  # predicted clusters identical to a true one
    true_pairs: int
    predicted_pairs: int
    false_merges: list[dict] = field(default_factory=list)  # kind, cluster, labels, record_keys
    missed_merges: list[dict] = field(default_factory=list)  # kind, label, clusters, record_keys

    @property
    def errors_by_kind(self) -> dict[str, int]:
        counts = Counter(f"false_merge:{e['kind']}" for e in self.false_merges)
        counts.update(f"missed_merge:{e['kind']}" for e in self.missed_merges)
        return dict(sorted(counts.items()))

    def as_dict(self) -> dict:
        return {
            "records": self.records, "pairwise": asdict(self.pairwise), "bcubed": asdict(self.bcubed),
            "predicted_clusters": self.predicted_clusters, "true_clusters": self.true_clusters,
            "exact_clusters": self.exact_clusters, "true_pairs": self.true_pairs,
            "predicted_pairs": self.predicted_pairs, "errors_by_kind": self.errors_by_kind,
        }

    def report(self, examples: int = 5) -> str:
        p, b = self.pairwise, self.bcubed
        lines = [
            f"records {self.records:,}; clusters predicted {self.predicted_clusters:,}, true {self.true_clusters:,}, "
            f"identical {self.exact_clusters:,}",
            f"pairwise  P {p.precision:.4f}  R {p.recall:.4f}  F1 {p.f1:.4f}  ({self.predicted_pairs:,} predicted, "
            f"{self.true_pairs:,} true pairs)",
            f"B-cubed   P {b.precision:.4f}  R {b.recall:.4f}  F1 {b.f1:.4f}",
        ]
        for kind, n in self.errors_by_kind.items():
            lines.append(f"  {kind}: {n}")
        for title, errors in (("false merges", self.false_merges), ("missed merges", self.missed_merges)):
            for error in errors[:examples]:
                lines.append(f"  e.g. {title[:-2]} [{error['kind']}] {', '.join(error['record_keys'][:4])}")
        return "\n".join(lines)


def _groups(labels: Mapping[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for key, label in labels.items():
        groups[label].append(key)
    return groups


_MERGE_KINDS = (("volume_key", "cross_volume"), ("edition_key", "cross_edition"), ("year", "cross_year"),
                ("publisher_key", "cross_publisher"))
_SPLIT_FIELDS = ("title_key", "volume_key", "edition_key", "authors_key", "publisher_key", "year", "pages", "isbn", "library_id")


def _merge_kind(a: dict | None, b: dict | None) -> str:
    if a is None or b is None:
        return "other"
    for name, kind in _MERGE_KINDS:
        if a.get(name) and b.get(name) and a[name] != b[name] or (name == "volume_key" and a.get(name) != b.get(name)):
            return kind
    return "same_title" if a.get("title_key") == b.get("title_key") else "other"


def _split_kind(a: dict | None, b: dict | None) -> str:
    if a is None or b is None:
        return "other"
    for name in _SPLIT_FIELDS:
        if a.get(name) != b.get(name):
            return f"{name.removesuffix('_key')}_differs" if a.get(name) and b.get(name) else f"{name.removesuffix('_key')}_missing"
    return "identical_keys"


def evaluate(truth: Mapping[str, str], predicted: Mapping[str, str], *, features: Mapping[str, dict] | None = None) -> Evaluation:
    """Compare `predicted` clusters with `truth` (both record_key → label) over their common records."""
    keys = sorted(set(truth) & set(predicted))
    true_of = {k: truth[k] for k in keys}
    pred_of = {k: predicted[k] for k in keys}
    both = Counter((pred_of[k], true_of[k]) for k in keys)
    pred_size, true_size = Counter(pred_of.values()), Counter(true_of.values())
    tp = sum(comb(n, 2) for n in both.values())
    predicted_pairs = sum(comb(n, 2) for n in pred_size.values())
    true_pairs = sum(comb(n, 2) for n in true_size.values())
    pairwise = Scores.of(tp / predicted_pairs if predicted_pairs else 1.0, tp / true_pairs if true_pairs else 1.0)
    n = len(keys) or 1
    bcubed = Scores.of(
        sum(both[(pred_of[k], true_of[k])] / pred_size[pred_of[k]] for k in keys) / n,
        sum(both[(pred_of[k], true_of[k])] / true_size[true_of[k]] for k in keys) / n,
    )
    pred_groups, true_groups = _groups(pred_of), _groups(true_of)
    exact = sum(1 for members in pred_groups.values() if len({true_of[k] for k in members}) == 1
                and true_size[true_of[members[0]]] == len(members))
    features = features or {}
    false_merges, missed = [], []
    for cluster, members in sorted(pred_groups.items()):
        by_label = _groups({k: true_of[k] for k in members})
        if len(by_label) > 1:
            first = [sorted(v)[0] for _, v in sorted(by_label.items())]
            kind = _merge_kind(features.get(first[0]), features.get(first[1]))
            false_merges.append(dict(kind=kind, cluster=cluster, labels=sorted(by_label), record_keys=sorted(members)))
    for label, members in sorted(true_groups.items()):
        by_cluster = _groups({k: pred_of[k] for k in members})
        if len(by_cluster) > 1:
            first = [sorted(v)[0] for _, v in sorted(by_cluster.items(), key=lambda item: -len(item[1]))]
            kind = _split_kind(features.get(first[0]), features.get(first[1]))
            missed.append(dict(kind=kind, label=label, clusters=sorted(by_cluster), record_keys=sorted(members)))
    return Evaluation(
        records=len(keys), pairwise=pairwise, bcubed=bcubed, predicted_clusters=len(pred_size),
        true_clusters=len(true_size), exact_clusters=exact, true_pairs=true_pairs, predicted_pairs=predicted_pairs,
        false_merges=false_merges, missed_merges=missed,
    )


def read_truth(path: Path, level: str = "manifestation", *, skip_label_prefix: str | None = None) -> dict[str, str]:
    """record_key → label from a truth CSV (`<level>_label` column)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(handle)
        return {r["record_key"]: r[f"{level}_label"] for r in rows
                if not (skip_label_prefix and r[f"{level}_label"].startswith(skip_label_prefix))}


def record_features(dedup_dir: Path, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, dict]:
    """Matching features of the last dedup run, by record key (for classifying errors)."""
    files = sorted(str(f) for f in (Path(dedup_dir) / "match_records.parquet").glob("*.parquet"))
    if not files:
        return {}
    con = con or duckdb.connect()
    table = con.sql("select * from read_parquet(?)", params=[files]).to_arrow_table()
    return {row["record_key"]: row for row in table.to_pylist()}


def evaluate_run(dedup_dir: Path, truth_path: Path, *, level: str = "manifestation",
                 skip_label_prefix: str | None = None, con: duckdb.DuckDBPyConnection | None = None) -> Evaluation:
    """`unioncat eval --truth FILE`: the dedup output in `dedup_dir` against a truth CSV.
    level: `manifestation` (manifestation_id vs manifestation_label) or `work` (work_id vs work_label).
    skip_label_prefix: leave out records whose label starts with it (e.g. `M-` for the real records
    of the demo province, whose source catalogues hold genuine duplicates)."""
    con = con or duckdb.connect()
    column = "manifestation_id" if level == "manifestation" else "work_id"
    predicted = dict(con.sql(f"select record_key, {column} from read_parquet('{Path(dedup_dir) / 'record_manifestation.parquet'}')").fetchall())
    truth = read_truth(Path(truth_path), level, skip_label_prefix=skip_label_prefix)
    return evaluate(truth, predicted, features=record_features(Path(dedup_dir), con))
