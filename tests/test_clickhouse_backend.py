"""ClickHouse specifics beyond the contract: versions, tombstones, FINAL, chdb paths, faults."""

from __future__ import annotations

import logging
import os
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from storage_backends.base import BackendUnavailable
from storage_backends.clickhouse import DELETED, VERSION, ClickHouseBackend
from storage_backends.registry import open_backend
from tests.conformance.backend_clickhouse import chdb_url, make_backend
from tests.conformance.test_interface import SAMPLE, T0, rows, sorted_rows
from vitalflow.services import free_port
from vitalflow.tables import OBSERVATION


@pytest.fixture
def ch(request, tmp_path) -> ClickHouseBackend:
    backend = make_backend(request, tmp_path, "clickhouse")
    backend.create(SAMPLE)
    yield backend
    backend.close()


def stored(ch: ClickHouseBackend) -> list[dict]:
    """Every physical row, versions and tombstones included, as FINAL does not show them."""
    return ch.client.query_arrow(f"SELECT id, n, label, {VERSION}, {DELETED} FROM "
                                 f"{ch.table_name(SAMPLE)} ORDER BY {VERSION}").to_pylist()


def test_the_table_is_typed_from_the_description(ch: ClickHouseBackend) -> None:
    types = dict(ch.client.query(
        "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = 'sample'",
        parameters={"d": ch.database(SAMPLE)}).result_rows)
    assert types == {"id": "String", "n": "Int64", "label": "Nullable(String)",
                     "value": "Nullable(Float64)", "amount": "Nullable(Decimal(18, 6))",
                     "flag": "Nullable(Bool)", "day": "Nullable(Date32)",
                     "at": "Nullable(DateTime64(6, 'UTC'))", "doc": "Nullable(String)",
                     VERSION: "UInt64", DELETED: "UInt8"}
    engine, keys = ch.client.query(
        "SELECT engine_full, sorting_key FROM system.tables WHERE database = {d:String} "
        "AND name = 'sample'", parameters={"d": ch.database(SAMPLE)}).result_rows[0]
    assert engine.startswith(f"ReplacingMergeTree({VERSION}, {DELETED})") and keys == "id, n"


def test_every_write_gets_a_higher_version(ch: ClickHouseBackend) -> None:
    ch.append(SAMPLE, rows(2))
    ch.upsert(SAMPLE, rows(2, label="second"))
    ch.delete(SAMPLE, pa.table({"id": ["id-0000000"], "n": [0]}))
    versions = [r[VERSION] for r in stored(ch)]
    assert versions[0] == versions[1] < versions[2] == versions[3] < versions[4]


def test_upserts_stay_exact_across_optimize_final(ch: ClickHouseBackend) -> None:
    ch.append(SAMPLE, rows(20))
    ch.upsert(SAMPLE, rows(10, start=15, label="b"))
    ch.client.command(f"OPTIMIZE TABLE {ch.table_name(SAMPLE)} FINAL")
    assert len(stored(ch)) == 25  # merged down to one row per key
    ch.upsert(SAMPLE, rows(10, start=10, label="c"))
    expected = {**{r["id"]: r for r in rows(20).to_pylist()},
                **{r["id"]: r for r in rows(10, start=15, label="b").to_pylist()},
                **{r["id"]: r for r in rows(10, start=10, label="c").to_pylist()}}
    assert ch.count(SAMPLE) == 25
    assert sorted_rows(ch.read(SAMPLE, ["id", "n", "label"])) == sorted_rows(
        pa.Table.from_pylist([{"id": k, "n": r["n"], "label": r["label"]}
                              for k, r in expected.items()]))


def test_filters_see_only_the_current_version(ch: ClickHouseBackend) -> None:
    ch.append(SAMPLE, rows(10, label="old"))
    ch.upsert(SAMPLE, rows(10, label="new"))
    assert ch.read(SAMPLE, ["id"], where=[("label", ">=", "old")]).num_rows == 0
    assert ch.read(SAMPLE, ["id"], where=[("label", "<", "old")]).num_rows == 8


