"""Whether every backend of a profile holds the description as its comments."""

from __future__ import annotations

from collections.abc import Iterator

from storage_backends.base import Backend
from vitalflow.dictionary.model import Problem
from vitalflow.storage import Layers
from vitalflow.tables import (DERIVED_TABLES, IDENTITY_TABLES, META_TABLES,
                              RAW_TABLES, REFINED_TABLES, Table)


def placements(layers: Layers) -> Iterator[tuple[Backend, Table, bool]]:
    """(backend, table, always there) for every described table the profile puts somewhere;
    tables that are not always there (record merging's) are compared only when they exist."""
    from vitalflow.merge.store import TABLES as MERGE_TABLES

    if hasattr(layers.raw, "backend"):  # raw on Iceberg; Parquet files carry no comments
        yield from ((layers.raw.backend, t, True) for t in RAW_TABLES)
    yield from ((layers.refined, t, True) for t in REFINED_TABLES)
    yield from ((layers.derived, t, True) for t in DERIVED_TABLES)
    yield from ((layers.control, t, True) for t in META_TABLES + IDENTITY_TABLES)
    yield from ((layers.control, t, False) for t in MERGE_TABLES)


def compare(backend: Backend, table: Table, required: bool = True) -> list[Problem]:
    """The engine's comments against the description: table comment, every described column
    present with its comment, no column the description does not know."""
    name, engine = table.qualified_name, backend.name
    held = backend.comments(table)
    if not held:
        return [Problem(name, None, f"not created in {engine}")] if required else []
    problems = []
    if held.get("", "") != table.comment:
        problems.append(Problem(name, None, f"{engine} table comment {held.get('')!r} differs "
                                f"from the description {table.comment!r}"))
    if not table.columns:  # listed with access rules only
        return problems
    for column in table.columns:
        if column.name not in held:
            problems.append(Problem(name, column.name, f"described but missing in {engine}"))
        elif held[column.name] != column.comment:
            problems.append(Problem(name, column.name, f"{engine} comment "
                                    f"{held[column.name]!r} differs from {column.comment!r}"))
    problems += [Problem(name, extra, f"in {engine} but not described")
                 for extra in held if extra and extra not in table.column_names]
    return problems


def database_problems(layers: Layers) -> list[Problem]:
    return [problem for backend, table, required in placements(layers)
            for problem in compare(backend, table, required)]
