"""The report's "Failover and replicas" section: a table per storage option and a chart, built
from the drill results kept in a folder (drills-latest.json and drill-<name>.json)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from vitalflow.drills.runner import LATEST

HEADING = "## Failover and replicas"
CHART = "drills-failover.png"
MARKDOWN = "failover-latest.md"
# storage option -> the drills that measure it; chaos kills across the profiles it runs.
OPTIONS: dict[str, tuple[str, ...]] = {
    "postgres": ("postgres-failover", "replica-reads", "worker-scaling"),
    "lakehouse": ("object-store-loss",),
    "clickhouse": ("clickhouse",),
    "chaos (postgres and lakehouse runs)": ("chaos",),
}
_COLUMNS = ("drill", "result", "RTO s", "lost rows", "exact counts", "extra run s", "lag",
            "read scaling", "other figures")
_CLICKHOUSE = ("chdb, the in-process engine here, has no replication: nothing to break. A "
               "replicated ClickHouse (ReplicatedReplacingMergeTree + Keeper) is configuration "
               "for users' clusters (docs/scaling.md).")
_INTRO = ("From `vitalflow drill NAME|all --out DIR` (drill results in DIR; `vitalflow bench` "
          "reads the latest ones in its out folder and runs no drill). RTO: seconds without a "
          "writable primary (postgres-failover), until the data was whole again "
          "(object-store-loss) or until a re-run had restored the state of a clean run (chaos, "
          "worst trial). Lost rows: acknowledged rows missing afterwards. Extra run s: run time "
          "beyond a run without failure (negative when kills land after a run's end and the "
          "clean run was slowed by other load).")
_MIXED = ("The `mixed` profile inherits from its parts: raw on Iceberg (object-store-loss), "
          "refined in PostgreSQL (postgres-failover, replica-reads), derived in ClickHouse "
          "(no replication in chdb).")


def load_results(folder: Path) -> dict[str, dict]:
    """drill name -> its result as JSON; a drill-<name>.json wins over drills-latest.json (it
    is written by every save, and committed alone by separate runs)."""
    results = json.loads((folder / LATEST).read_text()) if (folder / LATEST).exists() else {}
    for path in sorted(folder.glob("drill-*.json")):
        result = json.loads(path.read_text())
        results[result.get("drill", path.stem.removeprefix("drill-"))] = result
    return results


def _figure(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, dict):
        return " · ".join(f"{k}: {_figure(v)}" for k, v in value.items())
    return f"{value:,}" if isinstance(value, int) else str(value)


def _lag(details: dict) -> tuple[str | None, str]:
    key = next((k for k in details if "lag" in k), None)
    return key, "—" if key is None else f"{_figure(details[key])} ({key})"


def read_scaling(details: dict) -> tuple[str | None, dict]:
    """The first details entry keyed by replica count ({"0": qps, "1": ..., "2": ...})."""
    for key, value in details.items():
        if isinstance(value, dict) and value and all(re.fullmatch(r"\d+", str(k)) for k in value):
            return key, value
    return None, {}


def _row(name: str, result: dict | None) -> list[str]:
    if result is None:
        return [name, "pending: not run yet", *("—" * (len(_COLUMNS) - 2))]
    details = result.get("details") or {}
    lag_key, lag = _lag(details)
    scaling_key, scaling = read_scaling(details)
    other = [f"{k}={_figure(v)}" for k, v in details.items()
             if k not in (lag_key, scaling_key) and not isinstance(v, list | tuple)][:10]
    status = ("ok" if result.get("ok") else "**failed**") + (" (quick)" if result.get("quick")
                                                             else "")
    return [name, status, _figure(result.get("rto_s")), _figure(result.get("acknowledged_lost")),
            _figure(result.get("counts_exact")), _figure(result.get("extra_run_s")), lag,
            f"{_figure(scaling)} ({scaling_key})" if scaling else "—", "; ".join(other) or "—"]


def section(results: dict[str, dict], chart: str | None = None) -> list[str]:
    """Markdown lines: the heading, a table per storage option, the notes, the chart."""
    lines = [HEADING, "", _INTRO, ""]
    if not results:
        lines += ["No drill results yet: run `vitalflow drill all --out DIR`.", ""]
    for option, names in OPTIONS.items():
        lines += [f"### {option}", "", f"| {' | '.join(_COLUMNS)} |",
                  "|" + "|".join("---" if c in ("drill", "result", "lag", "read scaling",
                                                "other figures") else "---:"
                                 for c in _COLUMNS) + "|",
                  *(f"| {' | '.join(_row(n, results.get(n)))} |" for n in names), ""]
        if option == "clickhouse":
            lines += [_CLICKHOUSE, ""]
    lines += [_MIXED, ""]
    notes = [f"- {name}: {note}" for name, r in results.items() for note in r.get("notes", [])]
    if notes:
        lines += ["Notes from the drills:", "", *notes, ""]
    if chart:
        lines += [f"![failover and replicas]({chart})", ""]
    return lines


def chart(results: dict[str, dict], path: Path) -> bool:
    """RTO and extra run time per drill, and read throughput by replica count; False (no
    file) when no drill has any of these figures."""
    timed = {n: r for n, r in results.items()
             if r.get("rto_s") is not None or r.get("extra_run_s") is not None}
    scaling = {n: read_scaling(r.get("details") or {}) for n, r in results.items()}
    scaling = {n: s for n, s in scaling.items() if s[1]}
    if not timed and not scaling:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    names = list(timed)
    for offset, key, label in ((-0.2, "rto_s", "RTO s"), (0.2, "extra_run_s", "extra run s")):
        left.bar([i + offset for i in range(len(names))],
                 [timed[n].get(key) or 0 for n in names], 0.4, label=label)
    left.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    left.set_ylabel("seconds")
    left.set_title("What a failure costs, per drill")
    left.legend(fontsize=8)
    for name, (key, values) in scaling.items():
        replicas = sorted(values, key=int)
        right.plot([int(k) for k in replicas], [values[k] for k in replicas], marker="o",
                   label=f"{name}: {key}")
    if scaling:
        right.legend(fontsize=8)
    else:
        right.text(0.5, 0.5, "read scaling: pending (replica-reads)", ha="center",
                   transform=right.transAxes)
    right.set_xlabel("replicas")
    right.set_title("Read throughput by replica count")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def build(folder: Path) -> tuple[list[str], Path | None]:
    """The section from folder's drill results, and its chart there (None: nothing to draw)."""
    results = load_results(folder)
    drawn = chart(results, folder / CHART)
    return section(results, CHART if drawn else None), folder / CHART if drawn else None


def write(folder: Path) -> Path:
    """failover-latest.md and the chart from folder's results; the section is also replaced in
    a storage-latest.md there, so a bench report shows the newest drills."""
    text = "\n".join(build(folder)[0])
    out = folder / MARKDOWN
    out.write_text(text + "\n")
    bench = folder / "storage-latest.md"
    if bench.exists():
        before, found, after = bench.read_text().partition(HEADING)
        if found:
            rest = re.search(r"^## |^!\[(?!failover)", after, flags=re.MULTILINE)
            tail = after[rest.start():] if rest else ""
            tmp = bench.with_suffix(".tmp")
            tmp.write_text(before + text + "\n" + tail)
            os.replace(tmp, bench)
    return out

