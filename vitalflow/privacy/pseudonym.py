"""Keyed pseudonyms for patient identifiers, one HMAC per distinct value, plus generalisation."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from vitalflow.privacy.generalise import shift_dates, truncate_dates, truncate_postcodes
from vitalflow.privacy.keys import PseudonymKey
from vitalflow.privacy.settings import PrivacySettings
from vitalflow.tables import Pii, Table

PREFIX = "p_"
# System times say when a record was handled, not when anything happened to the patient; and
# meta.lastUpdated ranks versions, whose order must not change when a version moves patient.
UNSHIFTED = frozenset({"last_updated", "refined_at", "computed_at", "quarantined_at"})
IDENTITY_SCHEMA = pa.schema([pa.field("pseudonym", pa.string(), False),
                             pa.field("source_system", pa.string(), False),
                             pa.field("source_id", pa.string(), False)])


def _prefix(domain: bytes, source_system: str) -> bytes:
    # NUL-separated and domain-prefixed: no two (domain, system, id) triples share a message.
    return b"\x00".join((domain, source_system.encode(), b""))


def pseudonym(key: PseudonymKey, source_system: str, source_id: str) -> str:
    """'p_' + 32 hex digits of HMAC-SHA256(key, 'patient' NUL system NUL id)."""
    return pseudonyms(key, source_system, [source_id])[0]


def pseudonyms(key: PseudonymKey, source_system: str, source_ids: list[str]) -> list[str]:
    digests = key.digests(_prefix(b"patient", source_system),
                          (sid.encode() for sid in source_ids))
    return [PREFIX + d.hex()[:32] for d in digests]


def shift_days(key: PseudonymKey, source_system: str, source_id: str, max_days: int) -> int:
    """The patient's secret date shift in [-max_days, max_days]; the same for all its dates."""
    return shifts(key, source_system, [source_id], max_days)[0]


def shifts(key: PseudonymKey, source_system: str, source_ids: list[str],
           max_days: int) -> list[int]:
    if max_days == 0:
        return [0] * len(source_ids)
    digests = key.digests(_prefix(b"date-shift", source_system),
                          (sid.encode() for sid in source_ids))
    return [int.from_bytes(d[:8], "big") % (2 * max_days + 1) - max_days for d in digests]


@dataclass
class PseudonymisedBatch:
    table: pa.Table
    identities: pa.Table  # IDENTITY_SCHEMA rows not returned before: for the identity schema


class Pseudonymiser:
    """Turns a standardised table into its refined form: person columns (Pii.PSEUDONYM) become
    pseudonyms, direct identifiers are dropped, quasi-identifiers generalised, dates shifted.

    One instance per run: it remembers which identities it has already handed out.
    """

    def __init__(self, key: PseudonymKey, privacy: PrivacySettings) -> None:
        self.key = key
        self.privacy = privacy
        self._handed_out: set[str] = set()

    def apply(self, table: pa.Table, description: Table,
              source_system: str | None = None) -> PseudonymisedBatch:
        system = source_system or self.privacy.source_system
        described = {c.name: c for c in description.columns}
        undescribed = [name for name in table.column_names if name not in described]
        if undescribed:
            # Fail closed: a column nobody classified might be a direct identifier.
            raise ValueError(f"columns {undescribed} are not described in "
                             f"{description.qualified_name}, so their PII class is unknown")
        table = table.drop_columns([n for n in table.column_names
                                    if described[n].pii == Pii.DIRECT])
        people = [n for n in table.column_names if described[n].pii == Pii.PSEUDONYM]
        identities = []
        for position, name in enumerate(people):
            encoded = pc.dictionary_encode(table.column(name).combine_chunks())
            source_ids = encoded.dictionary.to_pylist()
            made = pseudonyms(self.key, system, source_ids)
            if position == 0 and self.privacy.date_shift_days:
                table = self._shift(table, encoded.indices, source_ids, system)
            table = table.set_column(table.column_names.index(name), name,
                                     pc.take(pa.array(made, pa.string()), encoded.indices))
            identities.append(self._new_identities(made, system, source_ids))
        table = self._generalise(table)
        identity_rows = (pa.concat_tables(identities) if identities
                         else IDENTITY_SCHEMA.empty_table())
        return PseudonymisedBatch(table, identity_rows)

    def _shift(self, table: pa.Table, indices: pa.Array, source_ids: list[str],
               system: str) -> pa.Table:
        per_patient = shifts(self.key, system, source_ids, self.privacy.date_shift_days)
        per_row = pc.take(pa.array(per_patient, pa.int32()), indices)
        for index, field in enumerate(table.schema):
            temporal = pa.types.is_date32(field.type) or pa.types.is_timestamp(field.type)
            if temporal and field.name not in UNSHIFTED:
                table = table.set_column(index, field, shift_dates(table.column(index), per_row))
        return table

    def _generalise(self, table: pa.Table) -> pa.Table:
        # Shifted first, generalised second: a truncated date does not give the shift away.
        for name, generalised in (
                ("birth_date", lambda v: truncate_dates(v, self.privacy.birth_date)),
                ("postcode", lambda v: truncate_postcodes(v, self.privacy.postcode_digits))):
            if name in table.column_names:
                index = table.column_names.index(name)
                table = table.set_column(index, table.schema.field(index),
                                         generalised(table.column(index)))
        return table

    def _new_identities(self, pseudonyms: list[str], system: str,
                        source_ids: list[str | None]) -> pa.Table:
        rows = [(p, sid) for p, sid in zip(pseudonyms, source_ids, strict=True)
                if sid is not None and p not in self._handed_out]
        self._handed_out.update(p for p, _ in rows)
        return pa.Table.from_arrays([pa.array([p for p, _ in rows], pa.string()),
                                     pa.array([system] * len(rows), pa.string()),
                                     pa.array([sid for _, sid in rows], pa.string())],
                                    schema=IDENTITY_SCHEMA)
