"""Pseudonymisation keys: where they come from, the development key, and that none ever shows."""

from __future__ import annotations

import hashlib
import logging
import stat

import pytest
from typer.testing import CliRunner

from vitalflow.privacy.cli import app
from vitalflow.privacy.keys import (KEY_ENV, KeyProblem, configured_key, dev_key_path,
                                    key_from_text, load_key, new_key_text, read_key_file,
                                    write_key_file)
from vitalflow.privacy.settings import PrivacySettings

SECRET = "s3cr3t-" + "k" * 40


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


def test_environment_wins_over_key_file(tmp_path, monkeypatch):
    key_file = tmp_path / "k"
    write_key_file(key_file, new_key_text())
    monkeypatch.setenv(KEY_ENV, SECRET)
    key = load_key(PrivacySettings(key_file=key_file), tmp_path / "home")
    assert key == key_from_text(SECRET, "x")
    assert key.origin == f"environment variable {KEY_ENV}"
    monkeypatch.delenv(KEY_ENV)
    assert load_key(PrivacySettings(key_file=key_file), tmp_path / "home") == \
        read_key_file(key_file)


def test_without_a_key_a_development_key_is_created_and_reused(tmp_path, caplog):
    home = tmp_path / "home"
    with caplog.at_level(logging.WARNING, logger="vitalflow.privacy"):
        key = load_key(PrivacySettings(), home)
    path = dev_key_path(home)
    assert path == home / "secrets" / "pseudonym.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "created a development key at" in caplog.text and key.key_id in caplog.text
    assert path.read_text().strip() not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vitalflow.privacy"):
        assert load_key(PrivacySettings(), home) == key
    assert not caplog.text


def test_production_refuses_to_start_without_a_key(tmp_path):
    home = tmp_path / "home"
    with pytest.raises(KeyProblem, match="privacy.require_key is set"):
        load_key(PrivacySettings(require_key=True), home)
    assert not dev_key_path(home).exists()
    load_key(PrivacySettings(), home)  # a development key exists now ...
    with pytest.raises(KeyProblem):  # ... and production still does not use it
        load_key(PrivacySettings(require_key=True), home)


def test_bad_keys_are_refused_without_showing_them(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "short-secret-value")
    with pytest.raises(KeyProblem) as caught:
        load_key(PrivacySettings(), tmp_path)
    assert "short-secret-value" not in str(caught.value)
    assert "shorter than 32 characters" in str(caught.value)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(KeyProblem, match="does not exist"):
        load_key(PrivacySettings(key_file=tmp_path / "nope"), tmp_path)


def test_key_id_is_keyed_and_repr_shows_no_secret():
    key = key_from_text(SECRET, "test")
    assert len(key.key_id) == 12
    assert key.key_id not in (hashlib.sha256(SECRET.encode()).hexdigest(),
                              hashlib.sha256(SECRET.encode()).hexdigest()[:12])
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert SECRET not in text and key.key_id in text
    assert key_from_text(" " + SECRET + "\n", "other") == key
    assert key_from_text(new_key_text(), "x").key_id != key.key_id


def test_key_files_are_private_and_never_overwritten(tmp_path, caplog):
    path = tmp_path / "secrets" / "new.key"
    write_key_file(path, new_key_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_key_file(path, new_key_text())
    assert not list(path.parent.glob(".*partial"))
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="vitalflow.privacy"):
        read_key_file(path)
    assert "can be read by other users" in caplog.text


def test_keys_commands_show_only_the_key_id(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    runner = CliRunner()
    shown = runner.invoke(app, ["keys", "show"])
    assert shown.exit_code == 0, shown.output
    assert key_from_text(SECRET, "x").key_id in shown.output and SECRET not in shown.output
    out = tmp_path / "rotated.key"
    made = runner.invoke(app, ["keys", "new", "--out", str(out)])
    assert made.exit_code == 0
    assert read_key_file(out).key_id in made.output
    assert out.read_text().strip() not in made.output
    again = runner.invoke(app, ["keys", "new", "--out", str(out)])
    assert again.exit_code == 1 and "never overwritten" in again.output


def test_configured_key_never_creates_one(tmp_path):
    assert configured_key(PrivacySettings(), tmp_path) is None
    assert not (tmp_path / "secrets").exists()
