"""Re-keying: every pseudonym (and shifted date) moves to a new key in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from vitalflow.privacy.keys import PseudonymKey
from vitalflow.privacy.pseudonym import UNSHIFTED, pseudonyms, shifts
from vitalflow.privacy.settings import PrivacySettings
from vitalflow.tables import ALL_TABLES, Pii

# (table, column) pairs holding pseudonyms: the described tables, plus those vitalflow.database
# adds beside them (observations waiting for their patient; patients whose derived rows changed).
PSEUDONYM_COLUMNS: tuple[tuple[str, str], ...] = (
    *((t.qualified_name, c.name) for t in ALL_TABLES for c in t.columns if c.pii == Pii.PSEUDONYM),
    ("refined.observation_pending", "patient_key"),
    ("meta.patient_touch", "patient_key"),
)


def _shifted_dates() -> list[tuple[str, str, str]]:
    found = []
    for table in ALL_TABLES:
        people = [c.name for c in table.columns if c.pii == Pii.PSEUDONYM]
        found += [(table.qualified_name, people[0], c.name) for c in table.columns
                  if people and c.type in ("date", "timestamp") and c.name not in UNSHIFTED]
    return found


# (table, pseudonym column, date column): dates moved by a patient's shift (when shifting is on).
SHIFTED_DATE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    *_shifted_dates(), ("refined.observation_pending", "patient_key", "effective_at"))


class RekeyError(RuntimeError):
    """Re-keying was refused; nothing was changed."""


@dataclass
class RekeyResult:
    old_key_id: str
    new_key_id: str
    identities: int
    rows: dict[str, int] = field(default_factory=dict)  # "table.column" -> rows rewritten


def rekey(conn: psycopg.Connection, old_key: PseudonymKey, new_key: PseudonymKey,
          columns: Sequence[tuple[str, str]] = PSEUDONYM_COLUMNS,
          shifted: Sequence[tuple[str, str, str]] = SHIFTED_DATE_COLUMNS,
          privacy: PrivacySettings | None = None) -> RekeyResult:
    """Rewrite the identity mapping and every listed pseudonym column from old_key to new_key.

    Runs in the caller's transaction (commit it, or roll back to change nothing) and refuses
    when old_key is not the active key or a column holds a value the mapping does not know.
    Dates move by the difference of a patient's two shifts when privacy.date_shift_days is set.
    """
    privacy = privacy or PrivacySettings()
    if old_key == new_key:
        raise RekeyError("the new key is the same as the old one")
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('vitalflow.pipeline'))")
    active = conn.execute("SELECT key_id FROM identity.pseudonym_key WHERE retired_at IS NULL "
                          "FOR UPDATE").fetchone()
    if active is None or active[0] != old_key.key_id:
        raise RekeyError(f"the old key (key id {old_key.key_id}) is not the database's active "
                         f"key ({'none' if active is None else 'key id ' + active[0]})")
    identities = conn.execute("SELECT pseudonym, source_system, source_id "
                              "FROM identity.patient_identity FOR UPDATE").fetchall()
    moves = _moves(identities, old_key, new_key, privacy.date_shift_days)
    conn.execute("CREATE TEMP TABLE rekey_map (old text PRIMARY KEY, new text NOT NULL, "
                 "shift integer NOT NULL) ON COMMIT DROP")
    with conn.cursor().copy("COPY rekey_map FROM STDIN") as copy:
        for row in moves:
            copy.write_row(row)
    present = [(t, c) for t, c in columns if _column_type(conn, t, c)]
    dated = [(t, p, c, _column_type(conn, t, c)) for t, p, c in shifted
             if privacy.date_shift_days and _column_type(conn, t, c)]
    for table, column in present:
        unknown = conn.execute(sql.SQL(
            "SELECT count(*) FROM {t} WHERE {c} IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM rekey_map m WHERE m.old = {t}.{c})").format(
                t=_table(table), c=sql.Identifier(column))).fetchone()[0]
        if unknown:
            raise RekeyError(f"{table}.{column} holds {unknown} values that are not pseudonyms "
                             "of the identity mapping; nothing was changed")
    # Triggers off: re-keying renames people, it changes no data (no ownership check, no
    # derive work); ALTER TABLE is transactional, so a failure leaves them on.
    tables = sorted({t for t, _ in present} | {t for t, *_ in dated})
    for table in tables:
        conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(_table(table)))
    result = RekeyResult(old_key.key_id, new_key.key_id, len(identities))
    for table, person, column, kind in dated:
        _shift(conn, table, person, column, kind, privacy.birth_date)
    for table, column in present:
        result.rows[f"{table}.{column}"] = conn.execute(sql.SQL(
            "UPDATE {t} SET {c} = m.new FROM rekey_map m WHERE {t}.{c} = m.old").format(
                t=_table(table), c=sql.Identifier(column))).rowcount
    for table in tables:
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(_table(table)))
    conn.execute("UPDATE identity.pseudonym_key SET retired_at = now() WHERE key_id = %s",
                 (old_key.key_id,))
    conn.execute("INSERT INTO identity.pseudonym_key (key_id) VALUES (%s) ON CONFLICT (key_id) "
                 "DO UPDATE SET retired_at = NULL, activated_at = now()", (new_key.key_id,))
    conn.execute("UPDATE identity.patient_identity i SET pseudonym = m.new, key_id = %s "
                 "FROM rekey_map m WHERE i.pseudonym = m.old", (new_key.key_id,))
    conn.execute("INSERT INTO identity.rekey_log (old_key_id, new_key_id, identities) "
                 "VALUES (%s, %s, %s)", (old_key.key_id, new_key.key_id, len(identities)))
    return result


def _moves(identities: list[tuple[str, str, str]], old_key: PseudonymKey,
           new_key: PseudonymKey, max_shift: int) -> list[tuple[str, str, int]]:
    """(old pseudonym, new pseudonym, days to move) per identity, one source system at a time."""
    by_system: dict[str, list[tuple[str, str]]] = {}
    for old, system, source_id in identities:
        by_system.setdefault(system, []).append((old, source_id))
    moves = []
    for system, pairs in by_system.items():
        olds, ids = [p for p, _ in pairs], [i for _, i in pairs]
        if pseudonyms(old_key, system, ids) != olds:
            raise RekeyError("the old key does not reproduce the stored pseudonyms; "
                             "nothing was changed")
        deltas = [new - old for new, old in zip(shifts(new_key, system, ids, max_shift),
                                                shifts(old_key, system, ids, max_shift),
                                                strict=True)]
        moves += zip(olds, pseudonyms(new_key, system, ids), deltas, strict=True)
    return moves


def _shift(conn: psycopg.Connection, table: str, person: str, column: str, kind: str,
           birth_date: str) -> None:
    # Whole days of 86,400 s, as the pipeline shifts: a calendar day would follow DST.
    step = "m.shift" if kind == "date" else "m.shift * interval '86400 seconds'"
    moved = sql.SQL("{c} + " + step).format(c=sql.Identifier(column))
    if column == "birth_date" and birth_date != "none":
        # A generalised birth date stays generalised (it may land in the neighbouring unit).
        moved = sql.SQL("date_trunc({u}, ({m})::timestamp)::date").format(
            u=sql.Literal(birth_date), m=moved)
    conn.execute(sql.SQL("UPDATE {t} SET {c} = {m} FROM rekey_map m "
                         "WHERE {t}.{p} = m.old AND m.shift <> 0").format(
        t=_table(table), c=sql.Identifier(column), m=moved, p=sql.Identifier(person)))


def _table(qualified: str) -> sql.Identifier:
    return sql.Identifier(*qualified.split("."))


def _column_type(conn: psycopg.Connection, table: str, column: str) -> str | None:
    """The column's SQL type, or None when the table or column does not exist (yet)."""
    schema, name = table.split(".")
    row = conn.execute("SELECT data_type FROM information_schema.columns WHERE table_schema = %s "
                       "AND table_name = %s AND column_name = %s", (schema, name, column)
                       ).fetchone()
    return row[0] if row else None