def test_delete_writes_tombstones_that_reads_and_counts_skip(ch: ClickHouseBackend) -> None:
    ch.append(SAMPLE, rows(5))
    # (id-0000003, 1) is no key: its tombstone hides nothing
    ch.delete(SAMPLE, pa.table({"id": ["id-0000001", "id-0000003"], "n": [1, 1]}))
    tombstones = [r for r in stored(ch) if r[DELETED]]
    assert [(r["id"], r["n"]) for r in tombstones] == [("id-0000001", 1), ("id-0000003", 1)]
    assert ch.count(SAMPLE) == 4
    ch.client.command(f"OPTIMIZE TABLE {ch.table_name(SAMPLE)} FINAL")
    assert sorted(ch.read(SAMPLE, ["id"]).column("id").to_pylist()) == [
        "id-0000000", "id-0000002", "id-0000003", "id-0000004"]
    ch.upsert(SAMPLE, rows(2, start=1, label="back"))  # a deleted key can be written again
    assert ch.count(SAMPLE) == 5
    assert ch.read(SAMPLE, ["label"], where=[("id", "=", "id-0000001")]).to_pylist() == [
        {"label": "back ü \"q\" 'a', 1"}]


def test_reads_hide_the_bookkeeping_columns(ch: ClickHouseBackend) -> None:
    ch.append(SAMPLE, rows(3))
    assert ch.read(SAMPLE).column_names == SAMPLE.column_names


def test_bound_filters_keep_microseconds_zones_and_decimals(ch: ClickHouseBackend) -> None:
    ch.append(SAMPLE, rows(10))
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    assert ch.read(SAMPLE, ["id"], where=[("at", "=", plus_two)]).num_rows == 6
    assert ch.read(SAMPLE, ["id"], where=[("at", ">", T0 - timedelta(microseconds=1))]
                   ).num_rows == 6
    assert sorted(ch.read(SAMPLE, ["id"], where=[("amount", "in", [Decimal("0.003"),
                                                                   Decimal("5E-3")])]
                          ).column("id").to_pylist()) == ["id-0000003", "id-0000005"]
    assert ch.read(SAMPLE, ["id"], where=[("label", "in", [None, "x ü \"q\" 'a', 1"])]
                   ).column("id").to_pylist() == ["id-0000001"]


def test_in_lists_up_to_the_limit_are_bound_not_filtered_afterwards(
        ch: ClickHouseBackend) -> None:
    ch.append(SAMPLE, rows(20))
    wanted = [f"id-{i:07d}" for i in range(0, 2 * ch.capabilities.max_filter_values, 2)]
    got = ch.read(SAMPLE, ["id"], where=[("id", "in", wanted)])
    assert got.num_rows == 10


def test_backends_on_one_chdb_path_share_the_engine(ch: ClickHouseBackend) -> None:
    ch.append(SAMPLE, rows(3))
    other = open_backend(chdb_url(), database_prefix=ch.database_prefix)
    assert isinstance(other, ClickHouseBackend) and other.client is ch.client
    assert other.count(SAMPLE) == 3
    other.close()
    assert ch.count(SAMPLE) == 3  # closing one backend leaves the shared engine open


def test_a_second_chdb_path_in_one_process_is_refused_clearly(ch: ClickHouseBackend) -> None:
    ch.exists(SAMPLE)  # the session's path is open
    elsewhere = ClickHouseBackend(f"chdb://{tempfile.gettempdir()}/vitalflow-elsewhere")
    with pytest.raises(ValueError, match="one engine per process and it is open on"):
        elsewhere.exists(SAMPLE)


def test_an_unreachable_server_names_itself_and_the_embedded_engine(monkeypatch, caplog) -> None:
    port = free_port()  # bound then released: nothing listens there
    monkeypatch.setenv("VITALFLOW_CLICKHOUSE_PASSWORD", "env-secret")
    caplog.set_level(logging.DEBUG)
    for url in (f"clickhouse://alice:url-secret@127.0.0.1:{port}/vitalflow",
                f"clickhouse://alice@127.0.0.1:{port}"):
        backend = ClickHouseBackend(url)
        with pytest.raises(BackendUnavailable) as info:
            backend.count(SAMPLE)
        message = str(info.value)
        assert message == (f"ClickHouse at 127.0.0.1:{port} is not reachable ([Errno 111] "
                           "Connection refused). Start it, or use the embedded engine with "
                           "VITALFLOW__CLICKHOUSE__URL=chdb:///path")
        assert "secret" not in repr(backend)
    assert "secret" not in caplog.text


