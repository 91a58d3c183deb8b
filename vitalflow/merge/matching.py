"""Scores pairs of source records: the identifier rule, then Splink (Fellegi-Sunter, DuckDB)."""

from __future__ import annotations

import logging
import re
import unicodedata

import pyarrow as pa
import pyarrow.compute as pc

from vitalflow.merge.settings import MergeSettings

PAIR_SCHEMA = pa.schema([
    pa.field("source_system_l", pa.string(), False),
    pa.field("source_id_l", pa.string(), False),
    pa.field("source_system_r", pa.string(), False),
    pa.field("source_id_r", pa.string(), False),
    pa.field("match_probability", pa.float64(), False),
    pa.field("match_weight", pa.float64()),  # log2 Bayes factor; null for the identifier rule
    pa.field("rule", pa.string(), False),  # identifier | probabilistic
])
# Below this many records Splink's estimates are noise; such tables use the identifier rule only.
MIN_RECORDS_FOR_SPLINK = 50
# Rounded so that floating-point noise between runs never moves a pair across a threshold.
_DECIMALS = 6
_NOT_LETTERS = re.compile(r"[^a-z]")
_NOT_WORDS = re.compile(r"[^a-z0-9]+")
logger = logging.getLogger(__name__)


def score(identities: pa.Table, settings: MergeSettings) -> pa.Table:
    """Candidate pairs at or above `settings.review_probability`, each pair once with the
    lexicographically smaller (source_system, source_id) on the left. A pair sharing an
    identifier (system and value) is an `identifier` pair with probability 1."""
    keys = list(zip(identities.column("source_system").to_pylist(),
                    identities.column("source_id").to_pylist(), strict=True))
    pairs = dict(_identifier_pairs(identities, keys))
    if identities.num_rows >= MIN_RECORDS_FOR_SPLINK:
        for pair, scored in _probabilistic_pairs(identities, keys, settings).items():
            pairs.setdefault(pair, scored)
    rows = sorted(pairs.items())
    return pa.Table.from_pylist(
        [{"source_system_l": left[0], "source_id_l": left[1], "source_system_r": right[0],
          "source_id_r": right[1], "match_probability": probability, "match_weight": weight,
          "rule": rule} for (left, right), (probability, weight, rule) in rows],
        schema=PAIR_SCHEMA)


def _probabilistic_pairs(identities: pa.Table, keys: list[tuple],
                         settings: MergeSettings) -> dict:
    """Splink's pairs; when training fails on the input (too few or too uniform records:
    "no record pairs", "math domain error"), none: the identifier rule alone links records
    this run, and a run never fails for it."""
    try:
        return _splink_pairs(identities, keys, settings)
    except Exception as exc:  # noqa: BLE001 - any Splink failure: fall back, never fail the run
        logger.warning("merge: probabilistic matching could not be trained on these %d records "
                       "(%s); this run links records by shared identifiers only",
                       identities.num_rows, type(exc).__name__)
        return {}


def _ordered(a: tuple, b: tuple) -> tuple[tuple, tuple]:
    return (a, b) if a < b else (b, a)


def _identifier_pairs(identities: pa.Table, keys: list[tuple]) -> dict:
    groups: dict[tuple[str, str], list[tuple]] = {}
    systems = identities.column("identifier_system").to_pylist()
    values = identities.column("identifier_value").to_pylist()
    for key, system, value in zip(keys, systems, values, strict=True):
        if system and value:
            groups.setdefault((system, value), []).append(key)
    # A star from the group's first record links the whole group; clustering closes it.
    pairs = {}
    for members in groups.values():
        members.sort()
        for other in members[1:]:
            pairs[(members[0], other)] = (1.0, None, "identifier")
    return pairs


