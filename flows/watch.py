"""The watcher process: a `vitalflow.file.landed` Prefect event for each file that lands in the
input folder or under the S3 raw prefix (prefect.yaml's arrival deployment is triggered by it).

    python -m flows.watch --input DIR [--s3-prefix BUCKET/raw/] [--interval 5]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from prefect.events import emit_event

from vitalflow.config import load_settings
from vitalflow.deploy.graph import FILE_LANDED
from vitalflow.deploy.watch import Landed, Watcher, s3_filesystem

log = logging.getLogger("vitalflow.watch")


def announce(landed: Landed) -> None:
    emit_event(event=FILE_LANDED,
               resource={"prefect.resource.id": f"vitalflow.file.{landed.uri}",
                         "prefect.resource.name": Path(landed.uri).name,
                         "vitalflow.path": str(landed.path), "vitalflow.uri": landed.uri})
    log.info("landed: %s", landed.uri)


def _s3():
    from vitalflow.object_store import s3_options

    return s3_filesystem(s3_options(load_settings().paths.root))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="input folder to watch")
    parser.add_argument("--s3-prefix", default="", help="bucket/prefix to watch, e.g. "
                        "vitalflow/raw/ (the embedded store unless VITALFLOW__S3__ENDPOINT)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    root = load_settings().paths.root
    watcher = Watcher(root / "watch" / "reported.json", folder=args.input,
                      s3=_s3() if args.s3_prefix else None,
                      s3_prefix=args.s3_prefix, landing=root / "watch" / "landing")
    while True:  # until stopped (make serve stops it with the server)
        for landed in watcher.poll():
            announce(landed)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
