"""Drill clickhouse: chdb has no replication; the shipped cluster config and DDL are checked."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import sqlglot

from storage_backends.clickhouse import create_statement
from vitalflow.config import PROJECT_ROOT
from vitalflow.drills.base import DrillOptions, DrillResult, Teardown, private_dir
from vitalflow.tables import ALL_TABLES

NAME = "clickhouse"
CLUSTER = "vitalflow"
INFRA = PROJECT_ROOT / "infra" / "clickhouse"
SCHEMA = INFRA / "schema.sql"
HEADER = ("-- vitalflow's tables on a replicated ClickHouse cluster (infra/clickhouse/README.md).\n"
          "-- Generated from vitalflow/tables.py: python -m vitalflow.drills.clickhouse\n\n")
_REPLICATED = re.compile(r"ReplicatedReplacingMergeTree\('[^']*', '[^']*', ")
# chdb, in a process of its own: it hosts one engine per process.
_CHDB_SCRIPT = """
import sys
from chdb import session
db = session.Session(sys.argv[1])
for statement in sys.stdin.read().split(";\\n\\n"):
    if statement.strip():
        db.query(statement)
print(db.query("SELECT count() FROM system.tables WHERE database IN ('refined', 'derived')"))
"""


def schema_sql(cluster: str = CLUSTER) -> str:
    """The DDL for a cluster: the backend's own statements, replicated and ON CLUSTER."""
    databases = sorted({table.layer for table in ALL_TABLES})
    statements = [f"CREATE DATABASE IF NOT EXISTS {name} ON CLUSTER {cluster}"
                  for name in databases]
    statements += [create_statement(table, table.qualified_name, cluster)
                   for table in ALL_TABLES]
    return HEADER + ";\n\n".join(statements) + ";\n"


def statements(text: str) -> list[str]:
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [s.strip() for s in body.split(";\n\n") if s.strip().rstrip(";")]


def non_replicated(statement: str, cluster: str = CLUSTER) -> str:
    """The single-server equivalent of a cluster statement (what chdb can run)."""
    return _REPLICATED.sub("ReplacingMergeTree(", statement.replace(f" ON CLUSTER {cluster}",
                                                                    "")).rstrip(";")


def check_xml(folder: Path = INFRA) -> dict[str, str]:
    """Problems of the shipped XML by file name (empty: every file parses and has the
    cluster's shape: three Keepers, one shard of three replicas, replica macro)."""
    problems = {}
    for path in sorted(folder.rglob("*.xml")):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            problems[path.name] = str(exc)
            continue
        if root.tag != "clickhouse":
            problems[path.name] = f"root element <{root.tag}>, ClickHouse wants <clickhouse>"
    if problems:
        return problems
    cluster = ET.parse(folder / "cluster.xml").getroot()
    keeper = ET.parse(folder / "keeper.xml").getroot()
    shape = {
        "three replicas in one shard": len(cluster.findall(f"remote_servers/{CLUSTER}/shard"))
        == 1 and len(cluster.findall(f"remote_servers/{CLUSTER}/shard/replica")) == 3,
        "three Keeper nodes": len(cluster.findall("zookeeper/node")) == 3,
        "three Keeper voters": len(keeper.findall(
            "keeper_server/raft_configuration/server")) == 3,
        "shard and replica macros": cluster.find("macros/shard") is not None
        and cluster.find("macros/replica") is not None,
    }
    problems |= {f"{what} (cluster.xml/keeper.xml)": "missing" for what, ok in shape.items()
                 if not ok}
    return problems


def run(options: DrillOptions, teardown: Teardown) -> DrillResult:
    shipped = SCHEMA.read_text() if SCHEMA.exists() else ""
    ddl = statements(shipped)
    parsed = sum(1 for s in ddl if _parses(s))
    accepted, chdb_error = _chdb_tables(ddl, private_dir(options.workdir.resolve() / "chdb"))
    problems = check_xml()
    current = shipped == schema_sql()
    result = DrillResult(NAME, ok=False, details={
        "replication": "none: chdb is the ClickHouse engine inside one process, without "
                       "Keeper or replicas",
        "shipped": "infra/clickhouse/ (cluster.xml, keeper.xml, users.d/replication.xml, "
                   "schema.sql)",
        "cluster": f"{CLUSTER}: 1 shard x 3 replicas, 3 Keepers, insert_quorum 2",
        "ddl_statements": len(ddl), "ddl_parsed": parsed, "chdb_tables_created": accepted,
        "schema_current": current, "xml_problems": problems})
    result.notes.append(
        "chdb has no replication, so rto_s, acknowledged_lost, counts_exact and extra_run_s are "
        "not measured here (None): a replicated deployment is a ClickHouse cluster built from "
        "infra/clickhouse/ (docs/drills.md).")
    if chdb_error:
        result.notes.append(f"chdb refused the single-server DDL: {chdb_error}")
    if not current:
        result.notes.append("infra/clickhouse/schema.sql differs from the table descriptions: "
                            "python -m vitalflow.drills.clickhouse")
    result.ok = (bool(ddl) and parsed == len(ddl) and accepted == len(ALL_TABLES)
                 and current and not problems)
    return result


def _parses(statement: str) -> bool:
    try:
        sqlglot.parse_one(statement, dialect="clickhouse")
        return True
    except sqlglot.errors.SqlglotError:
        return False


def _chdb_tables(ddl: list[str], path: Path) -> tuple[int, str]:
    """(tables chdb created from the single-server equivalent of the DDL, its error)."""
    done = subprocess.run([sys.executable, "-c", _CHDB_SCRIPT, str(path)],
                          input=";\n\n".join(non_replicated(s) for s in ddl), text=True,
                          capture_output=True, timeout=300)
    if done.returncode != 0:
        return 0, done.stderr.strip()[-500:]
    return int(done.stdout.strip().splitlines()[-1].strip().strip('"')), ""


if __name__ == "__main__":
    SCHEMA.write_text(schema_sql())
    print(f"wrote {SCHEMA}")
