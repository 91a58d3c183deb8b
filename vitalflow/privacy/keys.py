"""The pseudonymisation key: from the environment or a key file; only its key id is ever shown."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from vitalflow.privacy.settings import PrivacySettings

KEY_ENV = "VITALFLOW_PSEUDONYM_KEY"
MIN_KEY_CHARS = 32
log = logging.getLogger("vitalflow.privacy")


class KeyProblem(RuntimeError):
    """No usable key; the message says what to do and never contains key material."""


class PseudonymKey:
    """A secret HMAC-SHA256 key. repr and str show the key id and where it came from only."""

    __slots__ = ("_secret", "key_id", "origin")

    def __init__(self, secret: bytes, origin: str) -> None:
        self._secret = secret
        self.origin = origin
        # A keyed digest, not a plain hash: a key id reveals nothing that helps guess the key.
        self.key_id = hmac.digest(secret, b"key-id", "sha256").hex()[:12]

    def digests(self, prefix: bytes, suffixes: Iterable[bytes]) -> list[bytes]:
        """HMAC(key, prefix + suffix) for each suffix; the keyed state after the prefix is
        computed once and copied, at a third of the cost of one-shot digests."""
        start = hmac.new(self._secret, prefix, hashlib.sha256)
        out = []
        for suffix in suffixes:
            state = start.copy()
            state.update(suffix)
            out.append(state.digest())
        return out

    def __repr__(self) -> str:
        return f"PseudonymKey(key_id={self.key_id!r}, origin={self.origin!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PseudonymKey) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.key_id)


def key_from_text(text: str, origin: str) -> PseudonymKey:
    text = text.strip()
    if len(text) < MIN_KEY_CHARS:
        raise KeyProblem(f"the pseudonymisation key from {origin} is shorter than "
                         f"{MIN_KEY_CHARS} characters; create one with `vitalflow keys new`")
    return PseudonymKey(text.encode(), origin)


def dev_key_path(home: Path) -> Path:
    return home / "secrets" / "pseudonym.key"


def configured_key(privacy: PrivacySettings, home: Path) -> PseudonymKey | None:
    """The key from VITALFLOW_PSEUDONYM_KEY, privacy.key_file or an existing development key
    file under home, or None when there is none."""
    if os.environ.get(KEY_ENV, "").strip():
        return key_from_text(os.environ[KEY_ENV], f"environment variable {KEY_ENV}")
    if privacy.key_file is not None:
        if not privacy.key_file.is_file():
            raise KeyProblem(f"privacy.key_file {privacy.key_file} does not exist")
        return read_key_file(privacy.key_file)
    dev = dev_key_path(home)
    if dev.is_file() and not privacy.require_key:
        return read_key_file(dev)
    return None


def load_key(privacy: PrivacySettings, home: Path) -> PseudonymKey:
    """The configured key; without one, a new development key file (refused when
    privacy.require_key is set, as in production)."""
    key = configured_key(privacy, home)
    if key is not None:
        return key
    if privacy.require_key:
        raise KeyProblem(f"no pseudonymisation key: privacy.require_key is set, so set "
                         f"{KEY_ENV} or privacy.key_file (create a key with `vitalflow keys new`)")
    path = dev_key_path(home)
    try:
        key = write_key_file(path, new_key_text())
    except FileExistsError:  # another process created it just now
        return read_key_file(path)
    log.warning("No pseudonymisation key configured: created a development key at %s (key id "
                "%s). In production set %s or privacy.key_file, and privacy.require_key.",
                path, key.key_id, KEY_ENV)
    return key


def read_key_file(path: Path) -> PseudonymKey:
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyProblem(f"cannot read the key file {path} ({type(exc).__name__})") from None
    if mode & 0o077:
        log.warning("Key file %s can be read by other users; restrict it: chmod 600 %s",
                    path, path)
    return key_from_text(text, f"key file {path}")


def new_key_text() -> str:
    return secrets.token_hex(32)


def write_key_file(path: Path, text: str) -> PseudonymKey:
    """Write a new key file readable by its owner only; FileExistsError rather than overwrite.

    Written aside and linked into place, so a concurrent reader never sees half a key.
    """
    key = key_from_text(text, f"key file {path}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text.strip() + "\n")
        os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return key
