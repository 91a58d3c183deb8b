"""Finds input files that landed: new, settled files in the input folder and under an S3 prefix
(copied to a local landing folder, since ingest reads local files)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from vitalflow.locks import owner_only, write_private


@dataclass(frozen=True)
class Landed:
    """A file ready for ingest: where it was found and the local path ingest reads."""

    uri: str
    path: Path


def s3_filesystem(options: dict) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem from s3_options (vitalflow/object_store.py): the configured or
    embedded endpoint and keys."""
    endpoint = options.get("s3.endpoint", "")
    return pafs.S3FileSystem(access_key=options.get("s3.access-key-id"),
                             secret_key=options.get("s3.secret-access-key"),
                             endpoint_override=endpoint.split("://")[-1] or None,
                             scheme=endpoint.split("://")[0] if endpoint else "https",
                             region=options["s3.region"])


def _wanted(name: str) -> bool:
    return not name.startswith(("_", "."))  # as ingest: such names are skipped


class Watcher:
    """Polls a folder and optionally an S3 prefix. A file is reported once, when it has the
    same size and modification time on two polls in a row (so a file still being written is
    not), and again only if its content changes. What was reported survives restarts (state
    file, mode 600)."""

    def __init__(self, state_file: Path, folder: Path | None = None,
                 s3: pafs.FileSystem | None = None, s3_prefix: str = "",
                 landing: Path | None = None) -> None:
        self.state_file, self.folder = state_file, folder
        self.s3, self.s3_prefix = s3, s3_prefix.rstrip("/")
        self.landing = landing or state_file.parent / "landing"
        self._pending: dict[str, tuple] = {}
        self._reported: dict[str, list] | None = None

    def poll(self) -> list[Landed]:
        if self._reported is None:
            self._reported = (json.loads(self.state_file.read_text())
                              if self.state_file.exists() else {})
        seen = dict(self._local()) if self.folder else {}
        if self.s3 is not None:
            seen.update(self._remote())
        settled = [uri for uri, stamp in seen.items()
                   if self._pending.get(uri) == stamp and self._reported.get(uri) != list(stamp)]
        self._pending = seen
        landed = [Landed(uri, self._fetch(uri)) for uri in sorted(settled)]
        if landed:
            self._reported.update({uri: list(seen[uri]) for uri in settled})
            owner_only(self.state_file.parent)
            write_private(self.state_file, json.dumps(self._reported))
        return landed

    def _local(self):
        for path in sorted(self.folder.iterdir()) if self.folder.is_dir() else ():
            if path.is_file() and _wanted(path.name):
                info = path.stat()
                yield str(path.resolve()), (info.st_size, info.st_mtime_ns)

    def _remote(self) -> dict[str, tuple]:
        selector = pafs.FileSelector(self.s3_prefix, recursive=True, allow_not_found=True)
        return {f"s3://{info.path}": (info.size, info.mtime_ns)
                for info in self.s3.get_file_info(selector)
                if info.type == pafs.FileType.File and _wanted(info.base_name)}

    def _fetch(self, uri: str) -> Path:
        """The local path of a landed file: itself, or the S3 object copied under landing/."""
        if not uri.startswith("s3://"):
            return Path(uri)
        key = uri.removeprefix("s3://")
        target = owner_only(self.landing / Path(key).parent) / Path(key).name
        target.touch(mode=0o600)  # copy_files keeps an existing file's mode
        pafs.copy_files(key, str(target), source_filesystem=self.s3,
                        destination_filesystem=pafs.LocalFileSystem())
        return target
