"""Run the local terminology server on a free loopback port, in a thread or a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_ready(base_url: str, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the terminology server exited during start-up")
        try:
            if httpx.get(f"{base_url}/metadata", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the terminology server at {base_url} did not start within {timeout}s")


class EmbeddedServer:
    """The local server in a daemon thread; `with EmbeddedServer() as url:` or start()/stop()."""

    def __init__(self, content_dir: Path | None = None, host: str = "127.0.0.1",
                 port: int = 0, app=None):
        from vitalflow.terminology.server import create_app

        self.host = host
        self.port = port or free_port(host)
        self.app = app or create_app(content_dir=content_dir)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> str:
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning",
                                access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="terminology-server",
                                        daemon=True)
        self._thread.start()
        _wait_ready(self.base_url, timeout, self._thread.is_alive)
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SubprocessServer:
    """The local server as `python -m vitalflow.terminology.cli serve` in its own process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, content_dir: Path | None = None):
        self.host, self.port = host, port or free_port(host)
        self.content_dir = content_dir
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        cmd = [sys.executable, "-m", "vitalflow.terminology.cli", "serve", "--host", self.host,
               "--port", str(self.port)]
        if self.content_dir:
            cmd += ["--content", str(self.content_dir)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_ready(self.base_url, timeout, lambda: self.process.poll() is None)
        return self.base_url

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
