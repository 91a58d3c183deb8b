"""The report's failover section from fixture drill results: a table per storage option, pending
drills named, the chart drawn, and the section replaced in an existing bench report."""

from __future__ import annotations

import json

from vitalflow.drills.base import DrillResult
from vitalflow.drills.report import CHART, HEADING, MARKDOWN, build, load_results, write
from vitalflow.drills.runner import save

FAILOVER = DrillResult("postgres-failover", ok=True, rto_s=6.4, acknowledged_lost=0,
                       counts_exact=True, extra_run_s=9.8,
                       details={"async_acknowledged_lost": 12, "switchover_rto_s": 1.9},
                       notes=["partition by SIGSTOP"])
REPLICAS = DrillResult("replica-reads", ok=True,
                       details={"lag_max_s": 0.42, "read_qps_by_replicas": {"0": 40.0, "1": 71.5,
                                                                             "2": 98.0}})
STORE = DrillResult("object-store-loss", ok=False, rto_s=12.0, acknowledged_lost=0,
                    counts_exact=False, details={"bytes_re_replicated": 1_048_576})


def _table_of(text: str, option: str) -> str:
    return text.split(f"### {option}", 1)[1].split("###", 1)[0]


def test_section_has_a_table_per_storage_option_with_the_drill_figures(tmp_path):
    save([FAILOVER, REPLICAS], tmp_path)
    # A result committed alone by another run combines with the ones saved here.
    (tmp_path / "drill-object-store-loss.json").write_text(STORE.json_line())

    lines, chart = build(tmp_path)
    text = "\n".join(lines)

    assert lines[0] == HEADING
    postgres = _table_of(text, "postgres")
    assert "| postgres-failover | ok | 6.40 | 0 | yes | 9.80 |" in postgres
    assert "0: 40.0 · 1: 71.5 · 2: 98.0 (read_qps_by_replicas)" in postgres
    assert "0.42 (lag_max_s)" in postgres
    assert "| worker-scaling | pending: not run yet |" in postgres
    lakehouse = _table_of(text, "lakehouse")
    assert "| object-store-loss | **failed** | 12.0 | 0 | **no** |" in lakehouse
    assert "bytes_re_replicated=1,048,576" in lakehouse
    assert "no replication" in _table_of(text, "clickhouse")
    assert "- postgres-failover: partition by SIGSTOP" in text
    assert chart == tmp_path / CHART and chart.read_bytes()[:4] == b"\x89PNG"
    assert f"![failover and replicas]({CHART})" in text


def test_save_writes_one_file_per_drill(tmp_path):
    save([FAILOVER, REPLICAS], tmp_path)
    assert json.loads((tmp_path / "drill-replica-reads.json").read_text())["drill"] == \
        "replica-reads"
    assert set(load_results(tmp_path)) == {"postgres-failover", "replica-reads"}


def test_without_results_the_section_says_how_to_get_them(tmp_path):
    lines, chart = build(tmp_path)
    assert chart is None
    assert any("No drill results yet" in line for line in lines)


def test_write_replaces_the_section_of_an_existing_bench_report(tmp_path):
    bench = tmp_path / "storage-latest.md"
    bench.write_text(f"# report\n\n## Query latency\n\nrows\n\n{HEADING}\n\nNot measured yet.\n"
                     "\n![throughput](storage-throughput.png)\n")
    save([FAILOVER], tmp_path)

    assert write(tmp_path) == tmp_path / MARKDOWN
    write(tmp_path)  # twice: still one section, one chart line

    text = bench.read_text()
    assert "Not measured yet" not in text and text.count(HEADING) == 1
    assert text.count(f"({CHART})") == 1
    assert text.startswith("# report\n\n## Query latency\n\nrows\n")
    assert text.rstrip().endswith("![throughput](storage-throughput.png)")
    assert "| postgres-failover | ok |" in (tmp_path / MARKDOWN).read_text()


def test_the_bench_report_carries_the_section_or_says_there_are_no_results(tmp_path):
    from benchmarks.report import markdown

    report = {"timestamp": "t", "command": "vitalflow bench", "results": [],
              "machine": {"cpu_count": 2, "memory_gib": 24.0, "platform": "linux",
                          "python": "3.11", "git_commit": None, "source_sha256": "x",
                          "packages": {}}}
    save([FAILOVER], tmp_path)

    with_drills = markdown(report, build(tmp_path)[0])
    without = markdown(report)

    assert with_drills.count(HEADING) == without.count(HEADING) == 1
    assert "| postgres-failover | ok |" in with_drills
    assert "No drill results yet" in without
