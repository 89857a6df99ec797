"""Progress of a long export: run-log lines, plus a live bar when a person watches a terminal."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import dagster as dg

LOG_INTERVAL_SECONDS = 5.0
BAR_INTERVAL_SECONDS = 0.2


class ProgressReporter(dg.ConfigurableResource):
    """`terminal=True` (the CLI sets it when stderr is a TTY) draws rows and rows/s on stderr."""

    terminal: bool = False
    log_interval_seconds: float = LOG_INTERVAL_SECONDS

    def callback(
        self, log: logging.Logger | dg.DagsterLogManager, label: str
    ) -> Callable[[int], None]:
        started = time.monotonic()
        last_log = started
        last_bar = started - BAR_INTERVAL_SECONDS  # draw the bar on the first batch

        def report(rows: int) -> None:
            nonlocal last_log, last_bar
            now = time.monotonic()
            rate = rows / max(now - started, 1e-9)
            if now - last_log >= self.log_interval_seconds:
                last_log = now
                log.info(f"{label}: {rows:,} rows written ({rate:,.0f} rows/s)")
            if self.terminal and now - last_bar >= BAR_INTERVAL_SECONDS:
                last_bar = now
                sys.stderr.write(f"\r{label}: {rows:,} rows  {rate:,.0f} rows/s ")
                sys.stderr.flush()

        return report
