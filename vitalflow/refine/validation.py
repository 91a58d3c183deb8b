"""pandera contracts for refined rows, built from the table descriptions and measure catalogue."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa_schema
import pyarrow as pa

from vitalflow.catalog import MEASURES
from vitalflow.reasons import Quarantine
from vitalflow.tables import Column

_DTYPES = {"text": "string", "float": "float64", "int": "Int64", "bool": "boolean",
           "date": "object", "timestamp": "datetime64[us, UTC]", "json": "string"}
_LOWS = {m.name: m.low for m in MEASURES.values()}
_HIGHS = {m.name: m.high for m in MEASURES.values()}
_UNITS = {m.name: m.unit for m in MEASURES.values()}
RANGE_CHECK = "value_in_physiological_range"


def _in_range(frame: pd.DataFrame) -> pd.Series:
    # Series.map with a dict is vectorised; an unknown measure maps to NaN and fails.
    return ((frame["value"] >= frame["measure"].map(_LOWS))
            & (frame["value"] <= frame["measure"].map(_HIGHS)))


def observation_schema(columns: list[Column]) -> pa_schema.DataFrameSchema:
    """The refined.observation contract: types, nullability, canonical units, plausible values."""
    checks = {
        "measure": [pa_schema.Check.isin(list(_UNITS))],
        "unit": [pa_schema.Check.isin(sorted(set(_UNITS.values())))],
        "observation_id": [pa_schema.Check.str_length(1, 64)],
    }
    return pa_schema.DataFrameSchema(
        {c.name: pa_schema.Column(_DTYPES[c.type], checks=checks.get(c.name, []),
                                  nullable=c.nullable, description=c.description)
         for c in columns},
        checks=[pa_schema.Check(_in_range, name=RANGE_CHECK, element_wise=False),
                pa_schema.Check(lambda f: f["measure"].map(_UNITS) == f["unit"],
                                name="unit_is_canonical")],
        strict=True, coerce=False)


def split_valid(table: pa.Table, schema: pa_schema.DataFrameSchema
                ) -> tuple[pa.Table, list[tuple[int, Quarantine, str]]]:
    """Rows that pass the contract, and (row index, reason, detail) for rows that do not."""
    if table.num_rows == 0:
        return table, []
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype(),
                                          pa.int64(): pd.Int64Dtype()}.get)
    try:
        schema.validate(frame, lazy=True)
        return table, []
    except pa_schema.errors.SchemaErrors as errors:
        failures = errors.failure_cases
    if failures["index"].isna().any():
        whole = failures[failures["index"].isna()].iloc[0].to_dict()
        raise ValueError(f"refined contract failed for the whole batch: {whole}")
    # One reason per row: a range failure wins, as it is the most specific.
    failures = failures.assign(
        reason=(failures["check"] == RANGE_CHECK).map(
            {True: Quarantine.OUT_OF_RANGE, False: Quarantine.SCHEMA_VIOLATION}),
        order=(failures["check"] != RANGE_CHECK)).sort_values("order").drop_duplicates("index")
    failed = {int(i): (r, f"failed {c}") for i, r, c in
              zip(failures["index"], failures["reason"], failures["check"], strict=True)}
    keep = pa.array([i not in failed for i in range(table.num_rows)])
    return table.filter(keep), [(i, r, d) for i, (r, d) in sorted(failed.items())]
