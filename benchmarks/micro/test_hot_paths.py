"""Micro-benchmarks of the hot functions: parsing, unit conversion, BMI and pseudonyms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow as pa

from vitalflow.config import IngestSettings
from vitalflow.refine.rules import canonical_value, standardise_observation
from vitalflow.derive.metrics import bmi, weight_category
from vitalflow.privacy.keys import PseudonymKey
from vitalflow.privacy.pseudonym import Pseudonymiser, pseudonyms
from vitalflow.privacy.settings import PrivacySettings
from vitalflow.ingest.parquet import RecordReader, raw_table
from vitalflow.refine.standardise import OBSERVATION_STAGE, Standardiser
from vitalflow.tables import OBSERVATION

# Where the canonical value sits in a standardised observation row.
VALUE = [column.name for column in OBSERVATION_STAGE].index("value")


def _measure(benchmark, rows: int, function: Callable, *args):
    """Times function(*args) and records the rows it handles per second (at the median)."""
    result = benchmark(function, *args)
    benchmark.extra_info["rows"] = rows
    if benchmark.stats is not None:  # None under --benchmark-disable, where nothing is timed
        benchmark.extra_info["rows_per_s"] = round(rows / benchmark.stats.stats.median)
    return result


def test_read_ndjson(benchmark, observation_file: Path, raw_batch: pa.RecordBatch) -> None:
    """NDJSON lines to raw Arrow tables, as ingest does before writing Parquet."""
    batch_rows = IngestSettings().batch_rows

    def read() -> list[pa.Table]:
        return [raw_table("bench", "file:///bench", *chunk)
                for chunk in RecordReader(observation_file).chunks(batch_rows)]

    tables = _measure(benchmark, raw_batch.num_rows, read)
    assert sum(t.num_rows for t in tables) == raw_batch.num_rows


def test_standardise_chunk(benchmark, standardiser: Standardiser,
                           raw_batch: pa.RecordBatch) -> None:
    """Standardiser.run, refine's entry point per chunk: fast path, full checks for the defective
    records, quarantine and the row contract."""
    out = _measure(benchmark, raw_batch.num_rows, standardiser.run, raw_batch, "Observation")
    assert out.read["Observation"] == raw_batch.num_rows
    assert out.observations.num_rows > 0.9 * raw_batch.num_rows


def test_fast_path_decode(benchmark, standardiser: Standardiser, clean_texts: list[bytes]
                          ) -> None:
    decode = standardiser.fast.decode
    rows = _measure(benchmark, len(clean_texts), lambda: [decode(text) for text in clean_texts])
    assert None not in rows


def test_full_checks(benchmark, standardiser: Standardiser, clean_texts: list[bytes]) -> None:
    """The fallback decoder (orjson, then fhir_rules) on the records the fast path takes: the
    cost per record if there were no fast path."""
    scope, excluded = standardiser.scope, standardiser.excluded

    def standardise() -> list[tuple]:
        return [standardise_observation(orjson.loads(text), scope, excluded)
                for text in clean_texts]

    rows = _measure(benchmark, len(clean_texts), standardise)
    assert rows == [standardiser.fast.decode(text)[1] for text in clean_texts]


def test_canonical_value(benchmark, quantities: list[tuple], standardiser: Standardiser,
                         clean_texts: list[bytes]) -> None:
    """UCUM conversion to the canonical unit. The pipeline converts per record inside both
    decoders; there is no vectorised Arrow path to measure."""
    converted = _measure(benchmark, len(quantities),
                         lambda: [canonical_value(*quantity) for quantity in quantities])
    # Free-text units are the generator's display forms of the UCUM codes: same values.
    assert [value for value, _ in converted] == [standardiser.fast.decode(text)[1][VALUE]
                                                 for text in clean_texts]


def test_bmi_weight_category(benchmark, body_measures: list[tuple[float, float, int]]) -> None:
    def categorise() -> list[str]:
        return [weight_category(bmi(weight, height), age) for weight, height, age in body_measures]

    categories = _measure(benchmark, len(body_measures), categorise)
    assert set(categories) == {"underweight", "normal", "overweight", "obese",
                               "not_classified_under_18"}


def test_pseudonyms(benchmark, pseudonym_key: PseudonymKey, patient_ids: list[str]) -> None:
    made = _measure(benchmark, len(patient_ids), pseudonyms, pseudonym_key,
                    PrivacySettings().source_system, patient_ids)
    assert len(set(made)) == len(patient_ids)


def test_pseudonymise_chunk(benchmark, pseudonym_key: PseudonymKey,
                            observations: pa.Table) -> None:
    """Pseudonymiser.apply on a standardised chunk, as the refine gate calls it."""
    privacy = PrivacySettings()

    def apply():
        # A fresh one each round: a Pseudonymiser remembers the identities it handed out, so a
        # reused one would skip that work from the second round on.
        return Pseudonymiser(pseudonym_key, privacy).apply(observations, OBSERVATION)

    batch = _measure(benchmark, observations.num_rows, apply)
    assert batch.table.num_rows == observations.num_rows
    assert batch.identities.num_rows == len(set(observations.column("patient_key").to_pylist()))
