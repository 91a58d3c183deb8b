"""Identity attributes of FHIR Patient resources as an Arrow table, one row per source record."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import orjson
import pyarrow as pa

from vitalflow.refine.rules import Rejected, meta_values, parse_date

# The person's attributes, shared with the golden record (survivorship.GOLDEN_SCHEMA).
PERSON_FIELDS = [
    pa.field("given", pa.string()),
    pa.field("family", pa.string()),
    pa.field("birth_date", pa.date32()),
    pa.field("sex", pa.string()),
    pa.field("postcode", pa.string()),
    pa.field("address_line", pa.string()),
    pa.field("city", pa.string()),
]
IDENTITY_SCHEMA = pa.schema([
    pa.field("source_system", pa.string(), False),
    pa.field("source_id", pa.string(), False),  # the source's Patient.id
    pa.field("identifier_system", pa.string()),
    pa.field("identifier_value", pa.string()),
    *PERSON_FIELDS,
    pa.field("last_updated", pa.timestamp("us", tz="UTC")),
])
ATTRIBUTES = ("identifier_system", "identifier_value", "given", "family", "birth_date", "sex",
              "postcode", "address_line", "city")


def identity_rows(resources: Iterable[dict], *, identifier_systems: Iterable[str] = (),
                  default_source_system: str = "local") -> pa.Table:
    """Identity attributes of Patient resources; other resources and Patients without id are
    skipped. Of several versions of one record the newest (versionId, then lastUpdated) is kept.

    Source system: meta.source, else `default_source_system`. Name: the first `official` name,
    else the first; given names joined by a space. Address: the first `home` address, else the
    first. Identifier: the first whose system is in `identifier_systems` (in that order of
    preference); with no systems given, the first identifier with both system and value.
    """
    preferred = list(identifier_systems)
    newest: dict[tuple[str, str], tuple[tuple, dict]] = {}
    for resource in resources:
        if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
            continue
        row = _row(resource, preferred, default_source_system)
        if row is None:
            continue
        key = (row["source_system"], row["source_id"])
        rank = _rank(resource)
        if key not in newest or rank > newest[key][0]:
            newest[key] = (rank, row)
    rows = [newest[key][1] for key in sorted(newest)]
    return pa.Table.from_pylist(rows, schema=IDENTITY_SCHEMA)


def identity_rows_from_json(texts: Iterable[bytes | str | None], **options) -> pa.Table:
    """identity_rows over raw record texts (e.g. the raw layer's raw_json); unparsable skipped."""
    def parsed() -> Iterable[dict]:
        for text in texts:
            if text is None:
                continue
            try:
                yield orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
    return identity_rows(parsed(), **options)


def _rank(resource: dict) -> tuple:
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    version, updated = meta_values(meta.get("versionId"), meta.get("lastUpdated"))
    # The serialised content breaks ties, so the outcome does not depend on arrival order.
    return (version or -1, updated.timestamp() if updated else float("-inf"),
            orjson.dumps(resource, option=orjson.OPT_SORT_KEYS))


def _row(resource: dict, preferred: list[str], default_source: str) -> dict | None:
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid.strip():
        return None
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    source = meta.get("source")
    name = _pick(resource.get("name"), "official")
    address = _pick(resource.get("address"), "home")
    system, value = _identifier(resource.get("identifier"), preferred)
    gender = resource.get("gender")
    return {
        "source_system": source if isinstance(source, str) and source else default_source,
        "source_id": rid,
        "identifier_system": system,
        "identifier_value": value,
        "given": _text(" ".join(g for g in name.get("given") or () if isinstance(g, str))),
        "family": _text(name.get("family")),
        "birth_date": _birth_date(resource.get("birthDate")),
        "sex": gender if gender in ("male", "female", "other") else None,
        "postcode": _text(address.get("postalCode")),
        "address_line": _text(" ".join(x for x in address.get("line") or () if isinstance(x, str))),
        "city": _text(address.get("city")),
        "last_updated": meta_values(None, meta.get("lastUpdated"))[1],
    }


def _pick(entries: object, use: str) -> dict:
    """The first entry with this `use`, else the first entry; {} when there is none."""
    if not isinstance(entries, list):
        return {}
    dicts = [e for e in entries if isinstance(e, dict)]
    return next((e for e in dicts if e.get("use") == use), dicts[0] if dicts else {})


def _identifier(entries: object, preferred: list[str]) -> tuple[str | None, str | None]:
    pairs = ((_text(e.get("system")), _text(e.get("value")))
             for e in (entries if isinstance(entries, list) else ()) if isinstance(e, dict))
    usable = [(system, value) for system, value in pairs if system and value]
    for system in preferred:
        for found in usable:
            if found[0] == system:
                return found
    return usable[0] if usable and not preferred else (None, None)


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _birth_date(value: object) -> date | None:
    try:
        return parse_date(value, "birthDate") if value is not None else None
    except Rejected:
        return None