def test_round_trip_edges(ch: ClickHouseBackend) -> None:
    edge = pa.table({"id": ["a", "b"], "n": [0, 0],
                     "at": [datetime(1900, 1, 1, tzinfo=UTC), datetime(2299, 12, 31, 23, 59, 59,
                                                                     999999, tzinfo=UTC)],
                     "amount": [Decimal("-999999999999.999999"), Decimal("999999999999.999999")],
                     "label": ["", "back\\slash\ttab\nnewline"]})
    ch.append(SAMPLE, edge)
    assert sorted_rows(ch.read(SAMPLE, list(edge.column_names))) == sorted_rows(
        edge.cast(pa.schema([SAMPLE.arrow_schema.field(c) for c in edge.column_names])))


def observations(count: int, start: int = 0, kg: float = 70.0) -> pa.Table:
    """refined.observation rows; keys obs-<start>… so a later call can overwrite a range."""
    i = pa.array(range(start, start + count), pa.int64())
    text = lambda prefix: pc.binary_join_element_wise(prefix, pc.cast(i, pa.string()), "")
    at = pc.cast(pc.add(pc.multiply(i, 1_000_003), 1_600_000_000_000_000),
                 pa.timestamp("us", tz="UTC"))
    value = pc.add(pc.divide(pc.cast(pc.remainder(i, 50), pa.float64()), 10.0), kg)
    constant = lambda text: pa.repeat(text, count)
    return pa.table({
        "observation_id": text("obs-"), "patient_key": text("pat-"),
        "measure": constant("body_weight"), "code_system": constant("http://loinc.org"),
        "code": constant("29463-7"), "value": value, "unit": constant("kg"),
        "source_value": value, "source_unit": constant("kg"), "effective_at": at,
        "status": constant("final"), "version": pc.remainder(i, 3), "last_updated": at,
        "content_hash": text("h"), "raw_record_id": text("r-"), "change_seq": i,
        "refined_at": at})


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("VITALFLOW_BENCH"), reason="a measurement: set "
                    "VITALFLOW_BENCH=1 and run with -s to see the figures")
def test_throughput_on_a_million_observations(request, tmp_path) -> None:
    backend = make_backend(request, tmp_path, "clickhouse")
    backend.create(OBSERVATION)
    base, update = observations(1_000_000), observations(100_000, start=450_000, kg=80.0)
    ids = [f"obs-{i}" for i in range(0, 200_000, 2)]
    steps = [
        ("append 1M", 1_000_000, lambda: backend.append(OBSERVATION, base)),
        ("upsert 100k into 1M", 100_000, lambda: backend.upsert(OBSERVATION, update)),
        ("read 1M, all columns, FINAL", 1_000_000, lambda: backend.read(OBSERVATION)),
        ("read 1M, 2 columns, FINAL", 1_000_000,
         lambda: backend.read(OBSERVATION, ["observation_id", "value"])),
        ("count FINAL", 1_000_000, lambda: backend.count(OBSERVATION)),
        ("read 100k keys by 'in'", 100_000, lambda: backend.read(
            OBSERVATION, ["value"], where=[("observation_id", "in", ids)])),
        ("OPTIMIZE TABLE ... FINAL", 1_000_000, lambda: backend.client.command(
            f"OPTIMIZE TABLE {backend.table_name(OBSERVATION)} FINAL")),
        ("read 1M, all columns, after OPTIMIZE", 1_000_000, lambda: backend.read(OBSERVATION)),
    ]
    print()
    for label, rows_, step in steps:
        start = time.perf_counter()
        result = step()
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{label:<38} {seconds:6.2f} s {rows_ / seconds:>12,.0f} rows/s  "
              f"peak RSS {peak:,.0f} MiB")
        if isinstance(result, pa.Table):
            assert result.num_rows == rows_
    assert backend.read(OBSERVATION, ["value"], where=[("observation_id", "=", "obs-450000")]
                        ).column("value").to_pylist() == [80.0]
