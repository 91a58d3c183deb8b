"""Run the declared mutants (tests/mutation/mutants.py) one at a time and report the score.

Each mutant is applied to a private copy of the project, never to the working tree, and the
copy's file is restored before the next one. `python -m tests.mutation.run [--only 3,7] [--list]`
(or `make mutation`); exit status 1 when a mutant survives that is not declared equivalent, or
when a snippet is no longer found (after a file moved: update its path in mutants.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tests.mutation.mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
IGNORED = shutil.ignore_patterns(".git", ".venv", ".vitalflow", "__pycache__", ".pytest_cache",
                                 ".hypothesis", ".coverage*", "work", "results", "*.egg-info")
console = Console(stderr=True)


class SnippetNotFound(ValueError):
    pass


def check(mutant: Mutant, root: Path = ROOT) -> str:
    """The file's text; SnippetNotFound unless the snippet occurs exactly once."""
    path = root / mutant.file
    if not path.is_file():
        raise SnippetNotFound(f"{mutant.file} does not exist (moved? update tests/mutation/"
                              "mutants.py)")
    text = path.read_text()
    found = text.count(mutant.original)
    if found != 1:
        raise SnippetNotFound(f"snippet {'not found' if found == 0 else f'found {found} times'}"
                              f" in {mutant.file}: {mutant.original!r}")
    return text


def copy_project(into: Path) -> Path:
    """The project under into/project, with ../shared beside it as the tests expect."""
    project = into / "project"
    shutil.copytree(ROOT, project, ignore=IGNORED, symlinks=True)
    shared = ROOT.parent / "shared"
    if shared.exists():
        (into / "shared").symlink_to(shared.resolve())
    return project


def pytest(tests: tuple[str, ...], project: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run the tests in the copy; past the timeout they are interrupted (SIGINT, so the
    session's fixtures stop the servers they started) and TimeoutExpired is raised."""
    env = {**os.environ, "PYTHONPATH": str(project), "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG"):
        env.pop(name, None)
    args = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    with subprocess.Popen(args, cwd=project, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def baseline_failures(groups: set[tuple[str, ...]], project: Path,
                      timeout: float) -> list[tuple[str, ...]]:
    """The test groups that fail without any mutant: a kill by them would mean nothing."""
    console.print(f"baseline: {len(groups)} test groups on the unmutated copy")
    failing = []
    for tests in sorted(groups):
        try:
            passed = pytest(tests, project, timeout).returncode == 0
        except subprocess.TimeoutExpired:
            passed = False
        if not passed:
            failing.append(tests)
    return failing


def run_one(mutant: Mutant, project: Path, timeout: float) -> tuple[str, float]:
    """'killed', 'survived' or 'timeout' (counted as killed), and the seconds it took."""
    path = project / mutant.file
    text = check(mutant, project)
    path.write_text(text.replace(mutant.original, mutant.mutated))
    start = time.monotonic()
    try:
        done = pytest(mutant.tests, project, timeout)
        # 2: a collection error, which only the mutant can cause (the baseline passed)
        outcome = {0: "survived", 1: "killed", 2: "killed"}.get(done.returncode)
        if outcome is None:  # 3-5: internal error, usage error, nothing collected
            raise RuntimeError(f"pytest exited {done.returncode} for {mutant.tests}:\n"
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    except subprocess.TimeoutExpired:
        outcome = "timeout"
    finally:
        path.write_text(text)
    return outcome, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated mutant numbers (see --list)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant")
    args = parser.parse_args(argv)
    numbered = list(enumerate(MUTANTS, start=1))
    if args.only:
        wanted = {int(n) for n in args.only.split(",")}
        numbered = [(n, m) for n, m in numbered if n in wanted]
    problems = []
    for number, mutant in numbered:
        try:
            check(mutant)
        except SnippetNotFound as exc:
            problems.append(f"mutant {number}: {exc}")
    if problems:
        console.print("[red]" + escape("\n".join(problems)))
        return 1
    if args.list:
        for number, mutant in numbered:
            console.print(escape(f"{number:3} {mutant.area:20} {mutant.file}: "
                                 f"{mutant.original!r} -> {mutant.mutated!r}"))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="vitalflow-mutation-") as scratch:
        project = copy_project(Path(scratch))
        failing = baseline_failures({m.tests for _, m in numbered}, project, args.timeout)
        if failing:
            console.print(f"[red]the unmutated project fails {escape(str(failing))}: "
                          "fix that first")
            return 1
        for number, mutant in numbered:
            outcome, seconds = run_one(mutant, project, args.timeout)
            results.append((number, mutant, outcome, seconds))
            console.print(f"mutant {number}/{len(MUTANTS)} {mutant.file}: {outcome} "
                          f"({seconds:.0f} s)")
    return report(results)


def report(results: list[tuple[int, Mutant, str, float]]) -> int:
    table = Table(title="Mutants")
    for column in ("#", "area", "file", "mutation", "outcome"):
        table.add_column(column)
    undeclared = 0
    for number, mutant, outcome, _ in results:
        survived = outcome == "survived"
        note = ("equivalent: " + mutant.equivalent) if survived and mutant.equivalent else ""
        undeclared += survived and not mutant.equivalent
        style = "red" if survived and not mutant.equivalent else ""
        table.add_row(str(number), mutant.area, mutant.file,
                      escape(f"{mutant.original.strip()!r} -> {mutant.mutated.strip()!r}"),
                      f"[{style}]{outcome}[/]" if style else f"{outcome} {escape(note)}")
    Console().print(table)
    killed = sum(outcome != "survived" for _, _, outcome, _ in results)
    equivalent = sum(outcome == "survived" and bool(m.equivalent) for _, m, outcome, _ in results)
    scored = len(results) - equivalent
    Console().print(f"killed {killed} of {len(results)} mutants; {equivalent} equivalent; "
                    f"mutation score {killed}/{scored} = {killed / max(scored, 1):.0%}")
    return 1 if undeclared else 0


if __name__ == "__main__":
    sys.exit(main())
