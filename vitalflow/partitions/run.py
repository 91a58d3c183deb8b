"""A run's refine and derive split into partitions: planned and finished here, each partition
done by whichever worker claims it (vitalflow/partitions/worker.py or flows/partitions.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from vitalflow.config import Settings
from vitalflow.control import last_change_seq, mark_refined, set_watermark, target_of
from vitalflow.derive.run import derive_age_band_summary, derive_patient_bmi
from vitalflow.derive.sql import DeriveResult
from vitalflow.partitions import claims
from vitalflow.partitions.keys import Partition
from vitalflow.refine.persons import link_persons, reconcile_persons
from vitalflow.refine.run import RefineResult, Work, refine
from vitalflow.tables import PATIENT_BMI_LATEST

# execute(run_id, stage) returns once every partition of the stage is done, or raises.
Execute = Callable[[str, str], None]


@contextmanager
def pipeline_held(url: str) -> Iterator[psycopg.Connection]:
    """The pipeline lock (control.lock_pipeline) held by this session while partitions run, so
    no unpartitioned refine or derive runs in between; released before steps that take it."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('vitalflow.pipeline'))")
        yield conn


def run_partitioned(run, parts: int, execute: Execute, full: bool = False) -> None:
    """Refine and derive of an entered PipelineRun in parts partitions each; the results land
    on run.refined and run.derived as an unpartitioned run's would."""
    layers, settings = run.layers, run.settings
    start = time.perf_counter()
    with pipeline_held(layers.control.url) as conn:
        batches = plan_refine(conn, run, parts)
        execute(run.run_id, "refine")
        run.refined = finish_refine(conn, run, batches)
    run.refined.persons_moved = reconcile_persons(layers, settings)
    run.seconds["refine"] = time.perf_counter() - start
    start = time.perf_counter()
    with pipeline_held(layers.control.url) as conn:
        upto = plan_derive(conn, run, parts, full)
        execute(run.run_id, "derive")
        bmi = finish_derive(conn, run, upto)
    summary = derive_age_band_summary(layers, settings.derive)
    run.derived = DeriveResult(bmi["changed_patients"], bmi["written"], bmi["deleted"],
                               summary["written"], summary["deleted"], full)
    run.seconds["derive"] = time.perf_counter() - start


def plan_refine(conn: psycopg.Connection, run, parts: int) -> list[tuple[str, int]]:
    """The batches this run refines, fixed now (a batch ingested meanwhile waits for the next
    run); persons linked once here, not per partition."""
    layers, settings = run.layers, run.settings
    with conn.transaction():
        work = Work.find(conn, layers.raw, target_of(layers.refined, layers.control))
        if settings.merge.enabled:
            link_persons(conn, settings, layers.raw, work.pending)
        batches = [(b.batch_id, b.records) for b in work.pending]
        claims.plan(conn, run.run_id, "refine", parts, {"batches": batches})
    return batches


def plan_derive(conn: psycopg.Connection, run, parts: int, full: bool) -> int:
    upto = last_change_seq(conn)
    claims.plan(conn, run.run_id, "derive", parts, {"full": full, "upto": upto})
    return upto


def finish_refine(conn: psycopg.Connection, run, batches: list[tuple[str, int]]
                  ) -> RefineResult:
    """Every partition done: the batches are marked refined and the counts added up."""
    layers = run.layers
    result = RefineResult(batches=[b for b, _ in batches])
    with conn.transaction():
        for state in _all_done(conn, run.run_id, "refine"):
            part = state["result"]
            for resource_type, counts in part["counts"].items():
                total = result.resource(resource_type)
                for name, n in counts.items():
                    setattr(total, name, getattr(total, name) + n)
            result.quarantine_reasons.update(Counter(part["quarantine_reasons"]))
            result.filter_reasons.update(Counter(part["filter_reasons"]))
            result.promoted_orphans += part["promoted_orphans"]
        mark_refined(conn, target_of(layers.refined, layers.control), run.run_id, batches)
    return result


def finish_derive(conn: psycopg.Connection, run, upto: int) -> dict[str, int]:
    layers = run.layers
    total = Counter()
    with conn.transaction():
        for state in _all_done(conn, run.run_id, "derive"):
            total.update(state["result"])
        set_watermark(conn, target_of(layers.derived, layers.control),
                      PATIENT_BMI_LATEST.qualified_name, upto)
    return {k: total[k] for k in ("changed_patients", "written", "deleted")}


def _all_done(conn: psycopg.Connection, run_id: str, stage: str) -> list[dict]:
    states = claims.states(conn, run_id, stage)
    left = [s["part"] for s in states if s["state"] != "done"]
    if left:
        raise RuntimeError(f"{stage} partitions {left} of run {run_id} are not done")
    return states


def do_claim(settings: Settings, layers, claim: claims.Claim) -> None:
    """The claimed partition's share of its stage, marked done in the same transaction."""
    if claim.stage == "refine":
        partition = Partition.of(settings, claim.part, claim.parts,
                                 [b for b, _ in claim.plan["batches"]])
        refine(layers, settings, claim.run_id, partition=partition,
               finish=lambda conn, result: claim.finish(conn, refine_outcome(result)))
    else:
        derive_patient_bmi(layers, settings.derive, claim.plan["full"],
                           Partition.of(settings, claim.part, claim.parts), claim.finish)


def refine_outcome(result: RefineResult) -> dict:
    return {"counts": {t: c.as_dict() for t, c in result.counts.items()},
            "quarantine_reasons": dict(result.quarantine_reasons),
            "filter_reasons": dict(result.filter_reasons),
            "promoted_orphans": result.promoted_orphans}


def work(settings: Settings, layers, run_id: str, stage: str, part: int | None = None,
         claimed: Callable[[claims.Claim], None] | None = None) -> int:
    """Claim and do partitions of the stage until none is left (part: only that one); returns
    how many this worker did. claimed(claim) is told each claim first (tests, the drill)."""
    done = 0
    while (claim := claims.claim_next(layers.control.url, run_id, stage, part)) is not None:
        try:
            if claimed:
                claimed(claim)
            do_claim(settings, layers, claim)
            done += 1
        finally:
            claim.close()
    return done


