"""What the run summary does not say: database size, connections, replica lag, disk space."""

from __future__ import annotations

import json
import logging
import shutil
import statistics
from pathlib import Path

log = logging.getLogger(__name__)
# How many earlier successful runs the quarantine share is compared with.
BASELINE_RUNS = 5


def filesystem_probe(folder: Path) -> tuple[int, int]:
    """(free, size) bytes of the file system holding folder (or its nearest existing parent)."""
    while not folder.exists():
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    return usage.free, usage.total


def _share(counts: dict) -> float | None:
    read = sum(c.get("read", 0) for c in counts.values())
    return sum(c.get("quarantined", 0) for c in counts.values()) / read if read else None


def database_probe(url: str | None, run_id: str | None) -> dict | None:
    """Facts from the control PostgreSQL; None (with a warning) when it cannot be asked."""
    if not url:
        return None
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            connections = conn.execute("SELECT count(*) FROM pg_stat_activity "
                                       "WHERE datname = current_database()").fetchone()[0]
            max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
            lag = dict(conn.execute(
                "SELECT application_name, coalesce(extract(epoch FROM replay_lag), 0)::float8 "
                "FROM pg_stat_replication").fetchall())
            parked = conn.execute("SELECT count(*) FROM meta.terminology_pending").fetchone()[0]
            earlier = conn.execute(
                "SELECT counts FROM meta.run WHERE status = 'succeeded' AND run_id <> %s "
                "AND counts IS NOT NULL ORDER BY started_at DESC LIMIT %s",
                (run_id or "", BASELINE_RUNS)).fetchall()
    except psycopg.Error as exc:
        log.warning("monitoring: database metrics not collected (%s)", type(exc).__name__)
        return None
    shares = [s for (counts,) in earlier
              if (s := _share(counts if isinstance(counts, dict) else json.loads(counts)))
              is not None]
    return {"connections": connections,
            "max_connections": max_connections, "replication_lag": lag, "parked": parked,
            "quarantine_share_baseline": statistics.median(shares) if shares else None}
