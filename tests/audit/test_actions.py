"""Every audited action leaves its event; no secret or patient identifier in any event."""

from __future__ import annotations

import json
import os

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

from tests.fhir_factory import observation, patient, write_ndjson
from vitalflow import pipeline
from vitalflow.audit.trail import AuditUnavailable
from vitalflow.cli import app
from vitalflow.generate import generate
from vitalflow.privacy.identity import REIDENTIFIER
from vitalflow.privacy.keys import KEY_ENV, key_from_text, write_key_file
from vitalflow.privacy.pseudonym import pseudonym
from vitalflow.storage import open_layers

pytestmark = pytest.mark.postgres
NEW_KEY_TEXT = "audit-test-second-key-" + "z" * 30


def events(url: str, action: str | None = None) -> list[dict]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT body FROM audit.event WHERE %s::text IS NULL OR action = %s "
                            "ORDER BY seq", (action, action)).fetchall()
    return [json.loads(body) for body, in rows]


@pytest.fixture
def cli(settings, monkeypatch):
    """The vitalflow command line in-process, on the test's database and home."""
    monkeypatch.setenv("VITALFLOW__DATABASE__URL", settings.database.url)
    monkeypatch.setenv("VITALFLOW__PATHS__HOME", str(settings.paths.root))

    def invoke(*args: str, code: int = 0):
        result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
        assert result.exit_code == code, result.output
        return result
    return invoke


@pytest.fixture
def ran(settings, tmp_path, roles):
    """Duplicates merged by a run, so every identity action has something to act on."""
    settings.merge.enabled = True
    twin = patient("twin-a", birth="1971-03-04", gender="female")
    twin["name"] = [{"family": "Lindqvist", "given": ["Astrid"]}]
    twin["identifier"] = [{"system": "urn:mrn", "value": "MRN-77177"}]
    copy = json.loads(json.dumps(twin)) | {"id": "twin-b"}
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [twin, copy])
    write_ndjson(tmp_path / "in" / "Observation.ndjson", [
        observation("h1", "twin-a", "height", 170, "2022-01-01T09:00:00Z"),
        observation("w1", "twin-b", "weight", 85, "2022-02-01T09:00:00Z")])
    summary = pipeline.run(settings, tmp_path / "in")
    return settings, summary


def test_pipeline_run_leaves_start_batches_rows_and_end(ran):
    settings, summary = ran
    trail = [e for e in events(settings.database.url) if e.get("run_id") == summary["run_id"]]
    assert [e["action"] for e in trail] == ["pipeline.run", "ingest.batch", "ingest.batch",
                                            "refine.rows", "derive.rows", "pipeline.run"]
    start, *batches, refine, derive, end = trail
    assert start["outcome"] == "started" and len(start["params"]["settings_sha256"]) == 64
    assert len(start["params"]["whitelist_sha256"]) == 64 and start["params"]["profile"]
    assert {b["params"]["file"] for b in batches} == {"Patient.ndjson", "Observation.ndjson"}
    assert all(len(b["params"]["file_sha256"]) == 64 for b in batches)
    assert refine["counts"]["Patient"]["refined"] == 2
    assert derive["counts"]["bmi_rows_written"] == summary["derive"]["bmi_rows_written"]
    assert end["outcome"] == "succeeded" and "refine_seconds" in end["counts"]
    assert [e["action"] for e in events(settings.database.url, "privacy.key_registered")]


def test_failed_run_records_the_error_class(settings, tmp_path, roles):
    with pytest.raises(ZeroDivisionError), pipeline.PipelineRun(settings) as run:
        1 / 0
    end = events(settings.database.url, "pipeline.run")[-1]
    assert (end["run_id"], end["outcome"], end["error_class"]) == (
        run.run_id, "failed", "ZeroDivisionError")


def test_rebuild_is_recorded_before_it_empties_the_layers(ran):
    settings, _ = ran
    layers = open_layers(settings)
    try:
        pipeline.rebuild(settings, layers)
    finally:
        layers.close()
    assert events(settings.database.url, "pipeline.rebuild")[0]["outcome"] == "started"


