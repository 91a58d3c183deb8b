"""Pseudonyms, generalisation and date shifting over standardised Arrow tables."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vitalflow.privacy import pseudonym as pseudonym_module
from vitalflow.privacy.generalise import shift_dates, truncate_dates, truncate_postcodes
from vitalflow.privacy.keys import key_from_text
from vitalflow.privacy.pseudonym import Pseudonymiser, pseudonym, shift_days
from vitalflow.privacy.settings import PrivacySettings
from vitalflow.refine.standardise import OBSERVATION_STAGE, PATIENT_STAGE
from vitalflow.tables import OBSERVATION, PATIENT, Column, Pii, Table

KEY = key_from_text("a" * 32 + "-first-key", "test")
OTHER = key_from_text("b" * 32 + "-other-key", "test")


def patients(rows: list[tuple[str, date | None]]) -> pa.Table:
    schema = pa.schema([pa.field(c.name, c.arrow_type) for c in PATIENT_STAGE])
    return pa.Table.from_pylist([{"patient_key": pid, "gender": "female", "birth_date": born,
                                  "content_hash": "h", "raw_record_id": f"b-{i}"}
                                 for i, (pid, born) in enumerate(rows)], schema=schema)


def observations(rows: list[tuple[str, datetime]]) -> pa.Table:
    schema = pa.schema([pa.field(c.name, c.arrow_type) for c in OBSERVATION_STAGE])
    return pa.Table.from_pylist([
        {"observation_id": f"o{i}", "patient_key": pid, "measure": "body_weight",
         "code_system": "http://loinc.org", "code": "29463-7", "value": 70.0, "unit": "kg",
         "effective_at": when, "status": "final", "content_hash": "h", "raw_record_id": f"b-{i}",
         "last_updated": datetime(2024, 1, 1, tzinfo=UTC)}
        for i, (pid, when) in enumerate(rows)], schema=schema)


def test_same_key_same_pseudonym_other_key_or_system_other_pseudonym():
    first = pseudonym(KEY, "ehr", "patient-1")
    assert first == pseudonym(KEY, "ehr", "patient-1")
    assert first.startswith("p_") and len(first) == 34
    assert set(first[2:]) <= set("0123456789abcdef")
    assert pseudonym(OTHER, "ehr", "patient-1") != first
    assert pseudonym(KEY, "lab", "patient-1") != first
    # NUL separation: moving characters between system and id gives another pseudonym.
    assert pseudonym(KEY, "ehr1", "23") != pseudonym(KEY, "ehr", "123")


def test_column_pseudonyms_match_the_scalar_function_and_keep_nulls():
    table = observations([("a", datetime(2020, 1, 1, tzinfo=UTC)),
                          ("b", datetime(2020, 1, 2, tzinfo=UTC)),
                          ("a", datetime(2020, 1, 3, tzinfo=UTC))])
    out = Pseudonymiser(KEY, PrivacySettings(source_system="ehr")).apply(table, OBSERVATION)
    assert out.table.column("patient_key").to_pylist() == [
        pseudonym(KEY, "ehr", "a"), pseudonym(KEY, "ehr", "b"), pseudonym(KEY, "ehr", "a")]
    assert out.table.column("observation_id").to_pylist() == ["o0", "o1", "o2"]
    assert sorted(out.identities.column("source_id").to_pylist()) == ["a", "b"]
    again = Pseudonymiser(KEY, PrivacySettings(source_system="ehr")).apply(table, OBSERVATION)
    assert again.table.equals(out.table)
    other = Pseudonymiser(OTHER, PrivacySettings(source_system="ehr")).apply(table, OBSERVATION)
    assert not set(other.table.column("patient_key").to_pylist()) & set(
        out.table.column("patient_key").to_pylist())


def test_one_hmac_per_distinct_value_and_identities_handed_out_once(monkeypatch):
    calls = []
    real = pseudonym_module.pseudonyms
    monkeypatch.setattr(pseudonym_module, "pseudonyms",
                        lambda key, system, ids: calls.extend(ids) or real(key, system, ids))
    when = datetime(2020, 1, 1, tzinfo=UTC)
    pseudonymiser = Pseudonymiser(KEY, PrivacySettings())
    first = pseudonymiser.apply(observations([("a", when)] * 500 + [("b", when)] * 500),
                                OBSERVATION)
    assert len(calls) == 2
    assert first.identities.num_rows == 2
    second = pseudonymiser.apply(observations([("a", when), ("c", when)]), OBSERVATION)
    assert second.identities.column("source_id").to_pylist() == ["c"]


def test_birth_dates_generalised_as_configured():
    table = patients([("a", date(1980, 5, 17)), ("b", None)])
    for setting, expected in (("year", date(1980, 1, 1)), ("month", date(1980, 5, 1)),
                              ("none", date(1980, 5, 17))):
        out = Pseudonymiser(KEY, PrivacySettings(birth_date=setting)).apply(table, PATIENT)
        assert out.table.column("birth_date").to_pylist() == [expected, None]


def test_postcodes_truncated_or_dropped():
    codes = pa.array([" sw1a 1aa", "10115", None])
    assert truncate_postcodes(codes, 3).to_pylist() == ["SW1", "101", None]
    assert truncate_postcodes(codes, 0).to_pylist() == [None, None, None]
    described = Table("refined", "t", "test", "refine", (
        Column("patient_key", "text", "", pii=Pii.PSEUDONYM),
        Column("postcode", "text", "", pii=Pii.QUASI)), ("patient_key",))
    table = pa.table({"patient_key": ["a"], "postcode": ["SW1A 1AA"]})
    out = Pseudonymiser(KEY, PrivacySettings(postcode_digits=2)).apply(table, described)
    assert out.table.column("postcode").to_pylist() == ["SW"]


def test_direct_identifiers_dropped_and_undescribed_columns_refused():
    described = Table("refined", "t", "test", "refine", (
        Column("patient_key", "text", "", pii=Pii.PSEUDONYM),
        Column("family_name", "text", "", pii=Pii.DIRECT)), ("patient_key",))
    table = pa.table({"patient_key": ["a"], "family_name": ["Testperson"]})
    out = Pseudonymiser(KEY, PrivacySettings()).apply(table, described)
    assert out.table.column_names == ["patient_key"]
    with pytest.raises(ValueError, match=r"\['telecom'\] are not described"):
        Pseudonymiser(KEY, PrivacySettings()).apply(table.append_column(
            "telecom", pa.array(["555-0100"])), described)


def test_date_shift_is_per_patient_and_keeps_intervals():
    privacy = PrivacySettings(date_shift_days=180, birth_date="none")
    born = date(1980, 5, 17)
    seen = datetime(2020, 3, 1, 8, 30, tzinfo=UTC)
    pseudonymiser = Pseudonymiser(KEY, privacy)
    people = pseudonymiser.apply(patients([("a", born), ("b", born)]), PATIENT).table
    obs = pseudonymiser.apply(observations([("a", seen), ("a", seen + timedelta(days=40)),
                                            ("b", seen)]), OBSERVATION).table
    shift_a = shift_days(KEY, "fhir", "a", 180)
    assert people.column("birth_date")[0].as_py() == born + timedelta(days=shift_a)
    times = obs.column("effective_at").to_pylist()
    assert times[0] == seen + timedelta(days=shift_a)
    assert times[1] - times[0] == timedelta(days=40)
    assert times[0] - datetime.combine(people.column("birth_date")[0].as_py(), datetime.min.time(),
                                       UTC) == seen - datetime.combine(born, datetime.min.time(),
                                                                      UTC)
    # System times are not shifted: they rank versions.
    assert obs.column("last_updated").to_pylist() == [datetime(2024, 1, 1, tzinfo=UTC)] * 3
    shifts = {shift_days(KEY, "fhir", f"p{i}", 180) for i in range(200)}
    assert min(shifts) >= -180 and max(shifts) <= 180 and len(shifts) > 100
    assert shift_days(KEY, "fhir", "a", 0) == 0


@given(st.dates(date(1900, 1, 1), date(2100, 1, 1)), st.integers(-3650, 3650))
def test_shifting_dates_and_timestamps_moves_whole_days(day, days):
    moved = shift_dates(pa.array([day], pa.date32()), pa.array([days]))
    assert moved.to_pylist() == [day + timedelta(days=days)]
    instant = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=13, seconds=7)
    stamps = shift_dates(pa.array([instant], pa.timestamp("us", tz="UTC")), pa.array([days]))
    assert stamps.to_pylist() == [instant + timedelta(days=days)]
    assert truncate_dates(moved, "year").to_pylist() == [date((day + timedelta(days)).year, 1, 1)]


def test_no_source_id_or_key_in_output_logs_or_errors(caplog):
    secret_ids = [f"MRN-{i:06d}" for i in range(50)]
    table = observations([(sid, datetime(2020, 1, 1, tzinfo=UTC)) for sid in secret_ids])
    with caplog.at_level(logging.DEBUG):
        out = Pseudonymiser(KEY, PrivacySettings(date_shift_days=30)).apply(table, OBSERVATION)
        with pytest.raises(ValueError) as caught:
            Pseudonymiser(KEY, PrivacySettings()).apply(
                table.append_column("name", pa.array(["x"] * 50)), OBSERVATION)
    text = str(out.table.to_pylist()) + caplog.text + str(caught.value) + repr(caught.value)
    assert not any(sid in text for sid in secret_ids)
    assert "a" * 32 not in text
