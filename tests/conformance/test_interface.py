"""The storage interface contract, identical for every backend."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from storage_backends.base import Backend, DataError
from vitalflow.tables import Column as C
from vitalflow.tables import Table

SAMPLE = Table(
    "conformance", "sample", "Every logical type, a composite key.", owner="conformance",
    columns=(
        C("id", "text", "key part", nullable=False),
        C("n", "int", "key part", nullable=False),
        C("label", "text", "text with unicode and quotes"),
        C("value", "float", "a float"),
        C("amount", "decimal", "exact decimal"),
        C("flag", "bool", "a boolean"),
        C("day", "date", "a date"),
        C("at", "timestamp", "an instant, microseconds"),
        C("doc", "json", "JSON text"),
    ),
    primary_key=("id", "n"),
)

T0 = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)


def rows(count: int, start: int = 0, label: str = "x") -> pa.Table:
    ids = [f"id-{i:07d}" for i in range(start, start + count)]
    return pa.table({
        "id": ids,
        "n": [i % 3 for i in range(start, start + count)],
        "label": [f"{label} ü \"q\" 'a', {i}" if i % 5 else None
                  for i in range(start, start + count)],
        "value": [i / 7 for i in range(start, start + count)],
        "amount": [Decimal(i) / Decimal(1000) for i in range(start, start + count)],
        "flag": [i % 2 == 0 for i in range(start, start + count)],
        "day": [date(2020, 1, 1) if i % 4 else None for i in range(start, start + count)],
        "at": [T0 if i % 3 else datetime(1970, 1, 1, tzinfo=UTC)
               for i in range(start, start + count)],
        "doc": ['{"a": [1, 2]}' for _ in range(count)],
    })


def sorted_rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["id"], r["n"]))


@pytest.fixture
def created(backend: Backend) -> Backend:
    backend.create(SAMPLE)
    return backend


def test_create_is_idempotent_and_empty(backend: Backend) -> None:
    backend.create(SAMPLE)
    backend.create(SAMPLE)
    assert backend.exists(SAMPLE)
    assert backend.count(SAMPLE) == 0
    empty = backend.read(SAMPLE)
    assert empty.num_rows == 0 and empty.schema == SAMPLE.arrow_schema


def test_append_then_read_round_trips_every_type(created: Backend) -> None:
    data = rows(50)
    assert created.append(SAMPLE, data) == 50
    got = created.read(SAMPLE)
    assert got.schema == SAMPLE.arrow_schema
    assert sorted_rows(got) == sorted_rows(data.cast(SAMPLE.arrow_schema))


def test_timestamps_keep_microseconds_and_utc(created: Backend) -> None:
    created.append(SAMPLE, rows(3))
    instants = set(created.read(SAMPLE, ["at"]).column("at").to_pylist())
    assert instants == {T0, datetime(1970, 1, 1, tzinfo=UTC)}


def test_decimals_are_exact(created: Backend) -> None:
    created.append(SAMPLE, rows(10))
    amounts = sorted(created.read(SAMPLE, ["amount"]).column("amount").to_pylist())
    assert amounts == [Decimal(i) / Decimal(1000) for i in range(10)]


def test_upsert_twice_equals_once(created: Backend) -> None:
    data = rows(100)
    created.upsert(SAMPLE, data)
    once = sorted_rows(created.read(SAMPLE))
    created.upsert(SAMPLE, data)
    assert sorted_rows(created.read(SAMPLE)) == once
    assert created.count(SAMPLE) == 100


def test_upsert_replaces_existing_and_inserts_new(created: Backend) -> None:
    created.append(SAMPLE, rows(10))
    created.upsert(SAMPLE, rows(10, start=5, label="new"))
    got = {(r["id"], r["n"]): r for r in created.read(SAMPLE).to_pylist()}
    assert len(got) == 15
    assert got[("id-0000006", 0)]["label"].startswith("new")
    assert got[("id-0000004", 1)]["label"].startswith("x")


def test_delete_by_key(created: Backend) -> None:
    created.append(SAMPLE, rows(10))
    created.delete(SAMPLE, pa.table({"id": ["id-0000001", "id-0000002", "nope"],
                                     "n": [1, 0, 0]}))  # id-2 has n=2: not a key, kept
    remaining = {r["id"] for r in created.read(SAMPLE, ["id"]).to_pylist()}
    assert remaining == {f"id-{i:07d}" for i in range(10)} - {"id-0000001"}


@pytest.mark.parametrize(("where", "expected"), [
    ([("n", "=", 1)], {1, 4, 7}),
    ([("n", "!=", 1)], {0, 2, 3, 5, 6, 8, 9}),
    ([("value", "<", 3 / 7)], {0, 1, 2}),
    ([("value", ">=", 8 / 7)], {8, 9}),
    ([("id", "in", ["id-0000003", "id-0000009", "zz"])], {3, 9}),
    ([("id", "not in", ["id-0000003"]), ("n", "=", 0)], {0, 6, 9}),
    ([("label", "is null", None)], {0, 5}),
    ([("day", "is not null", None), ("flag", "=", True)], {2, 6}),
    ([("at", ">", datetime(2000, 1, 1, tzinfo=UTC))], {1, 2, 4, 5, 7, 8}),
    ([("id", "in", [])], set()),
])
def test_filters(created: Backend, where, expected) -> None:
    created.append(SAMPLE, rows(10))
    got = created.read(SAMPLE, ["id"], where=where).column("id").to_pylist()
    assert {int(i[3:]) for i in got} == expected


def test_large_in_list_is_filtered_after_reading(created: Backend) -> None:
    created.append(SAMPLE, rows(20))
    wanted = [f"id-{i:07d}" for i in range(0, 300_000, 2)]  # over max_filter_values
    got = created.read(SAMPLE, ["id", "n"], where=[("id", "in", wanted)])
    assert sorted(got.column("id").to_pylist()) == [f"id-{i:07d}" for i in range(0, 20, 2)]


def test_column_selection_keeps_order_and_types(created: Backend) -> None:
    created.append(SAMPLE, rows(5))
    got = created.read(SAMPLE, ["at", "id"])
    assert got.column_names == ["at", "id"]
    assert got.schema.field("at").type == pa.timestamp("us", tz="UTC")


def test_empty_writes_are_no_ops(created: Backend) -> None:
    assert created.append(SAMPLE, rows(0)) == 0
    assert created.upsert(SAMPLE, rows(0)) == 0
    assert created.delete(SAMPLE, pa.table({"id": pa.array([], pa.string()),
                                            "n": pa.array([], pa.int64())})) == 0
    assert created.count(SAMPLE) == 0


def test_large_batch(created: Backend) -> None:
    created.append(SAMPLE, rows(200_000))
    created.upsert(SAMPLE, rows(1_000, start=199_500, label="late"))
    assert created.count(SAMPLE) == 200_500
    late = created.read(SAMPLE, ["id"], where=[("label", "is not null", None),
                                               ("id", ">=", "id-0199500")])
    assert late.num_rows == 800  # 1,000 rows less the fifth whose label is null


def test_bad_rows_are_refused_with_clear_errors(created: Backend) -> None:
    with pytest.raises(DataError, match="no column"):
        created.append(SAMPLE, rows(2).append_column("surname", pa.array(["a", "b"])))
    with pytest.raises(DataError, match="may not be null"):
        created.append(SAMPLE, rows(2).set_column(0, "id", pa.array([None, "x"], pa.string())))
    with pytest.raises(DataError, match="repeat a primary key"):
        created.upsert(SAMPLE, pa.concat_tables([rows(2), rows(2)]))
    with pytest.raises(DataError, match="cannot store"):
        created.append(SAMPLE, rows(2).set_column(1, "n", pa.array(["one", "two"])))
    assert created.count(SAMPLE) == 0


def test_missing_nullable_columns_become_null(created: Backend) -> None:
    created.append(SAMPLE, pa.table({"id": ["a"], "n": [1]}))
    (row,) = created.read(SAMPLE).to_pylist()
    assert row["label"] is None and row["at"] is None


def test_transaction_rolls_back_together(created: Backend) -> None:
    created.append(SAMPLE, rows(3))
    with pytest.raises(RuntimeError, match="boom"), created.transaction():
        created.upsert(SAMPLE, rows(3, label="changed"))
        created.delete(SAMPLE, pa.table({"id": ["id-0000001"], "n": [1]}))
        raise RuntimeError("boom")
    if created.capabilities.transactions:
        expected = rows(3)
    else:
        # Each write is atomic on its own: the ones before the failure stand, whole.
        changed = rows(3, label="changed")
        expected = changed.filter(pc.not_equal(changed.column("id"), "id-0000001"))
    assert sorted_rows(created.read(SAMPLE)) == sorted_rows(expected.cast(SAMPLE.arrow_schema))


def test_transaction_commits(created: Backend) -> None:
    with created.transaction():
        created.append(SAMPLE, rows(3))
        created.upsert(SAMPLE, rows(2, label="changed"))
    assert created.count(SAMPLE) == 3


def test_snapshots_pin_reads_when_supported(created: Backend) -> None:
    if not created.capabilities.time_travel:
        assert created.snapshots(SAMPLE) == []
        return
    created.append(SAMPLE, rows(3))
    first = created.snapshots(SAMPLE)[-1].snapshot_id
    created.append(SAMPLE, rows(3, start=3))
    assert created.read(SAMPLE, snapshot=first).num_rows == 3
    assert created.read(SAMPLE).num_rows == 6


def test_drop(created: Backend) -> None:
    created.append(SAMPLE, rows(2))
    created.drop(SAMPLE)
    assert not created.exists(SAMPLE)


def test_storage_bytes_grow_with_rows_and_are_zero_when_absent(created: Backend) -> None:
    empty = created.storage_bytes(SAMPLE)
    created.append(SAMPLE, rows(2_000))
    assert created.storage_bytes(SAMPLE) > empty
    created.drop(SAMPLE)
    assert created.storage_bytes(SAMPLE) == 0
