"""Refine: raw batches -> refined tables, once per batch.

run.py (the stage: find work, standardise in worker processes, merge, ledger) · standardise.py,
fastpath.py, rules.py, validation.py (records -> canonical rows or a quarantine reason) ·
gate.py (terminology_step.py, whitelist.py, persons.py, pseudonyms) · merge.py (the set work,
once for every engine) · dry_run.py and cli.py (`vitalflow filter --dry-run`).
"""
