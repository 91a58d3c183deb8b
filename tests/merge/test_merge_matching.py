"""Scoring with the identifier rule and Splink, and precision/recall on generated data."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from vitalflow.merge.clustering import cluster
from vitalflow.merge.evaluate import evaluate, evaluate_generated
from vitalflow.merge.identity_rows import IDENTITY_SCHEMA
from vitalflow.merge.matching import matching_columns, score
from vitalflow.merge.settings import MergeSettings, merge_settings


def test_identifier_rule_alone_for_small_tables():
    table = pa.Table.from_pylist([
        {"source_system": "s", "source_id": i, "identifier_system": system,
         "identifier_value": value}
        for i, system, value in (("c", "mrn", "1"), ("a", "mrn", "1"), ("b", "mrn", "1"),
                                 ("d", "other", "1"), ("e", None, "1"))],
        schema=IDENTITY_SCHEMA)
    pairs = score(table, MergeSettings()).to_pylist()
    assert [(p["source_id_l"], p["source_id_r"], p["rule"], p["match_probability"])
            for p in pairs] == [("a", "b", "identifier", 1.0), ("a", "c", "identifier", 1.0)]


def test_matching_columns_normalise_names_postcodes_and_addresses():
    table = pa.Table.from_pylist([{
        "source_system": "s", "source_id": "a", "given": "Zoë-Ann", "family": "O'Brien",
        "birth_date": date(1990, 3, 4), "postcode": "021 01", "address_line": "1, Main  St."}],
        schema=IDENTITY_SCHEMA)
    row = matching_columns(table).to_pylist()[0]
    assert row == {"unique_id": 0, "given_key": "zoeann", "family_key": "obrien",
                   "birth_date": date(1990, 3, 4), "birth_year": 1990, "sex": None,
                   "postcode": "02101", "postcode_area": "021", "address_key": "1 main st"}


def test_evaluate_counts_pairs():
    links = pa.table({"person_id": ["p", "p", "p", "q", "r"],
                      "source_id": ["a", "b", "x", "c", "d"]})
    scores = evaluate(links, [["a", "b", "c"]])
    assert (scores.true_pairs, scores.predicted_pairs, scores.correct_pairs) == (3, 3, 1)
    assert scores.precision == pytest.approx(1 / 3) and scores.recall == pytest.approx(1 / 3)
    perfect = evaluate(pa.table({"person_id": ["p"], "source_id": ["a"]}), [])
    assert (perfect.precision, perfect.recall) == (1.0, 1.0)


def test_settings_are_read_defensively():
    assert merge_settings(object()) == MergeSettings()
    assert merge_settings(type("S", (), {"merge": {"match_probability": 0.9}})()
                          ).match_probability == 0.9
    with pytest.raises(ValueError):
        MergeSettings(match_probability=0.6, review_probability=0.7)


@pytest.fixture(scope="module")
def generated():
    return evaluate_generated(2000, seed=0, duplicate_share=0.1, thresholds=(0.95,))


def test_precision_and_recall_on_generated_duplicates(generated):
    scores = generated.by_threshold[0.95]
    assert generated.records > generated.persons == 2000
    assert scores.true_pairs > 200
    assert scores.precision >= 0.95 and scores.recall >= 0.90, scores


def test_scoring_is_deterministic(tmp_path):
    from vitalflow.generate import generate
    from vitalflow.merge.identity_rows import identity_rows_from_json

    report = generate(tmp_path, 300, seed=5, defect_rate=0.0, visits=1, duplicate_share=0.2)
    identities = identity_rows_from_json((tmp_path / report.files[0]).read_bytes().splitlines())
    first, second = score(identities, MergeSettings()), score(identities, MergeSettings())
    assert first.equals(second) and first.num_rows > 0
    links = [cluster(identities, pairs, match_probability=0.95,
                     now=datetime(2025, 1, 1, tzinfo=UTC)).links for pairs in (first, second)]
    assert links[0].equals(links[1])