def matching_columns(identities: pa.Table) -> pa.Table:
    """The normalised columns Splink compares: accent-, case- and punctuation-free name keys,
    birth year, postcode, its 3-character area, an address key."""
    def name_key(value: str | None) -> str | None:
        if value is None:
            return None
        plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
        return _NOT_LETTERS.sub("", plain.casefold()) or None

    def words(value: str | None) -> str | None:
        return _NOT_WORDS.sub(" ", value.casefold()).strip() or None if value else None

    postcodes = [p.replace(" ", "").upper() or None if p else None
                 for p in identities.column("postcode").to_pylist()]
    return pa.table({
        "unique_id": pa.array(range(identities.num_rows), pa.int64()),
        "given_key": [name_key(v) for v in identities.column("given").to_pylist()],
        "family_key": [name_key(v) for v in identities.column("family").to_pylist()],
        "birth_date": identities.column("birth_date"),
        "birth_year": pc.year(identities.column("birth_date")),
        "sex": identities.column("sex"),
        "postcode": pa.array(postcodes, pa.string()),
        "postcode_area": pa.array([p[:3] if p else None for p in postcodes], pa.string()),
        "address_key": [words(v) for v in identities.column("address_line").to_pylist()],
    })


def _model(settings: MergeSettings) -> dict:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator

    address = cl.CustomComparison(output_column_name="address", comparison_levels=[
        cll.NullLevel("postcode"),
        cll.And(cll.ExactMatchLevel("postcode"), cll.JaroWinklerLevel("address_key", 0.9)),
        cll.ExactMatchLevel("postcode"),
        cll.ExactMatchLevel("postcode_area"),
        cll.ElseLevel(),
    ])
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[
            cl.NameComparison("given_key", jaro_winkler_thresholds=[0.92, 0.8]),
            cl.NameComparison("family_key", jaro_winkler_thresholds=[0.92, 0.8]),
            cl.DateOfBirthComparison("birth_date", input_is_string=False,
                                     datetime_thresholds=[1, 1], datetime_metrics=["month",
                                                                                   "year"]),
            cl.ExactMatch("sex"),
            address,
        ],
        blocking_rules_to_generate_predictions=list(settings.blocking_rules),
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def _expectation_maximisation(linker, rule) -> None:
    """One EM session; if it fails (on small tables a level can get m = 0, which Splink 5
    rejects midway), the m values from before the session are put back."""
    levels = [level for comparison in linker._settings_obj.comparisons
              for level in comparison.comparison_levels if not level.is_null_level]
    saved = [level._m_probability for level in levels]
    try:
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True)
    except ValueError:
        logger.warning("merge: an EM training session failed; keeping the m values from "
                       "before it (expected only on small tables)")
        for level, m_probability in zip(levels, saved, strict=True):
            level._m_probability = m_probability


def _splink_pairs(identities: pa.Table, keys: list[tuple], settings: MergeSettings) -> dict:
    """Trains without labels (u by seeded random sampling, m by EM) and predicts."""
    import duckdb
    from splink import DuckDBAPI, Linker, block_on

    connection = duckdb.connect()
    # One thread: the same input gives the same floating-point sums, hence the same pairs.
    connection.execute("SET threads = 1")
    try:
        db_api = DuckDBAPI(connection)
        linker = Linker(db_api.register(matching_columns(identities)), _model(settings),
                        log_level=logging.ERROR)
        training = linker.training
        training.estimate_probability_two_random_records_match(
            ["l.given_key = r.given_key and l.family_key = r.family_key and "
             + "l.birth_date = r.birth_date"], recall=0.7)
        training.estimate_u_using_random_sampling(max_pairs=settings.u_sample_pairs,
                                                  seed=settings.seed)
        # Each session trains the comparisons its blocking leaves free.
        for rule in (block_on("birth_date"), block_on("family_key", "given_key")):
            _expectation_maximisation(linker, rule)
        predictions = linker.inference.predict(
            threshold_match_probability=settings.review_probability)
        result = predictions.as_duckdbpyrelation().select(
            "unique_id_l, unique_id_r, match_probability, match_weight").fetchall()
    finally:
        connection.close()
    pairs = {}
    for left, right, probability, weight in result:
        pairs[_ordered(keys[left], keys[right])] = (
            round(probability, _DECIMALS), round(weight, _DECIMALS), "probabilistic")
    return pairs
