"""The storage-options report: Markdown tables and PNG charts from one `vitalflow bench` run."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from benchmarks.inputs import parse_size
from vitalflow.drills import report as drill_report

STAGES = ("ingest", "refine", "derive")
MIB = 2**20


def percentile(samples: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None without samples."""
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[min(98, max(0, round(q) - 1))]


def figures(result: dict) -> dict:
    """The headline numbers of one case, each with its ratio to the case's floor."""
    pipeline = result["pipeline"]
    stages, floor = pipeline["stages"], pipeline["floor"]
    observations = pipeline["observations"]
    end_to_end = sum(stages[s]["seconds"] for s in STAGES)
    floor_total = floor["load"] + floor["derive"]
    incremental, full = stages["incremental"]["seconds"], stages["full_rebuild"]["seconds"]
    return {
        "observations": observations,
        "end_to_end_s": end_to_end,
        "obs_per_s": observations / end_to_end,
        "x_floor": end_to_end / floor_total,
        "stage_s": {s: stages[s]["seconds"] for s in STAGES},
        "stage_obs_per_s": {s: observations / stages[s]["seconds"] for s in STAGES},
        "ingest_refine_x_load_floor": (stages["ingest"]["seconds"] + stages["refine"]["seconds"])
        / floor["load"],
        "derive_x_derive_floor": stages["derive"]["seconds"] / floor["derive"],
        "floor_load_s": floor["load"], "floor_derive_s": floor["derive"],
        "peak_rss_mib": max(stages[s]["peak_rss_kib"] for s in STAGES) / 1024,
        "storage_mib": {k: v / MIB for k, v in pipeline["storage_bytes"].items()},
        "incremental_s": incremental, "full_rebuild_s": full,
        "incremental_x_floor": incremental / floor_total,
        "full_rebuild_x_floor": full / floor_total,
        "incremental_share": incremental / full,
        "equal_to_full": pipeline["incremental"]["equal_to_full_rebuild"],
        "changed": pipeline["incremental"]["changed_observations"],
    }


def _ok(results: list[dict]) -> list[dict]:
    return [r for r in results if "error" not in r]


