"""Peak RSS of the current process: `VmHWM` (reset at exec, unlike `ru_maxrss`, which on
Linux keeps the RSS the parent had when the child was forked)."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
