"""Anchors: the chain's head, HMAC-signed with a key kept outside the database, in a file."""

from __future__ import annotations

import fcntl
import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from vitalflow.privacy.keys import (PseudonymKey, key_from_text, new_key_text, read_key_file,
                                    write_key_file)

if TYPE_CHECKING:
    from vitalflow.config import Settings

KEY_ENV = "VITALFLOW_AUDIT_KEY"
_MAC_PREFIX = b"vitalflow-audit-anchor|"


@dataclass(frozen=True)
class Anchor:
    chain: str  # which control database: host:port/database
    seq: int
    hash: str
    at: str
    key_id: str
    mac: str

    def payload(self) -> bytes:
        return f"{self.chain}|{self.seq}|{self.hash}|{self.at}".encode()


def anchors_path(settings: Settings) -> Path:
    return settings.audit.anchors_file or settings.paths.root / "audit" / "anchors.jsonl"


def anchor_key(settings: Settings, create: bool = False) -> PseudonymKey | None:
    """The anchor key from VITALFLOW_AUDIT_KEY or the key file; created (mode 600) on first
    use when create is set. A keyed MAC, so whoever can rewrite the database cannot forge one."""
    if os.environ.get(KEY_ENV, "").strip():
        return key_from_text(os.environ[KEY_ENV], f"environment variable {KEY_ENV}")
    path = settings.audit.key_file or settings.paths.root / "secrets" / "audit.key"
    if path.is_file():
        return read_key_file(path)
    if not create:
        return None
    try:
        return write_key_file(path, new_key_text())
    except FileExistsError:  # another process created it just now
        return read_key_file(path)


def chain_name(conn: psycopg.Connection) -> str:
    return f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"


def sign(key: PseudonymKey, anchor: Anchor) -> str:
    return key.digests(_MAC_PREFIX, [anchor.payload()])[0].hex()


def write_anchor(conn: psycopg.Connection, settings: Settings) -> Anchor | None:
    """Append the signed head of the chain to the anchors file; None while the chain is empty."""
    row = conn.execute("SELECT seq, hash FROM audit.event ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return None
    key = anchor_key(settings, create=True)
    unsigned = Anchor(chain_name(conn), row[0], row[1],
                      datetime.now(UTC).isoformat(timespec="microseconds"), key.key_id, "")
    anchor = Anchor(**{**unsigned.__dict__, "mac": sign(key, unsigned)})
    path = anchors_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # whole lines, whoever writes at the same time
        handle.write(json.dumps(anchor.__dict__, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return anchor


def read_anchors(settings: Settings, chain: str) -> tuple[list[Anchor], list[str]]:
    """This chain's anchors whose signature holds, and a problem per line that does not."""
    path = anchors_path(settings)
    if not path.exists():
        return [], []
    key = anchor_key(settings)
    good, problems = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            anchor = Anchor(**json.loads(line))
        except (ValueError, TypeError):
            problems.append(f"{path} line {number} is not an anchor")
            continue
        if anchor.chain != chain:
            continue
        if key is None or key.key_id != anchor.key_id:
            problems.append(f"{path} line {number} was signed with key id {anchor.key_id}, "
                            "which is not the configured anchor key")
        elif not hmac.compare_digest(sign(key, anchor), anchor.mac):
            problems.append(f"{path} line {number} has a wrong signature (altered anchor)")
        else:
            good.append(anchor)
    return good, problems
