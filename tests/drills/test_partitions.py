"""Partitioned refine and derive give the rows and counts of one unpartitioned run."""

from __future__ import annotations

import psycopg
import pyarrow as pa
import pytest

from tests.test_pipeline import snapshot
from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.generate import generate
from vitalflow.partitions.keys import Partition, bucket, source_patient
from vitalflow.partitions.run import run_partitioned, work

pytestmark = pytest.mark.postgres


def test_a_record_goes_by_its_patient_and_odd_records_by_their_own_id():
    assert source_patient('{"resourceType":"Patient","id":"p1","gender":"x"}') == "p1"
    assert source_patient('{"subject":{"reference":"Patient/p1"},'
                          '"resourceType":"Observation"}') == "p1"
    assert source_patient('{"resourceType":"Observation","subject":{}}') is None
    assert source_patient('{not json') is None
    assert source_patient(None) is None
    parts = [Partition(i, 3) for i in range(3)]
    records = pa.RecordBatch.from_pydict({
        "raw_record_id": ["b-1", "b-2", "b-3", "b-4"],
        "raw_json": ['{"resourceType":"Patient","id":"p1"}',
                     '{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}',
                     '{broken', None]})
    kept = [p.keep_raw(records).column("raw_record_id").to_pylist() for p in parts]
    assert sorted(i for ids in kept for i in ids) == ["b-1", "b-2", "b-3", "b-4"]  # once each
    home = parts[bucket("p1", 3)].keep_raw(records).column("raw_record_id").to_pylist()
    assert {"b-1", "b-2"} <= set(home)


def test_partitioned_run_equals_one_unpartitioned_run(tmp_path, pg_server):
    """Generated data with merged persons, orphans and every defect; three partitions."""
    parts = 3
    source = tmp_path / "input"
    generate(source, 150, seed=11, defect_rate=0.15, duplicate_share=0.2)
    urls = []
    for name in ("whole", "parted"):
        with psycopg.connect(pg_server.admin_url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS part_{name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE part_{name} OWNER vitalflow")
        urls.append(pg_server.url(f"part_{name}"))
    whole = load_settings(paths={"home": tmp_path / "whole"}, database={"url": urls[0]})
    expected = pipeline.run(whole, source)

    settings = load_settings(paths={"home": tmp_path / "parted"}, database={"url": urls[1]})
    with pipeline.PipelineRun(settings) as run:
        run.ingest(source)
        run_partitioned(run, parts, lambda run_id, stage: work(settings, run.layers, run_id,
                                                               stage))
    got = run.summary()
    assert got["counts"] == expected["counts"]
    for resource, c in got["counts"].items():
        assert c["read"] == (c["refined"] + c["quarantined"] + c["filtered"]
                             + c["duplicates"] + c["pending"]), resource
    assert got["quarantine_reasons"] == expected["quarantine_reasons"]
    assert got["persons_moved"] == expected["persons_moved"]
    assert got["derive"]["bmi_rows_written"] == expected["derive"]["bmi_rows_written"]
    assert snapshot(urls[1]) == snapshot(urls[0])  # every table of SNAPSHOT_QUERIES
    with psycopg.connect(urls[1]) as conn:
        states = conn.execute("SELECT stage, count(*), sum(attempts) FROM meta.partition_claim "
                              "GROUP BY 1 ORDER BY 1").fetchall()
    assert states == [("derive", parts, parts), ("refine", parts, parts)]
