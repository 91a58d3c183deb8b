"""kill -9 drill (issue 12): runs killed at random points, then re-run, must leave exactly the
state of one clean run. `python -m benchmarks.chaos.drill --trials 50` reports trials,
recoveries and mismatches; tests/chaos/test_kill_drill.py runs a few trials."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from vitalflow.generate import generate
from vitalflow.services import EmbeddedPostgres, free_port

# Columns that say when, not what: they differ between any two runs.
_WHEN = {"change_seq", "refined_at", "quarantined_at", "computed_at"}
_TABLES = ("refined.patient", "refined.observation", "refined.observation_pending",
           "refined.quarantine", "derived.patient_bmi_latest", "derived.age_band_summary")
# Same pseudonyms in every project of a drill.
_KEY = "vitalflow-chaos-drill-key-" + "0" * 40


@dataclass
class Report:
    trials: int = 0
    recovered: int = 0  # the re-run succeeded and the state equals one clean run
    unrecovered: int = 0  # the re-run failed: the project was left unusable
    mismatches: int = 0  # the re-run succeeded but the state differs
    postmaster_kills: int = 0
    killed_before_exit: int = 0  # the kill landed while the run was still going
    failures: list[str] = field(default_factory=list)


def project_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "VITALFLOW__PATHS__HOME": str(home),
           "VITALFLOW__DATABASE__EMBEDDED_PORT": str(free_port()),
           "VITALFLOW_PSEUDONYM_KEY": _KEY}
    env.pop("VITALFLOW__DATABASE__URL", None)
    return env


def _cli(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vitalflow.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def run_to_end(env: dict, input_dir: Path, timeout: float = 600) -> tuple[int, str]:
    process = _cli(env, "run", "--input", str(input_dir), "--json")
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def state(home: Path) -> dict[str, str]:
    """Per table of the project at home: row count and a hash of its rows."""
    return state_at(EmbeddedPostgres(home, 0).url())


def state_at(url: str) -> dict[str, str]:
    """Per table of the database at url: row count and a hash of its rows without the
    when-columns."""
    result = {}
    with psycopg.connect(url) as conn:
        for table in _TABLES:
            schema, name = table.split(".")
            columns = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s ORDER BY column_name", (schema, name))
                if r[0] not in _WHEN]
            row = ", ".join(columns)
            result[table] = conn.execute(
                f"SELECT count(*) || ':' || coalesce(md5(string_agg(r::text, '|' ORDER BY "
                f"r::text)), '') FROM (SELECT {row} FROM {table}) r").fetchone()[0]
    return result


def _postmaster_pid(home: Path) -> int | None:
    try:
        return int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop(env: dict) -> None:
    subprocess.run([sys.executable, "-m", "vitalflow.cli", "services", "down"], env=env,
                   capture_output=True, timeout=120)


def trial(work: Path, input_dir: Path, reference: dict, window: float, rng: random.Random,
          report: Report) -> None:
    home = work / f"trial-{report.trials}"
    env = project_env(home)
    delay = rng.uniform(0, window)
    kill_postmaster = rng.random() < 0.3
    report.trials += 1
    what = f"trial {report.trials}: kill after {delay:.2f} s" + (
        " (and the postmaster)" if kill_postmaster else "")
    try:
        process = _cli(env, "run", "--input", str(input_dir), "--json")
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            report.killed_before_exit += 1
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pid = _postmaster_pid(home)
        if kill_postmaster and pid:
            report.postmaster_kills += 1
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code, err = run_to_end(env, input_dir)
        if code != 0:
            report.unrecovered += 1
            report.failures.append(f"{what}: re-run failed: {err.strip()[-600:]}")
            return
        now = state(home)
        if now != reference:
            report.mismatches += 1
            diff = {t: (reference[t], now[t]) for t in reference if reference[t] != now[t]}
            report.failures.append(f"{what}: state differs: {diff}")
            return
        report.recovered += 1
    finally:
        stop(env)
        shutil.rmtree(home, ignore_errors=True)


def drill(trials: int, patients: int = 40, seed: int = 0, work: Path | None = None,
          progress=print) -> Report:
    own = work is None
    work = work or Path(tempfile.mkdtemp(prefix="vitalflow-chaos-"))
    try:
        input_dir = work / "input"
        generate(input_dir, patients, seed=seed, defect_rate=0.1)
        clean_home = work / "clean"
        clean_env = project_env(clean_home)
        started = time.monotonic()
        code, err = run_to_end(clean_env, input_dir)
        window = time.monotonic() - started
        if code != 0:
            raise RuntimeError(f"the clean run failed: {err[-2000:]}")
        reference = state(clean_home)
        stop(clean_env)
        rng = random.Random(seed)
        report = Report()
        for _ in range(trials):
            trial(work, input_dir, reference, window, rng, report)
            progress(f"{report.trials}/{trials}: {report.recovered} recovered, "
                     f"{report.unrecovered} unrecovered, {report.mismatches} mismatches")
        return report
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="Also write the report to this file.")
    args = parser.parse_args()
    report = drill(args.trials, args.patients, args.seed,
                   progress=lambda line: print(line, file=sys.stderr, flush=True))
    text = json.dumps(asdict(report), indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    sys.exit(0 if report.unrecovered == report.mismatches == 0 else 1)


if __name__ == "__main__":
    main()
