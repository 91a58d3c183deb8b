"""Whitelist rules: loading and validation, filtering with per-rule counts, the dry run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.fhir_factory import observation, patient, write_ndjson
from vitalflow.config import load_settings
from vitalflow.refine.dry_run import dry_run
from vitalflow.generate import generate
from vitalflow.refine.cli import filter_command
from vitalflow.refine.standardise import OBSERVATION_STAGE, PATIENT_STAGE, Standardiser
from vitalflow.config import FilterSettings
from vitalflow.refine.whitelist import (Context, WhitelistError, load_whitelist,
                                 parse_whitelist)

DEFAULT = FilterSettings().path


def standardiser() -> Standardiser:
    refine = load_settings().refine
    return Standardiser(refine.observation_codes, refine.excluded_statuses, 16 * 1024 * 1024)


def observations(rows: list[dict]) -> pa.Table:
    """A standardised observation table; unspecified columns get plausible values."""
    base = {"observation_id": "o", "patient_key": "a", "measure": "body_weight",
            "code_system": "http://loinc.org", "code": "29463-7", "value": 70.0, "unit": "kg",
            "source_value": 70.0, "source_unit": "kg",
            "effective_at": datetime(2020, 6, 1, 12, tzinfo=UTC), "status": "final",
            "version": None, "last_updated": None, "content_hash": "h", "raw_record_id": "b-1"}
    schema = pa.schema([pa.field(c.name, c.arrow_type) for c in OBSERVATION_STAGE])
    return pa.Table.from_pylist([{**base, "observation_id": f"o{i}", **row}
                                 for i, row in enumerate(rows)], schema=schema)


def rules(*items: dict, valuesets: dict | None = None):
    return parse_whitelist({"rules": list(items), "valuesets": valuesets or {}}, "test.yaml")


def test_default_rules_load():
    whitelist = load_whitelist(DEFAULT)
    assert whitelist.rule_names == ["resource_in_scope", "observation_status",
                                    "observation_code"]


def test_default_rules_keep_everything_refine_keeps(tmp_path):
    """The default whitelist changes no pipeline result: all it sees passes."""
    generate(tmp_path / "in", 80, seed=11, defect_rate=0.2)
    report = dry_run(tmp_path / "in", load_whitelist(DEFAULT), standardiser())
    assert report.total_read > 1000
    assert not report.rule_filtered
    assert report.total_passed == report.total_read - sum(report.quarantined.values()) \
        - sum(report.scope_filtered.values())


@pytest.mark.parametrize(("rule", "message"), [
    ({"name": "a", "field": "status", "in": ["final"]}, "field 'status' does not exist on Patient"),
    ({"name": "a", "resource": "Encounter", "field": "status", "in": ["x"]},
     "resource 'Encounter' is not refined"),
    ({"name": "a", "resource": "Observation", "field": "status"}, "exactly one of"),
    ({"name": "a", "resource": "Observation", "field": "status", "in": ["x"], "min": 1},
     "exactly one of"),
    ({"name": "a", "resource": "Observation", "field": "status", "in": []}, "at least 1"),
    ({"name": "a", "resource": "Observation", "field": "code", "in_valueset": "nope"},
     "valueset 'nope' is not defined"),
    ({"name": "a", "resource": "Observation", "field": "status", "min": 3},
     "need a number, date or timestamp field"),
    ({"name": "a", "resource": "Observation", "field": "value", "in": [1]}, "'in' needs a text"),
    ({"name": "a", "resource": "Observation", "field": "effective_at", "min": "last year"},
     "min 'last year' is not an ISO date"),
    ({"name": "a", "resource": "Observation", "field": "value", "min": 5, "max": 1},
     "greater than max"),
    ({"name": "Bad Name", "field": "resource_type", "in": ["Patient"]}, "snake_case"),
    ({"name": "a", "field": "resource_type", "in": ["Patient"], "colour": "red"},
     "colour: Extra inputs are not permitted"),
])
def test_invalid_rules_are_named_with_what_is_wrong(rule, message):
    with pytest.raises(WhitelistError) as caught:
        rules(rule)
    text = str(caught.value)
    assert text.startswith("test.yaml: rule ")
    assert message in text
    if rule["name"] != "Bad Name":
        assert "rule 'a'" in text


def test_duplicate_rule_names_are_refused():
    rule = {"name": "dup", "field": "resource_type", "in": ["Patient"]}
    with pytest.raises(WhitelistError, match="rule 'dup': a rule of this name comes earlier"):
        rules(rule, rule)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(WhitelistError, match="missing.yaml: cannot read"):
        load_whitelist(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n")
    with pytest.raises(WhitelistError, match="broken.yaml: not valid YAML"):
        load_whitelist(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("rules: []\n")
    with pytest.raises(WhitelistError, match="empty.yaml: rules: List should have at least 1"):
        load_whitelist(empty)


def test_each_record_counts_once_under_its_first_failing_rule():
    whitelist = rules(
        {"name": "status_ok", "resource": "Observation", "field": "status", "in": ["final"]},
        {"name": "since_2020", "resource": "Observation", "field": "effective_at",
         "min": date(2020, 1, 1)},
        {"name": "weights", "resource": "Observation", "field": "code", "in_valueset": "w"},
        valuesets={"w": {"system": "http://loinc.org", "codes": ["29463-7"]}})
    early = datetime(2019, 1, 1, tzinfo=UTC)
    table = observations([
        {},  # passes
        {"status": "amended"},  # fails status only
        {"status": "amended", "effective_at": early},  # fails both: counted under status_ok
        {"effective_at": early},
        {"code": "8302-2"},
        {"code_system": "http://example.org"},  # right code, wrong system
    ])
    result = whitelist.apply(table, "Observation")
    assert result.kept.column("observation_id").to_pylist() == ["o0"]
    assert result.filtered == {"status_ok": 2, "since_2020": 1, "weights": 2}
    assert result.read == table.num_rows


def test_date_only_max_on_a_timestamp_includes_that_whole_day():
    whitelist = rules({"name": "to_2020", "resource": "Observation", "field": "effective_at",
                       "max": "2020-06-01"})
    table = observations([{"effective_at": datetime(2020, 6, 1, 23, 59, tzinfo=UTC)},
                          {"effective_at": datetime(2020, 6, 2, 0, 0, tzinfo=UTC)}])
    assert whitelist.apply(table, "Observation").filtered == {"to_2020": 1}


def test_missing_values_fail_unless_the_rule_lets_them_pass():
    table = observations([{"source_unit": None}, {"source_unit": "kg"}])
    strict = rules({"name": "u", "resource": "Observation", "field": "source_unit",
                    "in": ["kg"]})
    lenient = rules({"name": "u", "resource": "Observation", "field": "source_unit",
                     "in": ["kg"], "missing": "pass"})
    assert strict.apply(table, "Observation").kept.num_rows == 1
    assert lenient.apply(table, "Observation").kept.num_rows == 2


def test_age_at_the_observation_from_birth_dates():
    whitelist = rules({"name": "adults", "resource": "Observation", "field": "age_years",
                       "min": 18})
    births = pa.table({"patient_key": ["child", "adult", "birthday"],
                       "birth_date": pa.array([date(2010, 1, 1), date(1970, 1, 1),
                                               date(2002, 6, 1)], pa.date32())})
    table = observations([{"patient_key": "child"}, {"patient_key": "adult"},
                          {"patient_key": "birthday"}, {"patient_key": "unknown"}])
    result = whitelist.apply(table, "Observation", Context(birth_dates=births))
    # 18 on the day itself; an unknown patient has no age, so fails.
    assert result.kept.column("patient_key").to_pylist() == ["adult", "birthday"]
    assert result.filtered == {"adults": 2}


def test_patient_age_today_and_source_system():
    schema = pa.schema([pa.field(c.name, c.arrow_type) for c in PATIENT_STAGE])
    table = pa.Table.from_pylist([
        {"patient_key": "a", "birth_date": date(2000, 3, 1), "content_hash": "h",
         "raw_record_id": "b-1"},
        {"patient_key": "b", "birth_date": date(1930, 3, 1), "content_hash": "h",
         "raw_record_id": "b-2"}], schema=schema)
    whitelist = rules({"name": "main_ehr", "field": "source_system", "in": ["ehr"]},
                      {"name": "under_90", "resource": "Patient", "field": "age_years",
                       "max": 89})
    context = Context(source_system="ehr", today=date(2025, 1, 1))
    assert whitelist.apply(table, "Patient", context).filtered == {"under_90": 1}
    other = whitelist.apply(table, "Patient", Context(source_system="lab", today=date(2025, 1, 1)))
    assert other.filtered == {"main_ehr": 2}


def test_rules_for_other_resource_types_do_not_apply():
    whitelist = rules({"name": "only_final", "resource": "Observation", "field": "status",
                       "in": ["final"]},
                      {"name": "types", "field": "resource_type", "in": ["Observation"]})
    schema = pa.schema([pa.field(c.name, c.arrow_type) for c in PATIENT_STAGE])
    table = pa.Table.from_pylist([{"patient_key": "a", "content_hash": "h",
                                   "raw_record_id": "b-1"}], schema=schema)
    assert whitelist.apply(table, "Patient").filtered == {"types": 1}
    assert [r.name for r in whitelist.rules_for("Patient")] == ["types"]


@given(st.lists(st.tuples(st.sampled_from(["final", "amended", "preliminary", "cancelled"]),
                          st.sampled_from(["29463-7", "8302-2", "39156-5"]),
                          st.integers(2015, 2024), st.floats(0.5, 300)), max_size=40),
       st.permutations(range(4)))
def test_counts_reconcile_read_equals_passed_plus_filtered(rows, order):
    all_rules = [
        {"name": "status", "resource": "Observation", "field": "status",
         "in": ["final", "amended"]},
        {"name": "codes", "resource": "Observation", "field": "code", "in": ["29463-7"]},
        {"name": "recent", "resource": "Observation", "field": "effective_at",
         "min": "2018-01-01", "max": "2022-12-31"},
        {"name": "plausible", "resource": "Observation", "field": "value", "min": 1, "max": 250},
    ]
    whitelist = rules(*(all_rules[i] for i in order))
    table = observations([{"status": s, "code": c, "value": v,
                           "effective_at": datetime(y, 3, 1, tzinfo=UTC)}
                          for s, c, y, v in rows])
    result = whitelist.apply(table, "Observation")
    assert result.kept.num_rows + sum(result.filtered.values()) == len(rows)
    # Each record is counted under the first rule (in file order) it fails.
    expected: dict[str, int] = {}
    for s, c, y, v in rows:
        failed = [r["name"] for r in (all_rules[i] for i in order) if not {
            "status": s in ("final", "amended"), "codes": c == "29463-7",
            "recent": 2018 <= y <= 2022, "plausible": 1 <= v <= 250}[r["name"]]]
        if failed:
            expected[failed[0]] = expected.get(failed[0], 0) + 1
    assert dict(result.filtered) == expected


def write_input(folder: Path) -> Path:
    write_ndjson(folder / "Patient.ndjson", [patient("p1", birth="2015-01-01"),
                                             patient("p2", birth="1960-01-01")])
    write_ndjson(folder / "Observation.ndjson", [
        observation("o1", "p1", "weight", 30, "2024-01-01T10:00:00Z"),
        observation("o2", "p2", "weight", 80, "2024-01-01T10:00:00Z"),
        observation("o3", "p2", "height", 180, "2010-01-01T10:00:00Z"),
        observation("o4", "p2", "weight", 80, "2024-01-01T10:00:00Z", status="cancelled"),
        "{not json",
    ])
    return folder


def test_dry_run_counts_reconcile_and_write_nothing(tmp_path):
    source = write_input(tmp_path / "in")
    before = sorted(p for p in tmp_path.rglob("*"))
    whitelist = rules(
        {"name": "adults", "resource": "Observation", "field": "age_years", "min": 18},
        {"name": "since_2020", "resource": "Observation", "field": "effective_at",
         "min": "2020-01-01"})
    report = dry_run(source, whitelist, standardiser())
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert report.rule_filtered == {"adults": 1, "since_2020": 1}
    assert report.scope_filtered == {"status_excluded": 1}
    assert sum(report.quarantined.values()) == 1
    assert report.total_read == 7
    assert report.total_passed == 3  # two patients, o2
    assert report.total_read == report.total_passed + sum(n for _, n in report.rows(
        whitelist.rule_names))


def test_filter_command_prints_rules_shares_and_totals(tmp_path):
    source = write_input(tmp_path / "in")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("rules:\n  - {name: since_2020, resource: Observation, "
                          "field: effective_at, min: 2020-01-01}\n")
    app = typer.Typer()
    app.command()(filter_command)
    runner = CliRunner()
    result = runner.invoke(app, ["--input", str(source), "--dry-run", "--rules",
                                 str(rules_file)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "since_2020" in result.output and "14.3%" in result.output  # 1 of 7
    assert "status_excluded" in result.output
    assert "Read 7 records in 2 files; passed 4" in result.output
    refused = runner.invoke(app, ["--input", str(source)])
    assert refused.exit_code == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: x, field: nope, in: [a]}\n")
    invalid = runner.invoke(app, ["--input", str(source), "--dry-run", "--rules", str(bad)],
                            env={"COLUMNS": "200"})
    assert invalid.exit_code == 1
    assert "bad.yaml: rule 'x': field 'nope' does not exist" in invalid.output
