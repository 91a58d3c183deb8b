"""Which person each source Patient record belongs to: record merging run for refine."""

from __future__ import annotations

import psycopg
import pyarrow as pa

from vitalflow.config import Settings
from vitalflow.merge import engine
from vitalflow.merge.identity_rows import identity_rows_from_json
from vitalflow.ingest import Batch

# Raw batches that can hold Patients: bulk-export Patient files and files of mixed content.
_PATIENT_HINTS = ("Patient", None)


def link_persons(control: psycopg.Connection, settings: Settings, raw, pending: list[Batch]
                 ) -> dict[str, str]:
    """Merge the pending batches' Patient records into persons (identity schema) and return
    source Patient.id -> person id for every record known. Ids are matched across source
    systems, as references in Observations name no system."""
    merge = settings.merge
    texts: list = []
    for batch in pending:
        if batch.resource_type_hint in _PATIENT_HINTS:
            for records in raw.read(batch.batch_id, settings.ingest.batch_rows):
                texts += records.column("raw_json").to_pylist()
    identities = identity_rows_from_json(texts, identifier_systems=merge.identifier_systems,
                                         default_source_system=merge.default_source_system)
    engine.refresh(control, identities, merge)
    return person_of_records(control)


def person_of_records(control: psycopg.Connection) -> dict[str, str]:
    from vitalflow.merge.store import PERSON_LINK, ensure_schema

    ensure_schema(control)
    return dict(control.execute(f"SELECT source_id, person_id FROM {PERSON_LINK.qualified_name} "
                                "ORDER BY source_system DESC"))


def with_persons(patients: pa.Table, person_of: dict[str, str] | None) -> pa.Table:
    """patients with person_key: the record's person, or the record itself when not merged."""
    keys = patients.column("patient_key").to_pylist()
    persons = keys if person_of is None else [person_of.get(k, k) for k in keys]
    return patients.append_column("person_key", pa.array(persons, pa.string()))


def reconcile_persons(layers, settings: Settings) -> int:
    """Give every refined patient record the person merging says it belongs to, including
    decisions made since the last run (`vitalflow merge link`, `vitalflow unmerge`); the old
    person is recorded as touched so derive recomputes both. Returns the records moved."""
    from datetime import UTC, datetime

    import pyarrow.compute as pc

    from vitalflow.control import lock_pipeline, next_change_seq, record_touches
    from vitalflow.tables import PATIENT

    with layers.control.connect() as control:
        lock_pipeline(control)
        person_of = person_of_records(control) if settings.merge.enabled else {}
        as_key = _keyer(settings)
        person_keys = as_key(list(person_of.values()))
        desired = dict(zip(as_key(list(person_of)), person_keys, strict=True))
        stored = layers.refined.read(PATIENT, ["patient_key", "person_key"])
        keys = stored.column("patient_key").to_pylist()
        moved = pc.not_equal(stored.column("person_key"),
                             pa.array([desired.get(k, k) for k in keys], pa.string()))
        if not pc.any(moved).as_py():
            return 0
        old = stored.filter(moved)
        rows = layers.refined.read(PATIENT, where=[("patient_key", "in",
                                                    old.column("patient_key"))])
        seq = next_change_seq(control)
        wanted = [desired.get(k, k) for k in rows.column("patient_key").to_pylist()]
        for name, values in (
                ("person_key", pa.array(wanted, pa.string())),
                ("change_seq", pa.repeat(pa.scalar(seq), rows.num_rows)),
                ("refined_at", pa.repeat(pa.scalar(datetime.now(UTC),
                                                   pa.timestamp("us", "UTC")), rows.num_rows))):
            rows = rows.set_column(rows.column_names.index(name), name, values)
        _record_persons(control, settings, dict(zip(person_keys, person_of.values(),
                                                    strict=True)), set(wanted))
        layers.refined.upsert(PATIENT, rows)
        record_touches(control, sorted(set(old.column("person_key").to_pylist())), seq)
    return rows.num_rows


def _keyer(settings: Settings):
    """Source or person ids -> the keys refined stores for them (pseudonyms when privacy is
    on)."""
    if not settings.privacy.enabled:
        return lambda ids: ids
    from vitalflow.privacy.keys import load_key
    from vitalflow.privacy.pseudonym import pseudonyms

    key = load_key(settings.privacy, settings.paths.root)
    return lambda ids: pseudonyms(key, settings.privacy.source_system, ids)


def _record_persons(control: psycopg.Connection, settings: Settings,
                    person_of_key: dict[str, str], keys: set[str]) -> None:
    """Person pseudonyms handed out by reconciliation go into the identity schema, as the
    gate's do, so re-identification and re-keying know them."""
    if not settings.privacy.enabled:
        return
    from vitalflow.privacy.identity import record_identities
    from vitalflow.privacy.keys import load_key
    from vitalflow.privacy.pseudonym import IDENTITY_SCHEMA

    made = sorted(k for k in keys if k in person_of_key)
    system = settings.privacy.source_system
    record_identities(control, pa.table([made, [system] * len(made),
                                         [person_of_key[k] for k in made]],
                                        schema=IDENTITY_SCHEMA),
                      load_key(settings.privacy, settings.paths.root))
