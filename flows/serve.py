"""The process worker `make serve` starts: runs the flow runs of the vitalflow work pool (the
deployments of prefect.yaml) and serves the worker's /metrics."""

from __future__ import annotations

import argparse
import asyncio
import os

from vitalflow.config import load_settings
from vitalflow.monitoring.exposition import serve_metrics

POOL = "vitalflow-process"


async def work(pool: str) -> None:
    from prefect.workers.process import ProcessWorker

    async with ProcessWorker(work_pool_name=pool) as worker:
        await worker.start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=os.environ.get("VITALFLOW_WORK_POOL", POOL),
                        help="work pool to poll (default: VITALFLOW_WORK_POOL, else %(default)s)")
    args = parser.parse_args(argv)
    serve_metrics(load_settings().monitoring.worker_metrics_port)
    asyncio.run(work(args.pool))


if __name__ == "__main__":
    main()
