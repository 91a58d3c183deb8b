"""What a drill compares with a clean run: per refined and derived table, rows and a hash."""

from __future__ import annotations

import hashlib

from vitalflow.tables import DERIVED_TABLES, REFINED_TABLES

# Columns that say when, not what: they differ between any two runs.
WHEN = {"change_seq", "refined_at", "quarantined_at", "computed_at"}


def table_state(layers) -> dict[str, str]:
    """'<rows>:<md5 of the sorted rows without the when-columns>' per table, from whichever
    backend holds it."""
    state = {}
    for table, backend in [(t, layers.refined) for t in REFINED_TABLES] + \
                          [(t, layers.derived) for t in DERIVED_TABLES]:
        columns = [c for c in table.column_names if c not in WHEN]
        rows = sorted(repr([row[c] for c in columns])
                      for row in backend.read(table, columns).to_pylist())
        digest = hashlib.md5("\n".join(rows).encode(), usedforsecurity=False).hexdigest()
        state[table.qualified_name] = f"{len(rows)}:{digest}"
    return state


def state_at(url: str) -> dict[str, str]:
    """table_state of the PostgreSQL database at url (every layer in it)."""
    from vitalflow.config import load_settings
    from vitalflow.storage import open_layers

    layers = open_layers(load_settings(database={"url": url}), "postgres")
    try:
        return table_state(layers)
    finally:
        layers.close()