def test_export_is_recorded_with_its_rows(ran, cli, tmp_path):
    settings, _ = ran
    cli("export", "derived.patient_bmi_latest", "--out", str(tmp_path / "bmi.csv"))
    started, done = events(settings.database.url, "data.export")
    assert (started["outcome"], done["outcome"]) == ("started", "succeeded")
    assert done["target"] == "derived.patient_bmi_latest" and done["counts"]["rows"] == 1


def test_reidentify_is_recorded_with_its_reason_by_the_database(ran, cli, pg_server):
    settings, _ = ran
    target = pseudonym(key_from_text(os.environ[KEY_ENV], "test"), "fhir", "twin-a")
    name = conninfo_to_dict(settings.database.url)["dbname"]
    shown = cli("reidentify", target, "--reason", "ticket 12: consent withdrawn",
                "--url", pg_server.url(name, role=REIDENTIFIER))
    assert "twin-a" in shown.output
    event, = events(settings.database.url, "identity.reidentify")
    assert event["db_role"] == REIDENTIFIER and event["app_user"] and event["pid"]
    assert event["params"] == {"pseudonym": target, "reason": "ticket 12: consent withdrawn"}
    assert event["counts"] == {"found": 1}


def test_keys_rekey_and_merge_decisions_are_recorded(ran, cli, tmp_path):
    settings, _ = ran
    cli("keys", "new", "--out", str(tmp_path / "made.key"))
    assert events(settings.database.url, "privacy.key_created")[-1]["counts"]["key_id"]
    cli("merge", "unmerge", "--record", "twin-b")
    cli("merge", "link", "twin-a", "twin-b")
    for action in ("merge.unmerge", "merge.link"):
        event, = events(settings.database.url, action)
        assert all(p.startswith("p_") for p in event["params"]["records"]), event
    write_key_file(tmp_path / "new.key", NEW_KEY_TEXT)
    cli("rekey", "--new-key-file", str(tmp_path / "new.key"), "--yes")
    rekey, = events(settings.database.url, "privacy.rekey")
    assert rekey["counts"]["identities"] >= 2 and rekey["params"]["new_key_id"]


def test_service_stop_is_recorded(ran, cli):
    settings, _ = ran
    cli("services", "down", "s3")
    assert events(settings.database.url, "service.stop")[0]["target"] == "s3"


def test_auditor_commands_show_verify_export(ran, cli, tmp_path):
    settings, summary = ran
    shown = cli("audit", "show", "--action", "pipeline", "--json")
    lines = [json.loads(line) for line in shown.output.splitlines()]
    assert {e["action"] for e in lines} == {"pipeline.run"}
    assert "pipeline.run" in cli("audit", "show", "--user", "vitalflow").output
    verified = cli("audit", "verify")
    assert "events verified" in verified.output
    cli("audit", "export", "--out", str(tmp_path / "siem.jsonl"))
    exported = (tmp_path / "siem.jsonl").read_text().splitlines()
    assert len(exported) == len(events(settings.database.url))
    assert (tmp_path / "siem.jsonl").stat().st_mode & 0o777 == 0o600


def test_verify_exits_1_naming_the_broken_event(ran, cli, admin):
    with admin.transaction():
        admin.execute("SET LOCAL session_replication_role = replica")
        admin.execute("UPDATE audit.event SET body = replace(body, 'succeeded', 'failed') "
                      "WHERE seq = (SELECT max(seq) FROM audit.event WHERE outcome = "
                      "'succeeded')")
    result = cli("audit", "verify", code=1)
    assert "broken" in result.output and "event " in result.output


def test_no_secret_or_patient_identifier_in_any_event(settings, tmp_path, roles, cli):
    generate(tmp_path / "in", 40, seed=5, defect_rate=0.2)
    found = set()
    for line in (tmp_path / "in" / "Patient.ndjson").read_text().splitlines():
        try:
            resource = json.loads(line)
        except ValueError:
            continue
        if isinstance(resource, dict):
            found.add(str(resource.get("id")))
            for name in resource.get("name") or []:
                found.update(n for n in [name.get("family"), *(name.get("given") or [])] if n)
            found.update(str(i.get("value")) for i in resource.get("identifier") or [])
    passfile = conninfo_to_dict(settings.database.url)["passfile"]
    with open(passfile) as handle:
        passwords = [line.rsplit(":", 1)[1] for line in handle.read().splitlines()]
    pipeline.run(settings, tmp_path / "in")
    cli("export", "refined.patient", "--out", str(tmp_path / "p.parquet"))
    audit_key = (settings.paths.root / "secrets" / "audit.key").read_text().strip()
    secrets = {s for s in found if len(s) > 3 and s != "None"}
    secrets |= {os.environ[KEY_ENV], audit_key, *passwords}
    with psycopg.connect(settings.database.url) as conn:
        text = "\n".join(r[0] for r in conn.execute("SELECT body FROM audit.event"))
    assert len(text) > 500
    assert not sorted(s for s in secrets if s in text), "identifier or secret in the audit trail"