def _n(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def markdown(report: dict, failover: list[str] | None = None) -> str:
    """The report; failover: the drills' section (vitalflow.drills.report), else a placeholder
    saying there are no drill results."""
    machine = report["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    results = report["results"]
    lines = [f"# vitalflow storage options — {report['timestamp']}", "",
             f"Machine: {machine['cpu_count']} CPUs, {machine['memory_gib']:.1f} GiB RAM, "
             f"{machine['platform']}, Python {machine['python']}; commit "
             f"{machine['git_commit'] or 'unknown'} (source hash {machine['source_sha256']}).",
             "", f"Packages: {packages}.", "", f"Command: `{report['command']}`", "",
             "Every ratio divides a time by the same profile's **floor**, measured in the same "
             "run: the bare work done the fastest known way — DuckDB read_json of the needed "
             "fields from the input files, the engine's own bulk append of them (PostgreSQL: "
             "binary COPY into tables without keys or indexes) and the derive query over every "
             "person, with nothing else (benchmarks/floors.py, benchmarks/README.md). Ratios "
             "hold across machines and noisy neighbours; seconds do not.", ""]
    for failed in (r for r in results if "error" in r):
        lines += [f"**{failed['profile']} · {failed['size']} failed:** {failed['error']}", ""]
    lines += _throughput_table(results) + _stage_table(results) + _incremental_table(results)
    lines += _query_table(results) + _concurrency_table(results)
    lines += failover if failover is not None else drill_report.section({})
    return "\n".join(lines)


LEFT_COLUMNS = ("size", "profile", "query", "same result")


def _table(title: str, columns: list[str], rows: list[list[str]], note: str) -> list[str]:
    """A Markdown section: heading, table (text columns left, numbers right), note."""
    aligns = ["---" if c in LEFT_COLUMNS else "---:" for c in columns]
    return [f"## {title}", "", f"| {' | '.join(columns)} |", f"|{'|'.join(aligns)}|",
            *(f"| {' | '.join(cells)} |" for cells in rows), "", note, ""]


def _throughput_table(results: list[dict]) -> list[str]:
    rows = []
    for r in _ok(results):
        f = figures(r)
        mib = f["storage_mib"]
        rows.append([r["size"], r["profile"], f"{f['observations']:,}",
                     f"{f['end_to_end_s']:.2f}", f"{f['obs_per_s']:,.0f}",
                     f"**{f['x_floor']:.2f}×**",
                     f"{f['floor_load_s']:.2f} + {f['floor_derive_s']:.2f}",
                     f"{f['peak_rss_mib']:,.0f}", f"{mib['raw']:,.1f}", f"{mib['refined']:,.1f}",
                     f"{mib['derived']:,.2f}"])
    return _table("End to end (ingest + refine + derive, from empty)",
                  ["size", "profile", "observations", "seconds", "obs/s", "× floor",
                   "floor s (load + derive)", "peak RSS MiB", "raw MiB", "refined MiB",
                   "derived MiB"], rows,
                  "Peak RSS is the pipeline process's (ClickHouse on chdb runs inside it; "
                  "PostgreSQL and the object store do not). Storage counts every table of the "
                  "layer, with indexes (PostgreSQL), active parts (ClickHouse) and files kept "
                  "for time travel (Iceberg).")


def _stage_table(results: list[dict]) -> list[str]:
    rows = []
    for r in _ok(results):
        f = figures(r)
        rates = f["stage_obs_per_s"]
        rows.append([r["size"], r["profile"], *(f"{rates[s]:,.0f}" for s in STAGES),
                     f"{f['ingest_refine_x_load_floor']:.2f}×",
                     f"{f['derive_x_derive_floor']:.2f}×"])
    return _table("Per stage", ["size", "profile", "ingest obs/s", "refine obs/s",
                                "derive obs/s", "ingest + refine × load floor",
                                "derive × derive floor"], rows,
                  "Ingest + refine are divided by the floor's read and bulk append, derive by "
                  "its derive query.")


def _incremental_table(results: list[dict]) -> list[str]:
    rows = []
    for r in _ok(results):
        f = figures(r)
        rows.append([r["size"], r["profile"], f"{f['changed']:,}", f"{f['incremental_s']:.2f}",
                     f"{f['incremental_x_floor']:.2f}×", f"{f['full_rebuild_s']:.2f}",
                     f"{f['full_rebuild_x_floor']:.2f}×", f"{f['incremental_share']:.1%}",
                     "yes" if f["equal_to_full"] else "**no**"])
    return _table("Incremental run with 1% changed Observations vs. full rebuild from raw",
                  ["size", "profile", "changed", "incremental s", "× floor", "full rebuild s",
                   "× floor", "incremental / full", "same result"], rows,
                  "Incremental: ingest the change file, refine it, derive the changed persons. "
                  "Full rebuild: empty refined and derived, refine every raw batch again, derive "
                  "every person (`vitalflow rebuild`). Same result: the derived tables are equal "
                  "row for row afterwards.")


def _ms(samples: list[float], q: float) -> str:
    return _n(percentile(samples, q), 1)


def _query_table(results: list[dict]) -> list[str]:
    rows = [[r["size"], r["profile"], name, f"{q['rows']:,}", f"{q['cold_ms']:,.1f}",
             _ms(q["warm_ms"], 50), _ms(q["warm_ms"], 95)]
            for r in _ok(results) for name, q in r["queries"].items()]
    return _table("Analytical queries, one at a time",
                  ["size", "profile", "query", "rows", "cold ms", "warm p50 ms", "warm p95 ms"],
                  rows, "Cold: the query's first run in a new process right after PostgreSQL "
                  "restarted (the OS page cache is not dropped). Warm: the runs after it.")


def _concurrency_table(results: list[dict]) -> list[str]:
    ok = _ok(results)
    users = ok[0]["concurrency"]["users"] if ok else 0
    seconds = ok[0]["concurrency"]["seconds"] if ok else 0
    rows = [[r["size"], r["profile"], name, f"{q['rps']:,.1f}", _ms(q["samples_ms"], 50),
             _ms(q["samples_ms"], 95), _ms(q["samples_ms"], 99), str(q["failures"])]
            for r in ok for name, q in r["concurrency"]["queries"].items()]
    return _table(f"Concurrent readers ({users} locust users, {seconds:g} s, no think time)",
                  ["size", "profile", "query", "requests/s", "p50 ms", "p95 ms", "p99 ms",
                   "errors"], rows,
                  "Each user runs patient_history three times as often as the other two. A "
                  "response time runs from when the user was ready to ask (its previous answer) "
                  "to the answer, so waiting behind other users counts. In-process engines "
                  "(chdb, pyiceberg's reads) block the one locust process while they work, so "
                  "their users are served one at a time; a ClickHouse server or a query engine "
                  "over the Iceberg tables would serve them in parallel.")


# --------------------------------------------------------------------------- charts

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, ax, path: Path, ylabel: str, title: str, legend_size: int = 10) -> None:
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)


