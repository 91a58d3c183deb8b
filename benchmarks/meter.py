"""Timing one stage of a benchmark run: wall and CPU seconds, and the process's peak RSS."""

from __future__ import annotations

import cProfile
import io
import pstats
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class StageSample:
    seconds: float
    cpu_seconds: float  # this (pipeline) process, user + system
    server_cpu_seconds: float | None  # every process of the embedded PostgreSQL server
    peak_rss_kib: int  # this process's high-water mark during the stage
    start_rss_kib: int  # what it held when the stage began (imports, earlier stages' leftovers)


def _reset_peak_rss() -> bool:
    """Reset the RSS high-water mark (Linux), so ru_maxrss afterwards is this stage's own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _is_transient(process) -> bool:
    """A client backend, or any child that has exited but is not yet reaped (a zombie)."""
    import psutil

    if process.status() == psutil.STATUS_ZOMBIE:
        return True
    # Client backends name their peer in the process title: "postgres: user db host(port)".
    return "(" in " ".join(process.cmdline())


def _wait_for_server_to_settle(postmaster, timeout: float = 5.0) -> None:
    """A backend's CPU moves to the postmaster's child times only once it is reaped; sampling
    before that would lose it between two stages."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not any(_is_transient(child) for child in postmaster.children(recursive=True)):
                return
        except psutil.NoSuchProcess:
            pass  # a child vanished while we looked: look again
        time.sleep(0.01)


def _server_cpu_seconds(postmaster) -> float | None:
    """CPU of the server and all its processes, counting exited backends via the postmaster."""
    import psutil

    if postmaster is None:
        return None
    _wait_for_server_to_settle(postmaster)
    try:
        total = 0.0
        for child in postmaster.children(recursive=True):
            try:
                times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        # The postmaster last: a child reaped in between is then counted twice (rare once
        # settled) rather than lost.
        times = postmaster.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
    except psutil.Error:
        return None
    return total


def _current_rss_kib() -> int:
    import psutil

    return psutil.Process().memory_info().rss // 1024


class Meter:
    """Times named stages of this process, optionally profiling one of them with cProfile."""

    def __init__(self, postmaster_pid: int | None = None, profile_stage: str | None = None,
                 profile_path: Path | None = None) -> None:
        import psutil

        self.postmaster = psutil.Process(postmaster_pid) if postmaster_pid else None
        self.profile_stage = profile_stage
        self.profile_path = profile_path
        self.samples: dict[str, StageSample] = {}
        self.peak_is_per_stage = _reset_peak_rss()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        profiler = cProfile.Profile() if name == self.profile_stage else None
        _reset_peak_rss()
        start_rss = _current_rss_kib()
        server_before = _server_cpu_seconds(self.postmaster)
        cpu_before = _own_cpu_seconds()
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        yield
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        cpu = _own_cpu_seconds() - cpu_before
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        server_after = _server_cpu_seconds(self.postmaster)
        server = None if server_before is None or server_after is None else (
            server_after - server_before)
        self.samples[name] = StageSample(round(seconds, 4), round(cpu, 3),
                                         None if server is None else round(server, 3), peak,
                                         start_rss)
        if profiler:
            self._save_profile(profiler)

    def _save_profile(self, profiler: cProfile.Profile) -> None:
        profiler.dump_stats(self.profile_path)
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).strip_dirs()
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(40)
        self.profile_path.with_suffix(".txt").write_text(text.getvalue())


def give_back_memory() -> None:
    """Return freed memory to the OS (Arrow's pool and malloc keep it), as a new run would start."""
    import ctypes
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


