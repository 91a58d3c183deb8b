"""Chaos drill: random kill -9 of the pipeline, the database, the object store or the terminology
server during repeated runs; after each, the services come back and a re-run must leave exactly
the state of one clean run (every refined and derived table, row for row)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

from vitalflow.drills.base import DrillOptions, DrillResult, Teardown, private_dir, wait_until
from vitalflow.generate import generate
from vitalflow.object_store import SeaweedFS
from vitalflow.processes import alive
from vitalflow.services import EmbeddedPostgres, free_port
from vitalflow.drills.state import table_state

# target -> the profiles a trial of it runs on (the object store only holds data on lakehouse).
TARGETS: dict[str, tuple[str, ...]] = {
    "pipeline": ("postgres", "lakehouse"), "database": ("postgres", "lakehouse"),
    "object-store": ("lakehouse",), "terminology": ("postgres", "lakehouse")}
# Columns that say when, not what: they differ between any two runs.
# Same pseudonyms in every project of a drill (a test key, never a real one).
_KEY = "vitalflow-chaos-drill-key-" + "0" * 40
_RUN_TIMEOUT = 600
_console = Console(stderr=True)


@dataclass
class Tally:
    trials: int = 0
    recovered: int = 0  # the re-run succeeded and the state equals one clean run
    unrecovered: int = 0  # the re-run failed: the project was left unusable
    mismatches: int = 0  # the re-run succeeded but the state differs
    landed_during_run: int = 0  # the kill hit while the run was still going
    profiles: Counter = field(default_factory=Counter)  # trials per storage profile
    kills: Counter = field(default_factory=Counter)
    recoveries: Counter = field(default_factory=Counter)
    recovery_s: list[float] = field(default_factory=list)  # kill -> re-run done
    extra_run_s: list[float] = field(default_factory=list)  # killed run + re-run - clean run
    failures: list[str] = field(default_factory=list)


class Terminology:
    """The local terminology server as a process of its own, on one port for the whole drill
    (so a killed one comes back where the projects expect it)."""

    def __init__(self, workdir: Path, teardown: Teardown):
        self.port, self.log, self.teardown = free_port(), workdir / "terminology.log", teardown
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vitalflow.terminology.cli", "serve", "--host",
                 "127.0.0.1", "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        self.teardown.process(self.process)
        wait_until(self._answers, 120, what="the terminology server")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the terminology server exited; see {self.log}")
        try:
            return httpx.get(f"{self.url}/metadata", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> bool:
        self.process.kill()
        self.process.wait(timeout=30)
        return True


class Project:
    """One project folder (its own embedded PostgreSQL and object store) driven by the CLI."""

    def __init__(self, home: Path, profile: str, terminology: Terminology, teardown: Teardown):
        self.home, self.profile, self.teardown = home, profile, teardown
        # The servers are started here, as `vitalflow run` would start them in this project.
        self.servers = [EmbeddedPostgres(home, free_port())] + (
            [SeaweedFS(home, free_port())] if profile == "lakehouse" else [])
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("VITALFLOW__", "AWS_"))}
        self.env |= {"VITALFLOW__PATHS__HOME": str(home), "VITALFLOW_PSEUDONYM_KEY": _KEY,
                     "VITALFLOW__DATABASE__EMBEDDED_PORT": str(self.servers[0].port),
                     "VITALFLOW__S3__EMBEDDED_PORT": str(self.servers[-1].port),
                     "VITALFLOW__TERMINOLOGY__BASE_URL": terminology.url}

    def start_run(self, input_dir: Path) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "vitalflow.cli", "run", "--input", str(input_dir),
             "--profile", self.profile, "--json"], env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.teardown.callback(kill_group, process)  # a no-op once it has ended
        return process

    def run(self, input_dir: Path) -> tuple[int, str]:
        process = self.start_run(input_dir)
        try:
            _, err = process.communicate(timeout=_RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            kill_group(process)
            return -9, f"no end within {_RUN_TIMEOUT} s"
        return process.returncode, err

    def up(self) -> None:
        for server in self.servers:
            server.up()

    def down(self) -> None:
        for server in self.servers:
            server.down()

    def state(self) -> dict[str, str]:
        code = f"from vitalflow.drills.chaos import print_state; print_state({self.profile!r})"
        done = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True,
                              text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"reading the state failed: {done.stderr[-1000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def postmaster(self) -> int | None:
        """The project's postmaster, checked by its data folder (a reused pid is left alone)."""
        pgdata = self.home / "pgdata"
        try:
            pid = int((pgdata / "postmaster.pid").read_text().split()[0])
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(pgdata).encode() in command and alive(pid) else None

    def object_store(self) -> int | None:
        return self.servers[-1].pid() if self.profile == "lakehouse" else None


def print_state(profile: str) -> None:
    """The project's table_state (run in the project's environment)."""
    from vitalflow.config import load_settings
    from vitalflow.storage import open_layers

    layers = open_layers(load_settings(), profile)
    try:
        print(json.dumps(table_state(layers), sort_keys=True))
    finally:
        layers.close()


