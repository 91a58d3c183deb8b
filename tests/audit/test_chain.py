"""The chain: append-only for the pipeline's role, tampering of every kind found by verify."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import psycopg
import pytest
from psycopg import errors

from vitalflow.audit.anchors import anchors_path, write_anchor
from vitalflow.audit.trail import AuditTrail, AuditUnavailable
from vitalflow.audit.verify import verify
from vitalflow.privacy.identity import ANALYST, AUDITOR

pytestmark = pytest.mark.postgres


def _events(settings, url, n, action="test.event"):
    trail = AuditTrail(settings, url)
    for i in range(n):
        trail.record(action, target="refined.patient", counts={"i": i})
    trail.close()


def _verify(settings, url):
    with psycopg.connect(url, autocommit=True) as conn:
        return verify(conn, settings)


def _tampered(admin, statement, *args):
    """Run a statement as the superuser past the append-only trigger (an attacker with the
    server's superuser can do this; verify is what must notice)."""
    with admin.transaction():
        admin.execute("SET LOCAL session_replication_role = replica")
        admin.execute(statement, args)


@pytest.fixture
def chain(settings, audit_db):
    _events(settings, audit_db, 10)
    return audit_db


def test_intact_chain_verifies_with_its_count(settings, chain):
    with psycopg.connect(chain, autocommit=True) as conn:
        assert write_anchor(conn, settings).seq == 10
    verdict = _verify(settings, chain)
    assert verdict.ok, verdict.problems
    assert (verdict.events, verdict.head, verdict.anchors) == (10, 10, 1)
    assert anchors_path(settings).stat().st_mode & 0o777 == 0o600


def test_event_holds_who_what_where_when(settings, chain):
    with psycopg.connect(chain) as conn:
        body = json.loads(conn.execute("SELECT body FROM audit.event WHERE seq = 3").fetchone()[0])
    assert body["action"] == "test.event" and body["outcome"] == "succeeded"
    assert body["db_role"] == "vitalflow" and body["os_user"] and body["host"] and body["pid"]
    assert body["at"].endswith("Z") and body["counts"] == {"i": 2}


@pytest.mark.parametrize("statement", ["UPDATE audit.event SET body = body WHERE seq = 1",
                                       "DELETE FROM audit.event WHERE seq = 1",
                                       "TRUNCATE audit.event"])
def test_pipeline_role_cannot_change_events(chain, statement):
    with psycopg.connect(chain) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_even_the_superuser_meets_the_trigger(admin):
    with pytest.raises(errors.InsufficientPrivilege, match="append-only"):
        admin.execute("DELETE FROM audit.event")


def test_analyst_cannot_read_audit_and_auditor_can(pg_server, chain):
    name = psycopg.conninfo.conninfo_to_dict(chain)["dbname"]
    with psycopg.connect(pg_server.url(name, role=ANALYST)) as conn, \
            pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT count(*) FROM audit.event")
    with psycopg.connect(pg_server.url(name, role=AUDITOR)) as conn:
        assert conn.execute("SELECT count(*) FROM audit.event").fetchone()[0] == 10
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT audit.append('{}'::jsonb)")


TAMPERING = {
    "altered": ("UPDATE audit.event SET body = replace(body, '\"i\": 4', '\"i\": 40') "
                "WHERE seq = 5", 5, "content"),
    "deleted": ("DELETE FROM audit.event WHERE seq = 4", 5, "missing"),
    "reordered": ("UPDATE audit.event e SET body = o.body, hash = o.hash, prev_hash = "
                  "o.prev_hash FROM audit.event o WHERE (e.seq, o.seq) IN ((3, 6), (6, 3))",
                  3, "content"),
    "first deleted": ("DELETE FROM audit.event WHERE seq = 1", 2, "missing"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_tampering_is_found_at_the_first_broken_event(settings, chain, admin, kind):
    statement, first, words = TAMPERING[kind]
    _tampered(admin, statement)
    verdict = _verify(settings, chain)
    assert not verdict.ok and verdict.broken_seq == first
    assert words in verdict.problems[0] and f"event {first}" in verdict.problems[0]


def test_inserted_event_is_found(settings, chain, admin):
    """A forged event in the middle, with a hash computed as the real writer would: the event
    after it no longer links to its predecessor."""
    _tampered(admin, "UPDATE audit.event SET seq = seq + 100 WHERE seq > 6")
    _tampered(admin, "UPDATE audit.event SET seq = seq - 99 WHERE seq > 100")
    _tampered(admin, """INSERT INTO audit.event (seq, prev_hash, hash, body)
        SELECT 7, hash, encode(sha256(convert_to('7|' || hash || '|{"action": "forged"}',
               'UTF8')), 'hex'), '{"action": "forged"}' FROM audit.event WHERE seq = 6""")
    verdict = _verify(settings, chain)
    assert not verdict.ok and verdict.broken_seq == 8


def test_truncated_tail_is_found_by_the_anchor(settings, chain, admin):
    with psycopg.connect(chain, autocommit=True) as conn:
        write_anchor(conn, settings)
    _tampered(admin, "DELETE FROM audit.event WHERE seq > 7")
    verdict = _verify(settings, chain)
    assert not verdict.ok and verdict.broken_seq == 10
    assert "truncated" in verdict.problems[0]


def test_rewritten_chain_is_found_by_the_anchor(settings, chain, admin):
    """Rebuilt from scratch with valid hashes: only the anchor outside the database knows."""
    with psycopg.connect(chain, autocommit=True) as conn:
        write_anchor(conn, settings)
    _tampered(admin, "DELETE FROM audit.event")
    _events(settings, chain, 12, action="innocent")
    verdict = _verify(settings, chain)
    assert not verdict.ok and "rewritten" in verdict.problems[0]


def test_altered_anchor_is_found(settings, chain):
    with psycopg.connect(chain, autocommit=True) as conn:
        write_anchor(conn, settings)
    path = anchors_path(settings)
    anchor = json.loads(path.read_text())
    path.write_text(json.dumps({**anchor, "seq": 3}) + "\n")
    verdict = _verify(settings, chain)
    assert not verdict.ok and "wrong signature" in verdict.problems[0]


def test_concurrent_writers_keep_one_chain(settings, audit_db):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda w: _events(settings, audit_db, 25, f"writer.{w}"), range(8)))
    verdict = _verify(settings, audit_db)
    assert verdict.ok, verdict.problems
    assert verdict.events == verdict.head == 200


def _writer_process(url: str, home: str, n: int) -> None:
    from vitalflow.config import load_settings

    _events(load_settings(paths={"home": home}, database={"url": url}), url, n, "process")


def test_concurrent_processes_keep_one_chain(settings, audit_db):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=context) as pool:
        list(pool.map(_writer_process, [audit_db] * 3, [str(settings.paths.root)] * 3,
                      [30] * 3))
    verdict = _verify(settings, audit_db)
    assert verdict.ok and verdict.events == 90, verdict.problems


def test_unwritable_event_stops_the_action(settings, pg_server, audit_db):
    name = psycopg.conninfo.conninfo_to_dict(audit_db)["dbname"]
    trail = AuditTrail(settings, pg_server.url(name, role=ANALYST))  # may not append
    ran = []
    with pytest.raises(AuditUnavailable), trail.action("data.export", target="derived.x"):
        ran.append(True)
    assert ran == []
