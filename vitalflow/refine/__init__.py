"""Refine: raw batches -> refined tables, once per batch.

run.py (the stage: find work, standardise in worker processes, merge, ledger) · standardise.py,
fastpath.py, columnar.py, timestamps.py, rules.py, validation.py (records -> canonical rows or
a quarantine reason: well-formed records set-wise, the unusual ones by the per-record rules) ·
gate.py (terminology_step.py, whitelist.py, persons.py, pseudonyms) · merge.py (the set work,
once for every engine) · dry_run.py and cli.py (`vitalflow filter --dry-run`).
"""
