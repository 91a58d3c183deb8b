"""Refine and derive split into person-hash partitions that workers claim (docs/drills.md)."""
