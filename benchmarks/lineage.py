"""The three lineage options side by side (docs/lineage.md): run time, storage added, trace time.

    python -m benchmarks.lineage --sizes 10k,100k --repeats 3

Each (size, mode, repeat) runs the whole pipeline from empty into its own database on one
embedded PostgreSQL; inputs come from the generator (~27.5 Observation lines per patient).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from vitalflow import pipeline
from vitalflow.config import load_settings
from vitalflow.generate import generate
from vitalflow.lineage.recorder import lineage_folder
from vitalflow.lineage.trace import trace
from vitalflow.services import EmbeddedPostgres, free_port
from vitalflow.storage import open_layers
from vitalflow.tables import PATIENT_BMI_LATEST

MODES = ("file", "openlineage", "hybrid")
OUT = Path(__file__).resolve().parent / "results"


def _size(text: str) -> int:
    text = text.lower()
    return int(float(text[:-1]) * {"k": 1e3, "m": 1e6}[text[-1]]) if text[-1] in "km" else int(text)


def _lineage_bytes(settings, url: str) -> dict:
    """Bytes each option adds: the raw record id column every option keeps in refined, the
    event files, the meta.lineage table."""
    folder = lineage_folder(settings)
    events = sum(p.stat().st_size for p in folder.glob("*.jsonl")) if folder.exists() else 0
    with psycopg.connect(url) as conn:
        key_column = conn.execute("SELECT coalesce(sum(pg_column_size(raw_record_id)), 0) FROM "
                                  "(SELECT raw_record_id FROM refined.observation UNION ALL "
                                  "SELECT raw_record_id FROM refined.patient) r").fetchone()[0]
        table = conn.execute("SELECT coalesce(pg_total_relation_size(to_regclass("
                             "'meta.lineage')), 0)").fetchone()[0]
        refined = conn.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                               "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                               "n.nspname = 'refined' AND c.relkind = 'r'").fetchone()[0]
    return {"raw_record_id_column": int(key_column), "events_file": events,
            "lineage_table": int(table), "refined_total": int(refined)}


def _trace_ms(settings, tries: int = 20) -> float:
    layers = open_layers(settings)
    try:
        keys = layers.derived.read(PATIENT_BMI_LATEST, ["patient_key"]).column(0).to_pylist()
        times = []
        for key in keys[:tries]:
            start = time.perf_counter()
            trace(layers, PATIENT_BMI_LATEST.qualified_name, key)
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    finally:
        layers.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10k")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("VITALFLOW_PSEUDONYM_KEY", uuid.uuid4().hex * 2)
    work = Path(tempfile.mkdtemp(prefix="vitalflow-lineage-bench-"))
    server = EmbeddedPostgres(work / "pg", free_port())
    server.up()
    results = []
    try:
        for size in args.sizes.split(","):
            data = work / f"data-{size}"
            generate(data, max(1, _size(size) // 25), seed=1, visits=10, defect_rate=0.02)
            for repeat in range(args.repeats):
                for mode in MODES:  # interleaved, so load drifts hit every mode alike
                    name = f"b_{uuid.uuid4().hex[:10]}"
                    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
                        conn.execute(f"CREATE DATABASE {name} OWNER vitalflow")
                    settings = load_settings(paths={"home": work / name},
                                             database={"url": server.url(name)},
                                             lineage={"mode": mode})
                    start = time.perf_counter()
                    summary = pipeline.run(settings, data)
                    seconds = time.perf_counter() - start
                    row = {"size": size, "mode": mode, "repeat": repeat, "seconds": seconds,
                           "lineage_seconds": summary["lineage"].get("seconds", 0.0),
                           "observations_read": summary["counts"]["Observation"]["read"],
                           "trace_ms": _trace_ms(settings),
                           **_lineage_bytes(settings, server.url(name))}
                    results.append(row)
                    print(json.dumps(row), flush=True)
                    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
                        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        server.down()
    OUT.mkdir(exist_ok=True)
    (OUT / "lineage-latest.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