def _by_profile(results: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for r in sorted(_ok(results), key=lambda r: parse_size(r["size"])):
        grouped.setdefault(r["profile"], []).append(r)
    return grouped


def chart_throughput(results: list[dict], path: Path) -> None:
    """End-to-end observations/s, one group per size, one bar per profile, ratio on top."""
    plt = _plt()
    grouped = _by_profile(results)
    sizes = sorted({r["size"] for r in _ok(results)}, key=parse_size)
    width = 0.8 / max(len(grouped), 1)
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, (profile, rows) in enumerate(grouped.items()):
        by_size = {r["size"]: figures(r) for r in rows}
        xs = [x + (i - (len(grouped) - 1) / 2) * width for x, s in enumerate(sizes)
              if s in by_size]
        values = [by_size[s] for s in sizes if s in by_size]
        bars = ax.bar(xs, [f["obs_per_s"] for f in values], width, label=profile)
        ax.bar_label(bars, labels=[f"{f['x_floor']:.1f}×" for f in values], fontsize=7)
    ax.set_xticks(range(len(sizes)), sizes)
    ax.set_yscale("log")
    _save(fig, ax, path, "observations / second, end to end (log)",
          "Throughput by storage profile and size (label: × floor)")


def chart_growth(results: list[dict], path: Path) -> None:
    """Seconds against observations on log-log axes: slope 1 is linear cost growth."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for profile, rows in _by_profile(results).items():
        fs = [figures(r) for r in rows]
        line, = ax.plot([f["observations"] for f in fs], [f["end_to_end_s"] for f in fs],
                        marker="o", label=f"{profile} end to end")
        ax.plot([f["observations"] for f in fs],
                [f["floor_load_s"] + f["floor_derive_s"] for f in fs],
                linestyle="--", color=line.get_color(), alpha=0.6, label=f"{profile} floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("observations (log)")
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, ax, path, "seconds (log)", "Cost growth with size (dashed: the profile's floor)",
          legend_size=7)


def chart_incremental(results: list[dict], path: Path) -> None:
    """Incremental (1% changed) against full rebuild, per profile and size."""
    plt = _plt()
    ok = sorted(_ok(results), key=lambda r: (parse_size(r["size"]), r["profile"]))
    labels = [f"{r['profile']}\n{r['size']}" for r in ok]
    fs = [figures(r) for r in ok]
    fig, ax = plt.subplots(figsize=(max(8, len(ok) * 0.8), 5))
    xs = range(len(ok))
    ax.bar([x - 0.2 for x in xs], [f["full_rebuild_s"] for f in fs], 0.4, label="full rebuild")
    bars = ax.bar([x + 0.2 for x in xs], [f["incremental_s"] for f in fs], 0.4,
                  label="incremental (1% changed)")
    ax.bar_label(bars, labels=[f"{f['incremental_share']:.0%}" for f in fs], fontsize=7)
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_yscale("log")
    _save(fig, ax, path, "seconds (log)",
          "Incremental run vs. full rebuild (label: incremental / full)")


def chart_latency(results: list[dict], path: Path) -> None:
    """p50 / p95 / p99 under concurrent readers at the largest size, per query and profile."""
    plt = _plt()
    ok = _ok(results)
    largest = max((r["size"] for r in ok), key=parse_size)
    rows = [r for r in ok if r["size"] == largest]
    queries = list(rows[0]["concurrency"]["queries"]) if rows else []
    fig, axes = plt.subplots(1, max(len(queries), 1), figsize=(4 * max(len(queries), 1), 4.5),
                             sharey=True, squeeze=False)
    for ax, name in zip(axes[0], queries, strict=False):
        for i, q in enumerate((50, 95, 99)):
            values = [percentile(r["concurrency"]["queries"][name]["samples_ms"], q) or 0
                      for r in rows]
            ax.bar([x + (i - 1) * 0.27 for x in range(len(rows))], values, 0.27, label=f"p{q}")
        ax.set_xticks(range(len(rows)), [r["profile"] for r in rows], fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_yscale("log")
    axes[0][0].set_ylabel("milliseconds (log)")
    axes[0][0].legend(fontsize=7)
    users = rows[0]["concurrency"]["users"] if rows else 0
    fig.suptitle(f"Query latency with {users} concurrent users, {largest} observations")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


CHARTS = {"throughput": chart_throughput, "growth": chart_growth,
          "incremental": chart_incremental, "latency": chart_latency}


def write_report(report: dict, out: Path, console) -> Path:
    """JSON of the run (kept per timestamp) and the latest Markdown and charts."""
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"storage-{report['timestamp']}.json"
    raw.write_text(json.dumps(report, indent=1, default=str) + "\n")
    written = [raw]
    if _ok(report["results"]):
        for name, chart in CHARTS.items():
            chart(report["results"], out / f"storage-{name}.png")
            written.append(out / f"storage-{name}.png")
        # The latest drill results in the same folder (`vitalflow drill ... --out`); none run.
        failover, failover_chart = drill_report.build(out)
        written += [failover_chart] if failover_chart else []
        markdown_text = markdown(report, failover) + "\n" + "\n".join(
            f"![{name}](storage-{name}.png)" for name in CHARTS) + "\n"
        (out / "storage-latest.md").write_text(markdown_text)
        written.append(out / "storage-latest.md")
    for path in written:
        console.print(f"wrote {path}")
    return raw


def print_summary(report: dict, console) -> None:
    from rich.table import Table

    table = Table(title="vitalflow bench: end to end, as a ratio to each profile's floor")
    for column in ("size", "profile", "obs/s", "× floor", "incr / full", "peak RSS MiB",
                   "storage MiB"):
        table.add_column(column, justify="left" if column in ("size", "profile") else "right")
    for r in report["results"]:
        if "error" in r:
            table.add_row(r["size"], r["profile"], "failed", "", "", "", "")
            continue
        f = figures(r)
        table.add_row(r["size"], r["profile"], f"{f['obs_per_s']:,.0f}", f"{f['x_floor']:.2f}",
                      f"{f['incremental_share']:.1%}", f"{f['peak_rss_mib']:,.0f}",
                      f"{sum(f['storage_mib'].values()):,.1f}")
    console.print(table)