def kill_group(process: subprocess.Popen) -> None:
    """kill -9 a run and its workers (its own process group), then collect it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    for stream in (process.stdout, process.stderr):
        stream.close()


def _kill(pid: int | None) -> bool:
    """kill -9 and wait until it is gone (a dying server still looks alive to a restart)."""
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    wait_until(lambda: not alive(pid), 60, what=f"the end of process {pid}")
    return True


def drill(options: DrillOptions, teardown: Teardown, targets: tuple[str, ...] = tuple(TARGETS),
          seed: int = 0) -> Tally:
    """Reference runs, then rounds of trials (every target once per round, in random order)
    until the time budget is spent; --quick is one round, each target on its first profile."""
    budget = options.seconds or (float("inf") if options.quick else 1800)
    started = time.monotonic()
    work = private_dir(options.workdir).resolve()  # servers run with their own cwd
    patients = max(10, options.observations // 25) if options.observations else (
        20 if options.quick else 40)
    input_dir = work / "input"
    generate(input_dir, patients, seed=seed, defect_rate=0.1)
    terminology = Terminology(work, teardown)
    terminology.start()
    rng = random.Random(seed)
    references: dict[str, tuple[dict, float]] = {}
    profiles = {t: TARGETS[t][:1] if options.quick else TARGETS[t] for t in targets}
    for profile in sorted({p for t in targets for p in profiles[t]}):
        project = _project(work / f"clean-{profile}", profile, terminology, teardown)
        project.up()
        began = time.monotonic()
        code, err = project.run(input_dir)
        if code != 0:
            raise RuntimeError(f"the clean {profile} run failed: {err[-2000:]}")
        references[profile] = (project.state(), time.monotonic() - began)
        _discard(project)
    tally = Tally()
    while time.monotonic() - started < budget:
        for target in rng.sample(targets, len(targets)):
            if time.monotonic() - started >= budget:
                break
            profile = rng.choice(profiles[target])
            reference, window = references[profile]
            project = _project(work / f"trial-{tally.trials + 1}", profile, terminology,
                               teardown)
            try:
                _trial(project, target, input_dir, reference, window,
                       rng.uniform(0, window), terminology, tally)
            finally:
                _discard(project)
            _console.print(f"chaos {tally.trials}: {target} on {profile}; {tally.recovered} "
                           f"recovered, {tally.unrecovered} unrecovered, {tally.mismatches} "
                           "mismatches", highlight=False)
        if options.quick:
            break
    return tally


def _project(home: Path, profile: str, terminology: Terminology, teardown: Teardown) -> Project:
    project = Project(private_dir(home), profile, terminology, teardown)
    teardown.callback(_discard, project)  # when interrupted; a no-op once discarded
    return project


def _discard(project: Project) -> None:
    if project.home.exists():
        project.down()
        shutil.rmtree(project.home, ignore_errors=True)


def _trial(project: Project, target: str, input_dir: Path, reference: dict, window: float,
           delay: float, terminology: Terminology, tally: Tally) -> None:
    tally.trials += 1
    tally.profiles[project.profile] += 1
    what = f"trial {tally.trials}: {target} on {project.profile} killed after {delay:.2f} s"
    if target != "pipeline":  # what is killed must be running (a run starts it otherwise)
        project.up()
    began = time.monotonic()
    process = project.start_run(input_dir)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        tally.landed_during_run += 1
    if target == "pipeline":
        kill_group(process)
    else:
        killed = {"database": lambda: _kill(project.postmaster()),
                  "object-store": lambda: _kill(project.object_store()),
                  "terminology": terminology.kill}[target]()
        if not killed:
            tally.failures.append(f"{what}: nothing to kill")
        try:  # the run fails, finishes or waits: it gets a bounded time to notice
            process.communicate(timeout=_RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            kill_group(process)
    tally.kills[target] += 1
    killed_at = time.monotonic()
    try:  # the killed server comes back
        if target == "terminology":
            terminology.start()
        if target in ("database", "object-store"):
            project.up()
    except Exception as exc:  # noqa: BLE001 - a server that cannot come back is the finding
        tally.unrecovered += 1
        tally.failures.append(f"{what}: {target} did not come back: {exc}"[:800])
        return
    code, err = project.run(input_dir)
    done = time.monotonic()
    if code != 0:
        tally.unrecovered += 1
        tally.failures.append(f"{what}: re-run failed: {err.strip()[-600:]}")
        return
    now = project.state()
    if now != reference:
        tally.mismatches += 1
        diff = {t: (reference[t], now[t]) for t in reference if reference[t] != now.get(t)}
        tally.failures.append(f"{what}: state differs: {diff}")
        return
    tally.recovered += 1
    tally.recoveries[target] += 1
    tally.recovery_s.append(done - killed_at)
    tally.extra_run_s.append(done - began - window)


def run(options: DrillOptions, teardown: Teardown) -> DrillResult:
    tally = drill(options, teardown)
    missed = [t for t in TARGETS if not tally.kills[t]]
    notes = [f"no time left to kill: {', '.join(missed)}"] if missed else []
    notes += tally.failures
    notes.append("acknowledged_lost does not apply: a killed run acknowledges nothing; "
                 "counts_exact says every re-run left the state of one clean run")
    exact = tally.trials > 0 and tally.recovered == tally.trials
    return DrillResult(
        "chaos", ok=exact and not missed, counts_exact=exact,
        rto_s=round(max(tally.recovery_s), 1) if tally.recovery_s else None,
        extra_run_s=round(statistics.mean(tally.extra_run_s), 1) if tally.extra_run_s else None,
        details={"trials": tally.trials, "recovered": tally.recovered,
                 "unrecovered": tally.unrecovered, "mismatches": tally.mismatches,
                 "landed_during_run": tally.landed_during_run,
                 "profiles": dict(tally.profiles), "kills": dict(tally.kills),
                 "recoveries": dict(tally.recoveries),
                 "recovery_median_s": round(statistics.median(tally.recovery_s), 1)
                 if tally.recovery_s else None},
        notes=notes)
