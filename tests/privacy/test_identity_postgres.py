"""Identity schema, roles, re-identification and re-keying against a real PostgreSQL."""

from __future__ import annotations

import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

from vitalflow.generate import generate
from vitalflow.privacy.cli import app
from vitalflow.privacy.identity import (ANALYST, REIDENTIFIER, KeyMismatch,
                                        ReidentificationDenied, ensure_embedded_roles,
                                        ensure_identity_schema, ensure_roles, grant_access,
                                        record_identities, register_key, reidentify)
from vitalflow.privacy.keys import KEY_ENV, key_from_text, new_key_text, write_key_file
from vitalflow.privacy.pseudonym import Pseudonymiser, pseudonym, shift_days
from vitalflow.privacy.rekey import PSEUDONYM_COLUMNS, RekeyError, rekey
from vitalflow.privacy.settings import PrivacySettings
from vitalflow.ingest.parquet import ParquetRawStore, discover_inputs
from vitalflow.refine.standardise import Standardiser
from vitalflow.tables import OBSERVATION, PATIENT, PATIENT_BMI_LATEST

pytestmark = pytest.mark.postgres

KEY_TEXT = "first-pseudonymisation-key-" + "x" * 24
NEW_KEY_TEXT = "second-pseudonymisation-key-" + "y" * 24
KEY = key_from_text(KEY_TEXT, "test")
NEW_KEY = key_from_text(NEW_KEY_TEXT, "test")
JOINS = {
    "patients": "SELECT count(*) FROM refined.patient",
    "observations": "SELECT count(*) FROM refined.observation",
    "pending": "SELECT count(*) FROM refined.observation_pending",
    "derived": "SELECT count(*) FROM derived.patient_bmi_latest",
    "touched": "SELECT count(*) FROM meta.patient_touch",
    "observation_join": "SELECT count(*) FROM refined.observation o "
                        "JOIN refined.patient p USING (patient_key)",
    "derived_join": "SELECT count(*) FROM derived.patient_bmi_latest d JOIN refined.patient p "
                    "USING (patient_key) JOIN refined.observation o "
                    "ON o.observation_id = d.weight_observation_id "
                    "AND o.patient_key = d.patient_key",
    "pending_join": "SELECT count(*) FROM refined.observation_pending o "
                    "JOIN identity.patient_identity i ON i.pseudonym = o.patient_key",
    "per_patient": "SELECT string_agg(n::text, ',' ORDER BY n) FROM (SELECT count(*) n FROM "
                   "refined.observation GROUP BY patient_key) c",
    "identities": "SELECT count(*) FROM identity.patient_identity",
}


@pytest.fixture(scope="session")
def roles(pg_server) -> None:
    ensure_embedded_roles(pg_server.admin_url(), pg_server.passfile)


def _ddl(table, name: str | None = None) -> str:
    columns = ", ".join(f"{c.name} {c.sql_type}" for c in table.columns)
    return (f"CREATE TABLE {name or table.qualified_name} ({columns}, "
            f"PRIMARY KEY ({', '.join(table.primary_key)}))")


