"""Drill clickhouse: the shipped cluster config parses, its DDL is the backend's, replicated."""

from __future__ import annotations

import shutil

from storage_backends.clickhouse import create_statement
from vitalflow.drills.base import DrillOptions
from vitalflow.drills.clickhouse import (CLUSTER, INFRA, SCHEMA, check_xml, non_replicated,
                                         schema_sql, statements)
from vitalflow.drills.runner import run_drill
from vitalflow.tables import ALL_TABLES


def test_drill_says_chdb_has_no_replication_and_validates_what_ships(tmp_path):
    result = run_drill("clickhouse", DrillOptions(workdir=tmp_path / "work"))

    assert result.ok, (result.notes, result.details)
    assert (result.rto_s, result.acknowledged_lost, result.counts_exact,
            result.extra_run_s) == (None, None, None, None)
    assert "no replication" in result.notes[0]
    assert result.details["chdb_tables_created"] == len(ALL_TABLES)
    assert result.details["ddl_parsed"] == result.details["ddl_statements"]


def test_shipped_schema_is_generated_from_the_table_descriptions():
    assert SCHEMA.read_text() == schema_sql(), "python -m vitalflow.drills.clickhouse"


def test_replicated_ddl_differs_from_the_backends_only_in_engine_and_cluster():
    for table in ALL_TABLES:
        replicated = create_statement(table, table.qualified_name, CLUSTER)
        assert f"{table.qualified_name} ON CLUSTER {CLUSTER} (" in replicated
        assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', " \
               "'{replica}', _vf_version, _vf_deleted)" in replicated
        assert non_replicated(replicated) == create_statement(table, table.qualified_name)


def test_every_table_and_database_is_created_on_the_cluster():
    ddl = statements(SCHEMA.read_text())
    assert len(ddl) == len(ALL_TABLES) + 2
    assert all(f"ON CLUSTER {CLUSTER}" in statement for statement in ddl)


def test_broken_or_misshapen_xml_is_reported(tmp_path):
    copy = shutil.copytree(INFRA, tmp_path / "clickhouse")
    assert check_xml(copy) == {}

    keeper = copy / "keeper.xml"
    keeper.write_text(keeper.read_text().replace("<id>3</id>", "<id>3</i>"))
    assert "keeper.xml" in check_xml(copy)

    shutil.copy(INFRA / "keeper.xml", keeper)
    cluster = copy / "cluster.xml"
    text = cluster.read_text()
    last = text.rindex("<replica>")
    cluster.write_text(text[:last] + text[text.index("</replica>", last) + len("</replica>"):])
    assert any("three replicas" in problem for problem in check_xml(copy))
