"""Change log: what changed between two versions of the dictionary, breaking changes flagged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Column properties whose change breaks a reader: a query, a join or a unit assumption.
BREAKING = ("type", "unit", "primary_key", "references")


@dataclass(frozen=True)
class Change:
    kind: str  # added | removed | changed
    id: str  # table or column id
    detail: str
    breaking: bool


def load(source: str | Path) -> dict[str, Any]:
    """A snapshot file (docs/dictionary/versions/X.json), or 'current' for the code's own."""
    if str(source) == "current":
        from vitalflow.dictionary.model import as_dict

        return as_dict()
    return json.loads(Path(source).read_text())


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Tables and columns added, removed or changed from old to new. Removing or retyping a
    column, changing its unit, key or join, or a column becoming nullable breaks readers."""
    changes: list[Change] = []
    before, after = ({t["id"]: t for t in d["tables"]} for d in (old, new))
    for table_id in sorted(before.keys() - after.keys()):
        changes.append(Change("removed", table_id, "table removed", True))
    for table_id in sorted(after.keys() - before.keys()):
        changes.append(Change("added", table_id, "table added", False))
    for table_id in sorted(before.keys() & after.keys()):
        changes += _table_changes(before[table_id], after[table_id])
    return changes


def _table_changes(old: dict, new: dict) -> list[Change]:
    changes = []
    for key in ("description", "owner"):
        if old.get(key) != new.get(key):
            changes.append(Change("changed", old["id"], f"{key}: {old.get(key)!r} -> "
                                  f"{new.get(key)!r}", False))
    if old.get("primary_key") != new.get("primary_key"):
        changes.append(Change("changed", old["id"], f"primary key {old.get('primary_key')} -> "
                              f"{new.get('primary_key')}", True))
    before = {c["name"]: c for c in old.get("columns", [])}
    after = {c["name"]: c for c in new.get("columns", [])}
    for name in sorted(before.keys() - after.keys()):
        changes.append(Change("removed", f"{old['id']}.{name}", "column removed", True))
    for name in sorted(after.keys() - before.keys()):
        column = after[name]
        changes.append(Change("added", column["id"], f"column added ({column['type']}"
                              f"{'' if column['nullable'] else ', not null'})", False))
    for name in sorted(before.keys() & after.keys()):
        was, now = before[name], after[name]
        for key in sorted(set(was) | set(now)):
            if key in ("comment", "referenced_by", "feeds") or was.get(key) == now.get(key):
                continue
            breaking = key in BREAKING or (key == "nullable" and now[key])
            changes.append(Change("changed", now["id"], f"{key}: {was.get(key)!r} -> "
                                  f"{now.get(key)!r}", breaking))
    return changes


def write_snapshot(dictionary: dict[str, Any], folder: Path) -> Path:
    """The dictionary of this release, kept in the repository (docs/dictionary/versions)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dictionary['version']}.json"
    path.write_text(json.dumps(dictionary, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    return path
