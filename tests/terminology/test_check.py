"""check_codings and the client against the local server: outcomes, batching, caching."""

from __future__ import annotations

import psycopg
import pyarrow as pa
import pytest

from vitalflow.terminology.cache import PersistentCache
from vitalflow.terminology.check import check_codings, outcome_counts
from vitalflow.terminology.client import TerminologyClient

LOINC = "http://loinc.org"
FEEDER = "http://vitalflow.example.org/fhir/CodeSystem/feeder-vitals"


def test_outcomes(local_server):
    table = pa.table({
        "system": [LOINC, LOINC, FEEDER, FEEDER, FEEDER, LOINC, "http://unknown.example", None],
        "code": ["8302-2", "1234-5", "WT", "WT-PREPREG", "NOTE", "29463-7", "x", "8302-2"],
        "unit": ["cm", None, "[lb_av]", "kg", None, "lbs", None, None]})
    with TerminologyClient(local_server) as client:
        rows = {r["code"] + str(r["system"]): r for r in check_codings(table, client).to_pylist()}
    height = rows["8302-2" + LOINC]
    assert (height["outcome"], height["code_system_version"], height["unit_valid"]) == (
        "valid", "2.80", True)
    assert rows["1234-5" + LOINC]["outcome"] == "invalid"
    assert "1234-5" in rows["1234-5" + LOINC]["message"]
    wt = rows["WT" + FEEDER]
    assert (wt["outcome"], wt["target_code"], wt["equivalence"]) == (
        "mapped", "29463-7", "equivalent")
    prepreg = rows["WT-PREPREG" + FEEDER]  # mapped, but the target is not a vital sign
    assert prepreg["outcome"] == "invalid" and prepreg["target_code"] == "56077-1"
    assert "not found in the value set" in prepreg["message"]
    assert rows["NOTE" + FEEDER]["outcome"] == "invalid"  # 'unmatched' is not a mapping
    lbs = rows["29463-7" + LOINC]
    assert (lbs["outcome"], lbs["unit_valid"]) == ("invalid", False)
    assert rows["xhttp://unknown.example"]["outcome"] == "invalid"
    assert rows["8302-2None"]["outcome"] == "invalid"


def test_a_million_rows_cost_a_few_calls(local_server):
    codes = ["8302-2", "29463-7", "39156-5"] * 100
    n = 1_000_000
    table = pa.table({"system": [LOINC] * (n - 1) + [FEEDER],
                      "code": (codes * (n // len(codes) + 1))[: n - 1] + ["HT"],
                      "unit": ["cm"] * n})
    table = table.group_by(["system", "code", "unit"]).aggregate([])  # refine passes distincts
    with TerminologyClient(local_server) as client:
        result = check_codings(table, client)
        assert outcome_counts(result) == {"valid": 3, "mapped": 1, "invalid": 0, "pending": 0}
        assert client.stats["requests"] <= 2 and client.stats["batches"] >= 1
        before = client.stats["requests"]
        check_codings(table, client)
        assert client.stats["requests"] == before  # memory cache


def test_no_batch_support_falls_back_to_single_calls(local_server):
    from vitalflow.terminology.settings import TerminologySettings
    table = pa.table({"system": [LOINC, LOINC], "code": ["8302-2", "29463-7"],
                      "unit": ["cm", "kg"]})
    with TerminologyClient(local_server, TerminologySettings(batch=False)) as client:
        assert set(check_codings(table, client).column("outcome").to_pylist()) == {"valid"}
        assert client.stats["batches"] == 0 and client.stats["requests"] == 4


@pytest.mark.postgres
def test_persistent_cache(local_server, database_url):
    table = pa.table({"system": [LOINC, FEEDER], "code": ["8302-2", "HT"], "unit": ["cm", "m"]})
    with TerminologyClient(local_server, cache=PersistentCache(database_url)) as first:
        expected = check_codings(table, first)
        assert first.stats["requests"] > 0
    # A new process (empty memory) answers from the database without asking the server.
    with TerminologyClient("http://127.0.0.1:9", cache=PersistentCache(database_url)) as second:
        assert check_codings(table, second).equals(expected)
        assert second.stats["requests"] == 0 and second.stats["database_hits"] > 0
    with psycopg.connect(database_url) as conn:  # time passes beyond the TTL
        conn.execute("UPDATE meta.terminology_cache SET expires = now() - interval '1 second'")
    cache = PersistentCache(database_url)
    with TerminologyClient(local_server, cache=cache) as third:
        assert check_codings(table, third).equals(expected)
        assert third.stats["database_hits"] == 0 and third.stats["requests"] > 0
    with psycopg.connect(database_url) as conn:
        count, = conn.execute("SELECT count(*) FROM meta.terminology_cache "
                              "WHERE expires > now()").fetchone()
    assert count == 4  # refreshed: 2 codes (validate/translate+validate) and 2 units


@pytest.mark.parametrize(("equivalences", "chosen"), [
    (["unmatched"], None), (["disjoint"], None), (["not-related-to"], None),
    (["unmatched", "wider"], "wider"), (["inexact", "equivalent"], "equivalent"),
])
def test_a_translation_uses_the_best_usable_match(equivalences, chosen):
    """$translate matches that do not say 'this target means the source' are never used."""
    from vitalflow.terminology.check import _best_match

    answer = {"resourceType": "Parameters", "parameter": [
        {"name": "match", "part": [
            {"name": "equivalence", "valueCode": eq},
            {"name": "concept", "valueCoding": {"system": LOINC, "code": f"code-{eq}"}}]}
        for eq in equivalences]}
    concept, equivalence = _best_match(answer)
    assert equivalence == chosen
    assert concept == (None if chosen is None else {"system": LOINC, "code": f"code-{chosen}"})
