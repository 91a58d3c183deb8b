"""Identity attributes extracted from FHIR Patient resources."""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson

from vitalflow.merge.identity_rows import IDENTITY_SCHEMA, identity_rows, identity_rows_from_json


def _patient(pid: str, **fields) -> dict:
    return {"resourceType": "Patient", "id": pid, **fields}


def test_extracts_official_name_home_address_and_first_identifier():
    resource = _patient(
        "p1", gender="female", birthDate="1980-05",
        meta={"lastUpdated": "2024-01-02T03:04:05+01:00", "source": "urn:clinic-a"},
        identifier=[{"system": "urn:ssn"}, {"system": "urn:mrn", "value": " M1 "}],
        name=[{"use": "nickname", "given": ["Liz"]},
              {"use": "official", "family": "Brown", "given": ["Mary", "Ann"]}],
        address=[{"use": "work", "postalCode": "99999"},
                 {"use": "home", "line": ["1 Main St", "Flat 2"], "city": "Boston",
                  "postalCode": "02101"}])
    rows = identity_rows([resource]).to_pylist()
    assert rows == [{
        "source_system": "urn:clinic-a", "source_id": "p1", "identifier_system": "urn:mrn",
        "identifier_value": "M1", "given": "Mary Ann", "family": "Brown",
        "birth_date": date(1980, 5, 1), "sex": "female", "postcode": "02101",
        "address_line": "1 Main St Flat 2", "city": "Boston",
        "last_updated": datetime(2024, 1, 2, 2, 4, 5, tzinfo=UTC)}]


def test_preferred_identifier_system_wins_and_unknown_ones_are_not_used():
    resource = _patient("p1", identifier=[{"system": "urn:a", "value": "1"},
                                          {"system": "urn:b", "value": "2"}])
    pick = identity_rows([resource], identifier_systems=["urn:b", "urn:a"]).to_pylist()[0]
    assert (pick["identifier_system"], pick["identifier_value"]) == ("urn:b", "2")
    none = identity_rows([resource], identifier_systems=["urn:c"]).to_pylist()[0]
    assert none["identifier_system"] is none["identifier_value"] is None


def test_newest_version_of_a_record_is_kept_and_other_resources_skipped():
    old = _patient("p1", meta={"versionId": "1"}, name=[{"family": "Old"}])
    new = _patient("p1", meta={"versionId": "2"}, name=[{"family": "New"}])
    skipped = [{"resourceType": "Observation", "id": "o1"}, _patient(""), "not a dict"]
    for order in ([old, new], [new, old]):
        rows = identity_rows(order + skipped, default_source_system="s").to_pylist()
        assert [(r["source_system"], r["family"]) for r in rows] == [("s", "New")]


def test_unusable_fields_become_null():
    resource = _patient("p1", gender="unknown", birthDate="not a date", name="oops",
                        address=[{"postalCode": "  "}], identifier={"system": "x"})
    row = identity_rows([resource]).to_pylist()[0]
    assert all(row[name] is None for name in IDENTITY_SCHEMA.names[2:])


def test_from_json_skips_broken_lines():
    lines = [orjson.dumps(_patient("p1")), b"{broken", None,
             '{"resourceType": "Patient", "id": "p2"}']
    assert identity_rows_from_json(lines).column("source_id").to_pylist() == ["p1", "p2"]
