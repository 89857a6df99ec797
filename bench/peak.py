"""Peak RSS: of the current process (`peak_rss_mb`), or of another one polled from outside
(`PeakPoller`)."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil


class PeakPoller(threading.Thread):
    """Polls a process's RSS until `stop()`; the peak in MB. With `tree`, the largest RSS any
    one process of its tree reached (a Dagster run's step process, say), not their sum."""

    def __init__(self, pid: int, *, tree: bool = False, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.tree = tree
        self.interval = interval
        self.peak = 0
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
            while not self.done.is_set():
                for process in [root, *(root.children(recursive=True) if self.tree else [])]:
                    try:
                        self.peak = max(self.peak, process.memory_info().rss)
                    except psutil.Error:
                        continue
                self.done.wait(self.interval)
        except psutil.Error:
            return

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak / 2**20


def peak_rss_mb() -> float:
    """`VmHWM` (reset at exec, unlike `ru_maxrss`, which on Linux keeps the RSS the parent had
    when the child was forked)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
