"""Wall time and peak memory (RSS of a whole process tree) of one measured piece of work."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import psutil

__all__ = ["Measured", "measure", "run_measured"]


@dataclass
class Measured:
    """What one run of a method took."""

    seconds: float = 0.0
    peak_rss_bytes: int = 0
    """Peak RSS of the whole process tree (bulk360 and the neo4j-admin JVM it starts)."""
    peak_own_rss_bytes: int = 0
    """Peak RSS of the measured process alone (bulk360's Python)."""
    stdout: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with suppress(psutil.Error):  # a child that ended between listing and reading
            total += process.memory_info().rss
    return total


class _PeakSampler(threading.Thread):
    """Samples the RSS of a process tree every 50 ms and keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak = 0
        self.own_peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.peak = max(self.peak, _tree_rss(self.root))
                self.own_peak = max(self.own_peak, self.root.memory_info().rss)
            except psutil.Error:
                return
            self.stopped.wait(0.05)


@contextmanager
def measure(pid: int | None = None) -> Iterator[Measured]:
    """Time the block; with ``pid``, also the peak RSS of that process and its children."""
    result = Measured()
    sampler = _PeakSampler(pid) if pid is not None else None
    if sampler:
        sampler.start()
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - started
        if sampler:
            sampler.stopped.set()
            sampler.join()
            result.peak_rss_bytes = sampler.peak
            result.peak_own_rss_bytes = sampler.own_peak


def run_measured(
    command: Sequence[str], env: Mapping[str, str], timeout: float | None = None
) -> Measured:
    """Run ``command``; its wall time and the peak RSS of its process tree. Fails loudly."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(env)
    )
    sampler = _PeakSampler(process.pid)
    sampler.start()
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        sampler.stopped.set()
        sampler.join()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed: {stderr.strip()[-800:]}")
    return Measured(seconds, sampler.peak, sampler.own_peak, stdout)