def _load(conn: psycopg.Connection, tmp_path: Path, privacy: PrivacySettings) -> dict:
    """A small generated input through standardise + pseudonymise into refined and derived;
    returns what must never leave the identity schema."""
    source = tmp_path / "input"
    generate(source, 30, seed=5, defect_rate=0.0)
    for schema in ("refined", "derived", "meta"):
        conn.execute(f"CREATE SCHEMA {schema}")
    for table in (PATIENT, OBSERVATION, PATIENT_BMI_LATEST):
        conn.execute(_ddl(table))
    conn.execute(_ddl(OBSERVATION, "refined.observation_pending"))
    conn.execute("CREATE TABLE meta.patient_touch (patient_key text NOT NULL, "
                 "change_seq bigint NOT NULL)")
    ensure_identity_schema(conn)
    assert grant_access(conn) == []
    register_key(conn, KEY)
    raw = ParquetRawStore(tmp_path / "raw")
    batches = [raw.ingest(p).batch for p in discover_inputs(source)]
    batches.sort(key=lambda b: b.resource_type_hint != "Patient")
    standardiser = Standardiser(["8302-2", "29463-7", "39156-5"], ["cancelled"], 1 << 24)
    pseudonymiser = Pseudonymiser(KEY, privacy)
    for batch in batches:
        for records in raw.read(batch.batch_id):
            out = standardiser.run(records, batch.resource_type_hint)
            for table, rows in ((PATIENT, out.patients), (OBSERVATION, out.observations)):
                done = pseudonymiser.apply(rows, table)
                record_identities(conn, done.identities, KEY)
                names = done.table.column_names
                conn.cursor().executemany(
                    f"INSERT INTO {table.qualified_name} ({', '.join(names)}, change_seq, "
                    f"refined_at) VALUES ({', '.join(['%s'] * len(names))}, 1, now()) "
                    "ON CONFLICT DO NOTHING",
                    [tuple(r.values()) for r in done.table.to_pylist()])
    # An orphan waits for its patient; two patients are marked as touched.
    conn.execute("WITH moved AS (DELETE FROM refined.observation WHERE observation_id = "
                 "(SELECT min(observation_id) FROM refined.observation) RETURNING *) "
                 "INSERT INTO refined.observation_pending SELECT * FROM moved")
    conn.execute("INSERT INTO meta.patient_touch SELECT patient_key, 1 FROM refined.patient "
                 "ORDER BY patient_key LIMIT 2")
    conn.execute("""
        INSERT INTO derived.patient_bmi_latest (patient_key, weight_kg, weight_observation_id,
                                                weight_at, weight_category, computed_at)
        SELECT DISTINCT ON (patient_key) patient_key, value, observation_id, effective_at,
               'unknown', now()
          FROM refined.observation WHERE measure = 'body_weight'
         ORDER BY patient_key, effective_at DESC""")
    # Like meta.enforce_owner: only the derive flow may write derived tables.
    conn.execute("""CREATE FUNCTION meta.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'only derive writes here'; END $$""")
    conn.execute("CREATE TRIGGER guard BEFORE INSERT OR UPDATE OR DELETE ON "
                 "derived.patient_bmi_latest FOR EACH STATEMENT EXECUTE FUNCTION meta.refuse()")
    people = [json.loads(line) for line in (source / "Patient.ndjson").read_text().splitlines()]
    secrets = {KEY_TEXT}
    for person in people:
        secrets.add(person["id"])
        secrets.update(i["value"] for i in person.get("identifier", []))
        for name in person.get("name", []):
            secrets.add(name["family"])
        secrets.update(a["postalCode"] for a in person.get("address", []))
    return {"secrets": secrets, "people": people}


@pytest.fixture
def loaded(roles, database_url, tmp_path):
    with psycopg.connect(database_url) as conn:
        facts = _load(conn, tmp_path, PrivacySettings(source_system="ehr"))
    return database_url, facts


def _counts(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchone()[0] for name, query in JOINS.items()}


def _role_url(pg_server, database_url: str, role: str) -> str:
    return pg_server.url(conninfo_to_dict(database_url)["dbname"], role)


def test_analyst_reads_refined_and_derived_but_nothing_in_identity(pg_server, loaded):
    url, _ = loaded
    with psycopg.connect(_role_url(pg_server, url, ANALYST), autocommit=True) as analyst:
        assert analyst.info.user == ANALYST
        assert analyst.execute("SELECT count(*) FROM derived.patient_bmi_latest").fetchone()[0]
        assert analyst.execute("SELECT count(*) FROM refined.observation").fetchone()[0]
        for query in ("SELECT * FROM identity.patient_identity",
                      "SELECT * FROM identity.reidentification_log",
                      "SELECT * FROM identity.reidentify('p_x', 'curiosity only', 'me')"):
            with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
                analyst.execute(query)
        with pytest.raises(ReidentificationDenied, match=f"connect as a member of {REIDENTIFIER}"):
            reidentify(analyst, "p_x", "curiosity only", "me")


