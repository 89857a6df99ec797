"""The CLI's progress bar draws the live progress of exports in this process, then ends its
line; nothing is drawn when it is off."""

from __future__ import annotations

import io
import logging

from pipelines.terminal_progress import progress_bar
from resources.progress_reporter import LIVE_PROGRESS, ProgressReporter


def report_rows(*counts: int) -> None:
    report = ProgressReporter(log_interval_seconds=3600.0).callback(
        logging.getLogger("export"), "x.csv"
    )
    for rows in counts:
        report(rows)


def test_bar_while_on_and_a_clean_line_after() -> None:
    terminal = io.StringIO()
    with progress_bar(terminal, enabled=True):
        report_rows(1_234_567)
    drawn = terminal.getvalue()
    assert drawn.startswith("\rx.csv: 1,234,567 rows  ") and drawn.endswith(" rows/s \n")
    assert not LIVE_PROGRESS.handlers and LIVE_PROGRESS.propagate


def test_nothing_drawn_when_off_or_after() -> None:
    terminal = io.StringIO()
    with progress_bar(terminal, enabled=False):
        report_rows(10)
    with progress_bar(terminal, enabled=True):
        pass
    report_rows(20)
    assert terminal.getvalue() == ""
