"""Derive: refined -> derived tables, incrementally, one owner flow per table.

run.py (changed persons, metrics in DuckDB, changed rows written; the same on every engine) ·
sql.py (category and age-band expressions, owner flow names) · metrics.py (the Python twins).
"""
