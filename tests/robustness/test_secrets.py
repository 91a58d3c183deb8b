"""Issue 12, defects 2 and 7: no password in a server log, owner-only project files."""

from __future__ import annotations

import stat

import psycopg

from vitalflow.privacy.identity import REIDENTIFIER, ROLES
from vitalflow.services import APP_ROLE, EmbeddedPostgres


def _passwords(server: EmbeddedPostgres) -> dict[str, str]:
    return {line.split(":", 4)[3]: line.split(":", 4)[4]
            for line in server.passfile.read_text().splitlines() if line.strip()}


def test_no_password_reaches_the_server_log(own_pg):
    own_pg.up()  # a second start: the roles exist already
    own_pg.up()

    log = own_pg.logfile.read_text()
    assert len(_passwords(own_pg)) == len(ROLES) + 2  # the superuser, the owner, the roles
    for role, password in _passwords(own_pg).items():
        assert password not in log, f"password of {role} in {own_pg.logfile}"
    assert "PASSWORD '" not in log


def test_server_log_and_secrets_are_owner_only(own_pg):
    for path in [own_pg.logfile, own_pg.passfile, own_pg.portfile]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert stat.S_IMODE(own_pg.root.stat().st_mode) & 0o007 == 0  # others cannot even pass
    for path in own_pg.root.rglob("*"):
        # Nothing is readable or writable by others (folders the server's system user must
        # pass through may be traversable: x only).
        assert stat.S_IMODE(path.lstat().st_mode) & 0o066 == 0, path


def test_passwords_of_an_existing_install_are_rotated(own_pg):
    own_pg.password_scheme_file.unlink()  # an install made before issue 12
    before = _passwords(own_pg)

    own_pg.up()

    after = _passwords(own_pg)
    assert after.keys() == before.keys()
    assert all(after[role] != before[role] for role in before)
    for url in (own_pg.url(), own_pg.admin_url(), own_pg.url(role=REIDENTIFIER)):
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    own_pg.up()  # rotated once, not on every start
    assert _passwords(own_pg) == after
    assert APP_ROLE in after
