"""Inputs for the micro-benchmarks, built once per module so that no timed round makes them."""

from __future__ import annotations

import os
import random
import uuid
from itertools import islice
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from vitalflow.catalog import MEASURES
from vitalflow.config import IngestSettings, RefineSettings
from vitalflow.generate import generate
from vitalflow.privacy.keys import KEY_ENV, PseudonymKey, key_from_text
from vitalflow.ingest.parquet import ParquetRawStore
from vitalflow.refine.standardise import Standardiser

RECORDS = 5_000
SCALARS = 10_000  # inputs per batch for the scalar functions and pseudonyms
# The test suite's key (tests/conftest.py): these runs never read a developer's real key.
os.environ.setdefault(KEY_ENV, "vitalflow-test-key-" + "0" * 40)


@pytest.fixture(scope="module")
def observation_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5,000 generated Observation lines, 2% of them defective as in a real feed."""
    folder = tmp_path_factory.mktemp("generated")
    generate(folder, 400, visits=6, seed=11, defect_rate=0.02)
    with (folder / "Observation.ndjson").open("rb") as handle:
        lines = list(islice(handle, RECORDS))
    assert len(lines) == RECORDS, "the generator wrote fewer Observation lines than needed"
    # The name gives the resource type hint "Observation", as a bulk-export file name does.
    sample = folder / "Observation.sample.ndjson"
    sample.write_bytes(b"".join(lines))
    return sample


@pytest.fixture(scope="module")
def raw_batch(observation_file: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> pa.RecordBatch:
    """The sample as refine gets it: ingested into a raw Parquet batch, read back as one chunk."""
    store = ParquetRawStore(tmp_path_factory.mktemp("raw"))
    batch = store.ingest(observation_file).batch
    return next(store.read(batch.batch_id, RECORDS))


@pytest.fixture(scope="module")
def standardiser() -> Standardiser:
    refine, ingest = RefineSettings(), IngestSettings()
    return Standardiser(refine.observation_codes, refine.excluded_statuses,
                        ingest.max_record_bytes)


@pytest.fixture(scope="module")
def clean_texts(raw_batch: pa.RecordBatch, standardiser: Standardiser) -> list[bytes]:
    """Record bytes (as Standardiser.run hands them to the decoders) that the fast path accepts:
    both decoders turn each into a row, so their timings compare like for like."""
    texts = raw_batch.column("raw_json").cast(pa.large_binary()).to_pylist()
    return [text for text in texts if standardiser.fast.decode(text) is not None]


@pytest.fixture(scope="module", params=["ucum_code", "free_text"])
def quantities(request: pytest.FixtureRequest, clean_texts: list[bytes]) -> list[tuple]:
    """canonical_value's arguments for each clean record. free_text drops the UCUM system and
    code, as some feeds do, so the unit goes through the alias table."""
    coded = request.param == "ucum_code"
    out = []
    for text in clean_texts:
        resource = orjson.loads(text)
        quantity = resource["valueQuantity"]
        out.append((MEASURES[resource["code"]["coding"][0]["code"]], quantity["value"],
                    quantity["system"] if coded else None, quantity["code"] if coded else None,
                    quantity["unit"]))
    return out


@pytest.fixture(scope="module")
def body_measures() -> list[tuple[float, float, int]]:
    """(weight kg, height cm, age years) spread so that every weight category occurs."""
    rng = random.Random(5)
    return [(rng.uniform(3.0, 180.0), rng.uniform(50.0, 210.0), rng.randrange(100))
            for _ in range(SCALARS)]


@pytest.fixture(scope="module")
def patient_ids() -> list[str]:
    rng = random.Random(3)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(SCALARS)]


@pytest.fixture(scope="module")
def pseudonym_key() -> PseudonymKey:
    return key_from_text(os.environ[KEY_ENV], f"environment variable {KEY_ENV}")


@pytest.fixture(scope="module")
def observations(raw_batch: pa.RecordBatch, standardiser: Standardiser) -> pa.Table:
    """A standardised chunk: what the refine gate hands to the pseudonymiser."""
    return standardiser.run(raw_batch, "Observation").observations