def test_reidentification_needs_the_role_and_a_reason_and_is_logged(pg_server, loaded):
    url, facts = loaded
    person = facts["people"][0]["id"]
    target = pseudonym(KEY, "ehr", person)
    with psycopg.connect(_role_url(pg_server, url, REIDENTIFIER), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM identity.patient_identity")
        with pytest.raises(ValueError, match="reason of at least 10 characters"):
            reidentify(conn, target, "why not", "dr-who")
        assert reidentify(conn, target, "ticket 123: safety recall", "dr-who") == [("ehr", person)]
        assert reidentify(conn, "p_unknown", "ticket 124: check", "dr-who") == []
    with psycopg.connect(url) as conn:
        log = conn.execute("SELECT db_user, requested_by, pseudonym, reason, found, "
                           "at > now() - interval '1 minute' FROM "
                           "identity.reidentification_log ORDER BY id").fetchall()
    assert log == [(REIDENTIFIER, "dr-who", target, "ticket 123: safety recall", True, True),
                   (REIDENTIFIER, "dr-who", "p_unknown", "ticket 124: check", False, True)]


def test_rekey_loses_nothing_and_changes_the_key_id(loaded):
    url, _ = loaded
    before = _counts(url)
    assert before["pending"] == 1 and before["touched"] == 2 and before["derived"] > 10
    with psycopg.connect(url) as conn:
        old = {r[0] for r in conn.execute("SELECT patient_key FROM refined.observation")}
        result = rekey(conn, KEY, NEW_KEY)
    assert (result.old_key_id, result.new_key_id) == (KEY.key_id, NEW_KEY.key_id)
    assert result.identities == before["identities"]
    assert set(result.rows) == {f"{t}.{c}" for t, c in PSEUDONYM_COLUMNS}
    assert result.rows["refined.observation.patient_key"] == before["observations"]
    assert _counts(url) == before
    with psycopg.connect(url) as conn:
        new = {r[0] for r in conn.execute("SELECT patient_key FROM refined.observation")}
        assert not old & new
        mapping = conn.execute("SELECT pseudonym, source_system, source_id, key_id "
                               "FROM identity.patient_identity").fetchall()
        assert all(p == pseudonym(NEW_KEY, s, i) and k == NEW_KEY.key_id
                   for p, s, i, k in mapping)
        assert conn.execute("SELECT key_id FROM identity.pseudonym_key WHERE retired_at IS NULL"
                            ).fetchall() == [(NEW_KEY.key_id,)]
        assert conn.execute("SELECT old_key_id, new_key_id FROM identity.rekey_log").fetchall() \
            == [(KEY.key_id, NEW_KEY.key_id)]
        # The ownership guard is back on.
        with pytest.raises(errors.RaiseException, match="only derive writes here"):
            conn.execute("DELETE FROM derived.patient_bmi_latest")
    with psycopg.connect(url) as conn:
        with pytest.raises(KeyMismatch, match=f"key id {KEY.key_id}.*key id {NEW_KEY.key_id}"):
            register_key(conn, KEY)
        register_key(conn, NEW_KEY)
        # Back again: nothing lost in a round trip either.
        rekey(conn, NEW_KEY, KEY)
        assert {r[0] for r in conn.execute("SELECT patient_key FROM refined.observation")} == old
    assert _counts(url) == before


def test_rekey_with_date_shifting_keeps_every_interval(roles, database_url, tmp_path):
    privacy = PrivacySettings(date_shift_days=200, birth_date="none", source_system="ehr")
    interval_sql = ("SELECT o.observation_id, o.effective_at - (p.birth_date::timestamp "
                    "AT TIME ZONE 'UTC') "
                    "FROM refined.observation o JOIN refined.patient p USING (patient_key) "
                    "ORDER BY 1")
    with psycopg.connect(database_url) as conn:
        facts = _load(conn, tmp_path, privacy)
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TimeZone = 'Europe/Berlin'")  # shifts are whole days of 86,400 s
        intervals = conn.execute(interval_sql).fetchall()
        births = dict(conn.execute("SELECT patient_key, birth_date FROM refined.patient"))
        rekey(conn, KEY, NEW_KEY, privacy=privacy)
        assert conn.execute(interval_sql).fetchall() == intervals
        drift = conn.execute("SELECT count(*) FROM derived.patient_bmi_latest d JOIN "
                             "refined.observation o ON o.observation_id = "
                             "d.weight_observation_id WHERE o.effective_at <> d.weight_at"
                             ).fetchone()[0]
        assert drift == 0
        for person in facts["people"]:
            old_p, new_p = (pseudonym(k, "ehr", person["id"]) for k in (KEY, NEW_KEY))
            moved = (shift_days(NEW_KEY, "ehr", person["id"], 200)
                     - shift_days(KEY, "ehr", person["id"], 200))
            now = conn.execute("SELECT birth_date FROM refined.patient WHERE patient_key = %s",
                               (new_p,)).fetchone()[0]
            assert now == births[old_p] + timedelta(days=moved)


def test_rekey_refuses_a_wrong_key_or_unknown_values_and_changes_nothing(loaded):
    url, _ = loaded
    before = _counts(url)
    stranger = key_from_text(new_key_text(), "test")
    with psycopg.connect(url) as conn:
        with pytest.raises(RekeyError, match="is not the database's active key"):
            rekey(conn, stranger, NEW_KEY)
        conn.rollback()
        with pytest.raises(RekeyError, match="same as the old one"):
            rekey(conn, KEY, KEY)
        conn.execute("INSERT INTO meta.patient_touch VALUES ('not-a-pseudonym', 2)")
        with pytest.raises(RekeyError, match="meta.patient_touch.patient_key holds 1 values"):
            rekey(conn, KEY, NEW_KEY)
        conn.rollback()
        conn.execute("INSERT INTO identity.patient_identity (pseudonym, source_system, "
                     "source_id, key_id) VALUES ('p_forged', 'ehr', 'someone', %s)",
                     (KEY.key_id,))
        with pytest.raises(RekeyError, match="does not reproduce the stored pseudonyms"):
            rekey(conn, KEY, NEW_KEY)
        conn.rollback()
    assert _counts(url) == before
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT key_id FROM identity.pseudonym_key").fetchall() == \
            [(KEY.key_id,)]


def test_no_source_id_name_or_key_in_any_table_log_or_error(loaded, caplog, monkeypatch):
    url, facts = loaded
    secrets = facts["secrets"]
    assert len(secrets) > 60
    with caplog.at_level(logging.DEBUG), psycopg.connect(url) as conn:
        messages = []
        for attempt in (lambda: register_key(conn, NEW_KEY),
                        lambda: rekey(conn, key_from_text(new_key_text(), "t"), NEW_KEY)):
            try:
                attempt()
            except (KeyMismatch, RekeyError) as exc:
                messages += [str(exc), repr(exc)]
            conn.rollback()
        rekey(conn, KEY, NEW_KEY)
        conn.commit()
        tables = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE "
            "table_schema NOT IN ('identity', 'pg_catalog', 'information_schema')").fetchall()
        dumped = "\n".join(str(conn.execute(f"SELECT t::text FROM {name} t").fetchall())
                           for (name,) in tables)
    assert len(tables) >= 5 and "p_" in dumped
    assert len(messages) == 4
    leaks = [s for s in secrets if s in dumped or s in caplog.text or any(
        s in m for m in messages)]
    assert not leaks


