"""Console users in a JSON file (mode 600): scrypt-hashed passwords, SHA-256-hashed API tokens."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from vitalflow.sql.catalog import check_role

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    computed = hash_password(password, base64.b64decode(salt)).split("$")[2]
    return hmac.compare_digest(computed, digest)


def _token_hash(token: str) -> str:
    # Tokens are 256 random bits: a plain hash is enough, and lets a lookup be one comparison.
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """{"users": {name: {"role": ..., "password": "scrypt$...", "tokens": [sha256, ...]}}}"""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_settings(cls, settings) -> UserStore:
        path = settings.sql.users_file
        return cls(path if path.is_absolute() else settings.paths.root / path)

    def users(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text()).get("users", {})

    def add(self, name: str, role: str, password: str) -> None:
        check_role(role)
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ValueError("a user name holds letters, digits, '.', '-' and '_' only")
        if len(password) < 8:
            raise ValueError("the password needs at least 8 characters")
        self._update(lambda users: users.__setitem__(name, {
            **users.get(name, {}), "role": role, "password": hash_password(password)}))

    def new_token(self, name: str) -> str:
        token = "vfsql_" + secrets.token_urlsafe(32)

        def add(users: dict) -> None:
            if name not in users:
                raise KeyError(f"no user {name!r}: add it first with `vitalflow sql-users add`")
            users[name].setdefault("tokens", []).append(_token_hash(token))

        self._update(add)
        return token

    def login(self, name: str, password: str) -> tuple[str, str] | None:
        """(name, role) when the password is right, else None."""
        user = self.users().get(name)
        if user and verify_password(password, user.get("password", "")):
            return name, user["role"]
        return None

    def by_token(self, token: str) -> tuple[str, str] | None:
        digest = _token_hash(token)
        for name, user in self.users().items():
            if any(hmac.compare_digest(digest, t) for t in user.get("tokens", [])):
                return name, user["role"]
        return None

    def _update(self, change) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.parent.chmod(0o700)
        fd = os.open(self.path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        with os.fdopen(fd) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            users = self.users()
            change(users)
            partial = self.path.with_suffix(".tmp")
            partial.touch(mode=0o600)
            partial.write_text(json.dumps({"users": users}, indent=1))
            partial.replace(self.path)
