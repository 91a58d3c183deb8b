"""pandera contracts for refined rows, built from the table descriptions and measure catalogue."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa_schema
import pyarrow as pa
import pyarrow.compute as pc

from vitalflow.catalog import MEASURES
from vitalflow.reasons import Quarantine
from vitalflow.tables import Column

_DTYPES = {"text": "string", "float": "float64", "int": "Int64", "bool": "boolean",
           "date": "object", "timestamp": "datetime64[us, UTC]", "json": "string"}
_LOWS = {m.name: m.low for m in MEASURES.values()}
_HIGHS = {m.name: m.high for m in MEASURES.values()}
_UNITS = {m.name: m.unit for m in MEASURES.values()}
RANGE_CHECK = "value_in_physiological_range"
ID_LENGTH = (1, 64)


def _in_range(frame: pd.DataFrame) -> pd.Series:
    # Series.map with a dict is vectorised; an unknown measure maps to NaN and fails.
    return ((frame["value"] >= frame["measure"].map(_LOWS))
            & (frame["value"] <= frame["measure"].map(_HIGHS)))


def observation_schema(columns: list[Column]) -> pa_schema.DataFrameSchema:
    """The refined.observation contract: types, nullability, canonical units, plausible values."""
    checks = {
        "measure": [pa_schema.Check.isin(list(_UNITS))],
        "unit": [pa_schema.Check.isin(sorted(set(_UNITS.values())))],
        "observation_id": [pa_schema.Check.str_length(*ID_LENGTH)],
    }
    return pa_schema.DataFrameSchema(
        {c.name: pa_schema.Column(_DTYPES[c.type], checks=checks.get(c.name, []),
                                  nullable=c.nullable, description=c.description)
         for c in columns},
        checks=[pa_schema.Check(_in_range, name=RANGE_CHECK, element_wise=False),
                pa_schema.Check(lambda f: f["measure"].map(_UNITS) == f["unit"],
                                name="unit_is_canonical")],
        strict=True, coerce=False)


@dataclass(frozen=True)
class Contract:
    """The refined.observation contract twice from the same data: pandera, which names the
    check a row fails, and a set-wise Arrow pre-check that finds the rows certain to pass."""

    columns: list[Column]
    schema: pa_schema.DataFrameSchema
    arrow_schema: pa.Schema


def observation_contract(columns: list[Column]) -> Contract:
    return Contract(columns, observation_schema(columns),
                    pa.schema([pa.field(c.name, c.arrow_type) for c in columns]))


def surely_valid(table: pa.Table, columns: list[Column]) -> pa.Array:
    """True for each row that passes every check of observation_schema (the table has its
    column types): non-null where the column is, a known measure in its canonical unit and
    range, an id of allowed length. False means pandera must look, not that the row fails."""
    measure = pc.index_in(table.column("measure"), value_set=pa.array(list(_UNITS)))
    value = table.column("value")
    conditions = [
        pc.is_valid(measure),
        pc.equal(table.column("unit"), pc.take(pa.array(list(_UNITS.values())), measure)),
        pc.greater_equal(value, pc.take(pa.array(list(_LOWS.values()), pa.float64()), measure)),
        pc.less_equal(value, pc.take(pa.array(list(_HIGHS.values()), pa.float64()), measure)),
        pc.greater_equal(pc.utf8_length(table.column("observation_id")), ID_LENGTH[0]),
        pc.less_equal(pc.utf8_length(table.column("observation_id")), ID_LENGTH[1]),
    ]
    for column in columns:
        if not column.nullable:
            values = table.column(column.name)
            conditions.append(pc.is_valid(values))
            if pa.types.is_floating(values.type):  # pandas counts NaN as missing
                conditions.append(pc.invert(pc.is_nan(values)))
    sure = conditions[0]
    for condition in conditions[1:]:
        sure = pc.and_(sure, condition)
    return pc.fill_null(sure, False)


def split_valid(table: pa.Table, contract: Contract
                ) -> tuple[pa.Table, list[tuple[int, Quarantine, str]]]:
    """Rows that pass the contract, and (row index, reason, detail) for rows that do not.
    Only rows the pre-check is not sure of are validated by pandera."""
    if not table.schema.equals(contract.arrow_schema):
        raise ValueError(f"refined contract failed for the whole batch: columns {table.schema} "
                         f"are not {contract.arrow_schema}")
    doubtful = pc.indices_nonzero(pc.invert(surely_valid(table, contract.columns)))
    if len(doubtful) == 0:
        return table, []
    failed = {int(doubtful[i].as_py()): failure
              for i, failure in _failures(table.take(doubtful), contract.schema).items()}
    keep = pa.array([i not in failed for i in range(table.num_rows)])
    return table.filter(keep), [(i, r, d) for i, (r, d) in sorted(failed.items())]


def _failures(table: pa.Table, schema: pa_schema.DataFrameSchema
              ) -> dict[int, tuple[Quarantine, str]]:
    """Row index -> (reason, detail) of each row pandera rejects."""
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype(),
                                          pa.int64(): pd.Int64Dtype()}.get)
    try:
        schema.validate(frame, lazy=True)
        return {}
    except pa_schema.errors.SchemaErrors as errors:
        failures = errors.failure_cases
    if failures["index"].isna().any():
        whole = failures[failures["index"].isna()].iloc[0].to_dict()
        raise ValueError(f"refined contract failed for the whole batch: {whole}")
    # One reason per row: a range failure wins, as it is the most specific.
    failures = failures.assign(
        reason=(failures["check"] == RANGE_CHECK).map(
            {True: Quarantine.OUT_OF_RANGE, False: Quarantine.SCHEMA_VIOLATION}),
        order=(failures["check"] != RANGE_CHECK))
    failures = failures.sort_values("order", kind="stable").drop_duplicates("index")
    return {int(i): (r, f"failed {c}") for i, r, c in
            zip(failures["index"], failures["reason"], failures["check"], strict=True)}
