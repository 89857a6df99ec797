"""Progress of a long export: run-log lines, and a live feed for whoever watches this process."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import dagster as dg
from pydantic import Field

LOG_INTERVAL_SECONDS = 5.0
LIVE_INTERVAL_SECONDS = 0.2

LIVE_PROGRESS = logging.getLogger("record_exports.live_progress")
"""Rows and rows/s of the exports running in this process, a record at most every
`LIVE_INTERVAL_SECONDS`, with `label`, `rows` and `rate` attributes. Only emitted while a
handler is attached to this logger itself: the CLI attaches one to draw a bar on the terminal
(pipelines/terminal_progress.py). Runs the daemon launches have none, so there it costs
nothing, and the run's configuration does not depend on who watches."""


class ProgressReporter(dg.ConfigurableResource):
    """How a running export reports progress (rows written, rows/s) in the run log."""

    log_interval_seconds: float = Field(
        default=LOG_INTERVAL_SECONDS,
        description="For operators: seconds between progress lines in the run log.",
    )

    def callback(
        self, log: logging.Logger | dg.DagsterLogManager, label: str
    ) -> Callable[[int], None]:
        started = time.monotonic()
        last_log = started
        last_live = started - LIVE_INTERVAL_SECONDS  # the first batch is shown at once

        def report(rows: int) -> None:
            nonlocal last_log, last_live
            now = time.monotonic()
            rate = rows / max(now - started, 1e-9)
            if now - last_log >= self.log_interval_seconds:
                last_log = now
                log.info(f"{label}: {rows:,} rows written ({rate:,.0f} rows/s)")
            if LIVE_PROGRESS.handlers and now - last_live >= LIVE_INTERVAL_SECONDS:
                last_live = now
                LIVE_PROGRESS.info(
                    "%s: %d rows", label, rows, extra={"label": label, "rows": rows, "rate": rate}
                )

        return report
