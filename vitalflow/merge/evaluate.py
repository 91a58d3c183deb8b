"""Pairwise precision and recall of merged persons against ground truth from the generator."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from vitalflow.merge.clustering import cluster
from vitalflow.merge.identity_rows import identity_rows_from_json
from vitalflow.merge.matching import score
from vitalflow.merge.settings import MergeSettings


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    true_pairs: int  # record pairs that are one person
    predicted_pairs: int  # record pairs merged into one person
    correct_pairs: int


def evaluate(links: pa.Table, truth: list[list[str]]) -> Scores:
    """Pairwise scores of `links` (person_id per source_id) against true clusters of source
    ids; a source id in no cluster is a person of its own. An empty side scores 1."""
    true_person = {source_id: members[0] for members in truth for source_id in members}
    rows = links.select(["person_id", "source_id"]).to_pylist()
    predicted = Counter(r["person_id"] for r in rows)
    actual = Counter(true_person.get(r["source_id"], r["source_id"]) for r in rows)
    both = Counter((r["person_id"], true_person.get(r["source_id"], r["source_id"]))
                   for r in rows)

    def pairs(counts: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    true_pairs, predicted_pairs, correct = pairs(actual), pairs(predicted), pairs(both)
    precision = correct / predicted_pairs if predicted_pairs else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, true_pairs, predicted_pairs, correct)


@dataclass(frozen=True)
class Evaluation:
    records: int
    persons: int  # true persons among the records
    score_seconds: float
    by_threshold: dict[float, Scores]


def evaluate_generated(patients: int, *, seed: int = 0, duplicate_share: float = 0.1,
                       thresholds: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99),
                       settings: MergeSettings | None = None) -> Evaluation:
    """Generate an export with duplicates, score it once and cluster at each threshold."""
    from vitalflow.generate import generate

    settings = settings or MergeSettings()
    settings = settings.model_copy(update={
        "review_probability": min(settings.review_probability, *thresholds)})
    with tempfile.TemporaryDirectory(prefix="vitalflow-merge-eval-") as folder:
        report = generate(Path(folder), patients, seed=seed, defect_rate=0.0, visits=1,
                          duplicate_share=duplicate_share)
        lines = (Path(folder) / report.files[0]).read_bytes().splitlines()
    identities = identity_rows_from_json(lines, identifier_systems=settings.identifier_systems,
                                         default_source_system=settings.default_source_system)
    started = time.perf_counter()
    pairs = score(identities, settings)
    seconds = time.perf_counter() - started
    now = datetime.now(UTC)
    by_threshold = {threshold: evaluate(cluster(identities, pairs, match_probability=threshold,
                                                now=now).links, report.identity_clusters)
                    for threshold in thresholds}
    persons = identities.num_rows - report.duplicate_patients
    return Evaluation(identities.num_rows, persons, seconds, by_threshold)
