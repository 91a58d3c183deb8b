"""Merging against PostgreSQL: refresh, manual link, unmerge, review, and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from vitalflow.generate import generate
from vitalflow.merge import engine, store
from vitalflow.merge.cli import IDENTITY_URL_ENV, app
from vitalflow.merge.identity_rows import identity_rows_from_json
from vitalflow.merge.settings import MergeSettings

pytestmark = pytest.mark.postgres
T0 = datetime(2025, 6, 1, tzinfo=UTC)
SETTINGS = MergeSettings()


@pytest.fixture(scope="module")
def identities(tmp_path_factory) -> pa.Table:
    out = tmp_path_factory.mktemp("merge-store")
    report = generate(out, 200, seed=11, defect_rate=0.0, visits=1, duplicate_share=0.2)
    return identity_rows_from_json((out / report.files[0]).read_bytes().splitlines())


def state(conn: psycopg.Connection) -> dict:
    links = store.load(conn, store.PERSON_LINK).drop_columns(["linked_at"]).to_pylist()
    return {"links": links, "persons": store.load(conn, store.PERSON).to_pylist()}


def person_of(conn: psycopg.Connection) -> dict[tuple[str, str], str]:
    return {(r["source_system"], r["source_id"]): r["person_id"]
            for r in store.load(conn, store.PERSON_LINK).to_pylist()}


def singles(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return [(r["source_system"], r["source_id"])
            for r in store.load(conn, store.PERSON_LINK).to_pylist() if r["rule"] == "single"]


def test_manual_merge_then_unmerge_restores_the_previous_state(database_url, identities):
    with psycopg.connect(database_url) as conn:
        first = engine.refresh(conn, identities, SETTINGS, now=T0)
        assert first.records == identities.num_rows and first.persons < first.records
        assert len(first.moved) == first.records
        before = state(conn)
        a, b = singles(conn)[:2]
        merged = engine.link(conn, a, b, SETTINGS, now=T0 + timedelta(days=1))
        assert merged.persons == first.persons - 1 and len(merged.moved) == 1
        person = person_of(conn)[a]
        assert person_of(conn)[b] == person
        undone = engine.unmerge(conn, SETTINGS, person_id=person, now=T0 + timedelta(days=2))
        assert state(conn) == before
        assert list(undone.moved) == list(merged.moved)
        # A later run with nothing new respects the decision.
        engine.refresh(conn, identities.slice(0, 0), SETTINGS, now=T0 + timedelta(days=3))
        assert state(conn) == before


def test_automatic_merge_of_a_new_record_then_unmerge(database_url, identities):
    with psycopg.connect(database_url) as conn:
        engine.refresh(conn, identities, SETTINGS, now=T0)
        before = state(conn)
        original = identities.slice(0, 1).to_pylist()[0]
        copy = pa.Table.from_pylist([{**original, "source_id": "zz-new-record"}],
                                    schema=identities.schema)
        result = engine.refresh(conn, copy, SETTINGS, now=T0 + timedelta(days=1))
        new_key = (original["source_system"], "zz-new-record")
        joined = person_of(conn)[new_key]
        assert joined == person_of(conn)[(original["source_system"], original["source_id"])]
        assert set(result.moved) == {new_key}
        engine.unmerge(conn, SETTINGS, person_id=joined, now=T0 + timedelta(days=2))
        after = state(conn)
        # The new record retrained the model, so match weights moved a little; who is who
        # and every golden record are as before, and the new record is a person of its own.
        persons = [(r["person_id"], r["source_id"]) for r in after["links"]]
        assert [p for p in persons if p[1] != "zz-new-record"] == [
            (r["person_id"], r["source_id"]) for r in before["links"]]
        assert [p for p in after["persons"] if p["person_id"] != person_of(conn)[new_key]] == \
            before["persons"]
        assert {r["rule"] for r in after["links"] if r["source_id"] == "zz-new-record"} == {
            "single"}
        engine.refresh(conn, copy, SETTINGS, now=T0 + timedelta(days=3))
        assert state(conn) == after


def test_newer_identity_replaces_older_and_first_seen_stays(database_url, identities):
    row = identities.slice(0, 1).to_pylist()[0]
    with psycopg.connect(database_url) as conn:
        store.ensure_schema(conn)
        store.upsert_identities(conn, identities.slice(0, 1), T0)
        older = {**row, "family": "Older", "last_updated": row["last_updated"] - timedelta(1)}
        newer = {**row, "family": "Newer", "last_updated": row["last_updated"] + timedelta(1)}
        for version in (older, newer):
            store.upsert_identities(conn, pa.Table.from_pylist([version], identities.schema),
                                    T0 + timedelta(days=5))
        stored = store.load(conn, store.SOURCE_RECORD).to_pylist()
        assert [(r["family"], r["first_seen"]) for r in stored] == [("Newer", T0)]


def test_cli_review_link_and_unmerge(database_url, identities, monkeypatch):
    with psycopg.connect(database_url) as conn:
        engine.refresh(conn, identities, SETTINGS.model_copy(update={"review_probability": 0.01}),
                       now=T0)
        pairs = sorted(store.load(conn, store.REVIEW_PAIR).to_pylist(), key=lambda p: (
            -p["match_probability"], p["source_system_l"], p["source_id_l"],
            p["source_system_r"], p["source_id_r"]))
    assert pairs
    monkeypatch.setenv(IDENTITY_URL_ENV, database_url)
    runner = CliRunner()
    shown = runner.invoke(app, ["review", "--limit", "1"])
    assert shown.exit_code == 0, shown.output
    assert pairs[0]["source_id_l"][:8] in shown.output and "birth_date" in shown.output
    top = pairs[0]
    linked = runner.invoke(app, ["link", top["source_id_l"], top["source_id_r"],
                                 "--source-system", top["source_system_l"],
                                 "--other-system", top["source_system_r"]])
    assert linked.exit_code == 0, linked.output
    apart = runner.invoke(app, ["unmerge", "--record", top["source_id_r"],
                                "--source-system", top["source_system_r"]])
    assert apart.exit_code == 0, apart.output
    with psycopg.connect(database_url) as conn:
        people = person_of(conn)
    assert people[(top["source_system_l"], top["source_id_l"])] != people[
        (top["source_system_r"], top["source_id_r"])]
    unknown = runner.invoke(app, ["unmerge", "--record", "no-such-id"])
    assert unknown.exit_code == 1 and "no-such-id" not in unknown.output
