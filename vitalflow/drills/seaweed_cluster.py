"""A replicated SeaweedFS on loopback for drills: one master, N volume servers, a filer with S3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

from vitalflow.drills.base import Teardown, private_dir, wait_until
from vitalflow.object_store import (HOST, credentials, credentials_file, filesystem, port_taker,
                                    server_env, weed_binary)
from vitalflow.processes import alive

# Small volumes, so that a short run already spreads over several volumes and servers.
VOLUME_SIZE_MB = 64
SHELL_TIMEOUT = 300


@dataclass
class SeaweedCluster:
    """Master, volume servers and filer+S3 as separate processes under root, every port on
    127.0.0.1; replication is SeaweedFS's xyz placement (001: one more copy on another server
    of the same rack)."""

    root: Path
    volume_servers: int = 3
    replication: str = "001"
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def copies(self) -> int:
        return 1 + sum(int(digit) for digit in self.replication)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.ports['s3']}"

    @property
    def master(self) -> str:
        return f"{HOST}:{self.ports['master']}.{self.ports['master.grpc']}"

    def volume_name(self, index: int) -> str:
        return f"volume{index}"

    def volume_url(self, index: int) -> str:
        return f"{HOST}:{self.ports[self.volume_name(index)]}"

    def up(self, teardown: Teardown, timeout: float = 120) -> str:
        """Start every server (each registered on teardown) and return the S3 endpoint once a
        bucket can be created and every volume server has registered."""
        self.root = private_dir(self.root.resolve())  # weed runs in it: no relative paths
        credentials(self.root)
        names = ["master", "s3", "filer",
                 *(self.volume_name(i) for i in range(self.volume_servers))]
        with port_taker() as take:
            for name in names:
                self.ports[name], self.ports[f"{name}.grpc"] = take(), take()
        self._start(teardown, "master", "master", f"-mdir={private_dir(self.root / 'master')}",
                    f"-defaultReplication={self.replication}",
                    f"-volumeSizeLimitMB={VOLUME_SIZE_MB}", "-telemetry=false")
        # Servers that register before a master leads retry with back-off: wait for it.
        wait_until(self._master_leads, timeout, interval=0.5, what="a leading SeaweedFS master")
        for index in range(self.volume_servers):
            self.start_volume(teardown, index)
        wait_until(lambda: len(self._live_nodes()) == self.volume_servers, timeout,
                   interval=0.5, what="every volume server registered")
        self._start(teardown, "filer", "filer", f"-master={self.master}",
                    f"-defaultStoreDir={private_dir(self.root / 'filer')}",
                    f"-defaultReplicaPlacement={self.replication}")
        self._start(teardown, "s3", "s3",
                    f"-filer={HOST}:{self.ports['filer']}.{self.ports['filer.grpc']}",
                    f"-config={credentials_file(self.root)}", "-port.iceberg=0",
                    "-port.lance=0")
        wait_until(self._ready, timeout, interval=0.5, what="the SeaweedFS cluster")
        return self.endpoint

    def start_volume(self, teardown: Teardown, index: int) -> None:
        name = self.volume_name(index)
        self._start(teardown, name, "volume", f"-dir={private_dir(self.root / name)}",
                    f"-mserver={self.master}", "-max=50", "-preStopSeconds=0",
                    "-dataCenter=dc1", "-rack=rack1")

    def kill_volume(self, index: int) -> None:
        """SIGKILL: the server gets no chance to tell the master or finish a write."""
        process = self.processes[self.volume_name(index)]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def filesystem(self, request_timeout: float = 5) -> pafs.S3FileSystem:
        return filesystem(self.endpoint, *credentials(self.root), request_timeout)

    def data_nodes(self) -> dict[str, dict[int, int]]:
        """Registered volume servers -> {volume id: bytes}, as the master sees them."""
        with urllib.request.urlopen(f"http://{HOST}:{self.ports['master']}/vol/status",
                                    timeout=10) as response:
            layout = json.load(response)["Volumes"]["DataCenters"]
        return {node: {volume["Id"]: volume["Size"] for volume in volumes or []}
                for racks in layout.values() for nodes in racks.values()
                for node, volumes in nodes.items()}

    def under_replicated(self) -> set[int]:
        held: dict[int, int] = {}
        for volumes in self.data_nodes().values():
            for volume in volumes:
                held[volume] = held.get(volume, 0) + 1
        return {volume for volume, copies in held.items() if copies < self.copies}

    def shell(self, commands: str, timeout: float = SHELL_TIMEOUT) -> str:
        """Runs `weed shell` commands (the cluster's admin console) and returns what it said."""
        done = subprocess.run([str(weed_binary()), "shell", f"-master={self.master}"],
                              input=f"{commands}\nexit\n", capture_output=True, text=True,
                              timeout=timeout, env=server_env(), cwd=self.root)
        return done.stdout + done.stderr

    def fix_replication(self) -> str:
        """Copies under-replicated volumes to servers that lack them (and drops extra copies)."""
        return self.shell("lock\nvolume.fix.replication -apply\nunlock")

    def _start(self, teardown: Teardown, name: str, command: str, *options: str) -> None:
        log = self.root / f"{name}.log"
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as out:
            process = subprocess.Popen(
                [str(weed_binary()), command, f"-ip={HOST}", f"-ip.bind={HOST}",
                 f"-port={self.ports[name]}", f"-port.grpc={self.ports[f'{name}.grpc']}",
                 *options], cwd=self.root, env=server_env(), stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        teardown.process(process, grace=10)
        self.processes[name] = process

    def _master_leads(self) -> bool:
        self._check_running()
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.ports['master']}/cluster/status",
                                        timeout=5) as response:
                return bool(json.load(response).get("IsLeader"))
        except (OSError, ValueError):
            return False

    def _live_nodes(self) -> dict[str, dict[int, int]]:
        self._check_running()
        try:
            return self.data_nodes()
        except (OSError, ValueError, KeyError):
            return {}

    def _check_running(self) -> None:
        exited = [name for name, p in self.processes.items() if not alive(p.pid)]
        if exited:
            tail = (self.root / f"{exited[0]}.log").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"SeaweedFS {exited[0]} exited while starting:\n{tail}")

    def _ready(self) -> bool:
        self._check_running()
        try:
            fs = self.filesystem()
            if fs.get_file_info("probe").type == pafs.FileType.NotFound:
                fs.create_dir("probe")
            return True
        except (OSError, KeyError, ValueError):
            return False

    def wait_registered(self, index: int, timeout: float = 120) -> float:
        """Seconds until the master lists volume server index again."""
        return wait_until(lambda: self.volume_url(index) in self.data_nodes(), timeout,
                          what=f"{self.volume_name(index)} registered")
