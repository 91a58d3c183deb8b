"""Golden record per person: which source record's value survives for each attribute.

Rules (documented in docs/merging.md):
- name (given + family) and address (line + postcode + city) each survive as a unit, from the
  most recent record that has any part of it, so a name or address is never stitched together
  from two records;
- birth date and sex: the value most of the person's records agree on; a tie goes to the most
  recent record, since these do not change and a single typo should not win;
- "most recent" is meta.lastUpdated (absent counts as oldest); equal times go to the record with
  more attributes filled in, then to the smallest (source_system, source_id).
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from vitalflow.merge.identity_rows import PERSON_FIELDS

GOLDEN_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), False),
    *PERSON_FIELDS,
    pa.field("records", pa.int64(), False),
    pa.field("last_updated", pa.timestamp("us", tz="UTC")),
])
_UNITS = (("given", "family"), ("postcode", "address_line", "city"))
_VOTED = ("birth_date", "sex")
_FILLED = ("given", "family", "birth_date", "sex", "postcode", "address_line", "city")


def golden_records(identities: pa.Table, links: pa.Table) -> pa.Table:
    """One row per person in `links` (clustering.LINK_SCHEMA) from its records in `identities`."""
    person_of = {(r["source_system"], r["source_id"]): r["person_id"]
                 for r in links.select(["person_id", "source_system", "source_id"]).to_pylist()}
    records: dict[str, list[dict]] = {}
    for row in identities.to_pylist():
        person = person_of.get((row["source_system"], row["source_id"]))
        if person is not None:
            records.setdefault(person, []).append(row)
    golden = [_golden(person, rows) for person, rows in sorted(records.items())]
    return pa.Table.from_pylist(golden, schema=GOLDEN_SCHEMA)


def _recency(row: dict) -> tuple:
    stamp = row["last_updated"]
    filled = sum(row[name] is not None for name in _FILLED)
    return (stamp.timestamp() if stamp else float("-inf"), filled)


def _golden(person: str, rows: list[dict]) -> dict:
    # Smallest source key first, then a stable sort by recency (reverse=True keeps stability),
    # so records equally recent and equally complete stay in source-key order.
    newest_first = sorted(sorted(rows, key=lambda r: (r["source_system"], r["source_id"])),
                          key=_recency, reverse=True)
    golden = {"person_id": person, "records": len(rows),
              "last_updated": newest_first[0]["last_updated"]}
    for unit in _UNITS:
        source = next((r for r in newest_first if any(r[name] is not None for name in unit)),
                      newest_first[0])
        golden.update({name: source[name] for name in unit})
    for name in _VOTED:
        votes = Counter(r[name] for r in newest_first if r[name] is not None)
        top = max(votes.values(), default=0)
        golden[name] = next((r[name] for r in newest_first
                             if r[name] is not None and votes[r[name]] == top), None)
    return golden
