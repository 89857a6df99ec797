"""Progress: rows and rows/s in the run log every few seconds, and a bar on a terminal."""

from __future__ import annotations

import logging

import pytest

from resources.progress_reporter import ProgressReporter


def test_terminal_bar_and_log_lines(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    report = ProgressReporter(terminal=True, log_interval_seconds=0.0).callback(
        logging.getLogger("export"), "x.csv"
    )
    with caplog.at_level(logging.INFO, logger="export"):
        report(1_000)
    bar = capsys.readouterr().err
    assert bar.startswith("\rx.csv: 1,000 rows") and "rows/s" in bar
    assert "x.csv: 1,000 rows written" in caplog.text


def test_quiet_outside_a_terminal_and_between_intervals(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    report = ProgressReporter(log_interval_seconds=3600.0).callback(
        logging.getLogger("export"), "x.csv"
    )
    with caplog.at_level(logging.INFO, logger="export"):
        for rows in range(0, 100_000, 10_000):
            report(rows)
    assert capsys.readouterr().err == ""
    assert caplog.text == ""