def test_role_creation_is_idempotent_and_safe_concurrently(pg_server):
    names = [f"vf_race_{uuid.uuid4().hex[:8]}" for _ in range(2)]

    def create(_):
        with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
            ensure_roles(conn, roles=names)

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(create, range(8)))
        create(None)
        with psycopg.connect(pg_server.admin_url()) as conn:
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s) AND NOT "
                                "rolcanlogin", (names,)).fetchone()[0] == 2
    finally:
        with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
            for name in names:
                conn.execute(f"DROP ROLE IF EXISTS {name}")


def test_rekey_command_moves_the_database_to_the_new_key(loaded, tmp_path, monkeypatch):
    url, _ = loaded
    before = _counts(url)
    new_file = tmp_path / "new.key"
    write_key_file(new_file, NEW_KEY_TEXT)
    monkeypatch.setenv(KEY_ENV, KEY_TEXT)
    monkeypatch.setenv("VITALFLOW__DATABASE__URL", url)
    result = CliRunner().invoke(app, ["rekey", "--new-key-file", str(new_file), "--yes"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"from key id {KEY.key_id} to {NEW_KEY.key_id}" in result.output
    assert KEY_TEXT not in result.output and NEW_KEY_TEXT not in result.output
    assert _counts(url) == before
    again = CliRunner().invoke(app, ["rekey", "--new-key-file", str(new_file), "--yes"])
    assert again.exit_code == 1 and "is not the database's active key" in again.output


def test_reidentify_command_prints_the_identity_and_logs_it(pg_server, loaded):
    url, facts = loaded
    person = facts["people"][1]["id"]
    target = pseudonym(KEY, "ehr", person)
    as_reidentifier = _role_url(pg_server, url, REIDENTIFIER)
    runner = CliRunner()
    shown = runner.invoke(app, ["reidentify", target, "--reason", "ticket 9: consent withdrawn",
                                "--url", as_reidentifier])
    assert shown.exit_code == 0, shown.output
    assert f"ehr\t{person}" in shown.output
    denied = runner.invoke(app, ["reidentify", target, "--reason", "ticket 9: consent check",
                                 "--url", _role_url(pg_server, url, ANALYST)])
    assert denied.exit_code == 1 and "may not re-identify" in denied.output
    assert person not in denied.output
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM identity.reidentification_log").fetchone()[0] \
            == 1