def test_raw_maintenance_and_runs_on_another_profile_are_recorded(cli, settings, tmp_path,
                                                                  monkeypatch, roles):
    """Raw on Iceberg (a local catalog): the audit still lives in the control database."""
    monkeypatch.setenv("VITALFLOW__ICEBERG__CATALOG_URL", f"iceberg+sqlite:///{tmp_path}/c.db"
                       f"?warehouse=file://{tmp_path}/warehouse")
    monkeypatch.setenv("VITALFLOW__STORAGE__PROFILES", '{"icy": {"raw": "iceberg"}}')
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1", birth="1970-01-01")])
    cli("run", "--profile", "icy", "--input", str(tmp_path / "in"), "--json")
    cli("raw", "maintain", "--profile", "icy", "--older-than-days", "0")
    batch, = events(settings.database.url, "ingest.batch")
    assert batch["params"]["file"] == "Patient.ndjson"
    started, done = events(settings.database.url, "raw.maintain")
    assert (started["outcome"], done["outcome"]) == ("started", "succeeded")
    assert "expired_snapshots" in done["counts"]


def test_reidentifier_statements_are_logged_by_the_server(ran, pg_server):
    with psycopg.connect(pg_server.admin_url()) as conn:
        config, = conn.execute("SELECT rolconfig FROM pg_roles WHERE rolname = %s",
                               (REIDENTIFIER,)).fetchone()
    assert "log_statement=all" in config


def test_lost_pipeline_events_keep_the_data_and_a_run_without_its_start_does_not_begin(
        settings, tmp_path, admin, caplog):
    write_ndjson(tmp_path / "a" / "Patient.ndjson", [patient("p1", birth="1970-01-01")])
    write_ndjson(tmp_path / "b" / "Patient.ndjson", [patient("p2", birth="1980-01-01")])
    pipeline.run(settings, tmp_path / "a")  # registers the key (a privacy event: fail closed)
    layers = open_layers(settings)
    with pipeline.PipelineRun(settings, layers=layers) as run:
        # The audit breaks after the run began.
        admin.execute("REVOKE EXECUTE ON FUNCTION audit.append(jsonb) FROM vitalflow")
        run.ingest(tmp_path / "b")
        run.refine()
        run.derive()
    assert "could not be written" in caplog.text and "data is kept" in caplog.text
    with psycopg.connect(settings.database.url) as conn:
        assert conn.execute("SELECT count(*) FROM refined.patient").fetchone()[0] == 2
        assert conn.execute("SELECT status FROM meta.run WHERE run_id = %s",
                            (run.run_id,)).fetchone()[0] == "succeeded"
    with pytest.raises(AuditUnavailable), pipeline.PipelineRun(settings, layers=layers):
        pass
    layers.close()
    with psycopg.connect(settings.database.url) as conn:
        assert conn.execute("SELECT count(*) FROM meta.run").fetchone()[0] == 2


def test_every_sql_query_is_recorded_with_its_user_and_rows(ran):
    from vitalflow.sql.policy import QueryRefused
    from vitalflow.sql.service import SqlService

    settings, _ = ran
    service = SqlService(settings)
    try:
        result = service.query("SELECT count(*) AS n FROM derived.patient_bmi_latest",
                               user="ana", role="analyst")
        with pytest.raises(QueryRefused):
            service.query("SELECT * FROM identity.patient_identity", user="ana",
                          role="analyst")
    finally:
        service.close()
    recorded = events(settings.database.url, "data.query")
    assert [e["outcome"] for e in recorded] == ["started", "succeeded", "started", "failed"]
    assert all(e["app_user"] == "ana" for e in recorded)
    assert recorded[1]["counts"] == {"rows": result.table.num_rows}
    assert "identity" not in json.dumps(recorded)  # statements are named by their hash only
