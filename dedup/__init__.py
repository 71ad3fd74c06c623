"""Deduplication: records of ~100 libraries → manifestations and works with stable ids.

Entry point `dedup.stage.deduplicate`; the rules in `dedup.rules`; measuring in
`dedup.evaluate`, `dedup.baselines`, `dedup.datasets`.
"""
