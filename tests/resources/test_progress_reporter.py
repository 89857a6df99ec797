"""Progress: rows and rows/s in the run log every few seconds, and a live feed for whoever
watches the process (the CLI's bar)."""

from __future__ import annotations

import logging

import pytest

from resources.progress_reporter import LIVE_PROGRESS, ProgressReporter


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_log_lines_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    report = ProgressReporter(log_interval_seconds=0.0).callback(
        logging.getLogger("export"), "x.csv"
    )
    with caplog.at_level(logging.INFO, logger="export"):
        report(1_000)
    assert "x.csv: 1,000 rows written" in caplog.text and "rows/s" in caplog.text


def test_quiet_between_intervals_and_without_a_watcher(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    report = ProgressReporter(log_interval_seconds=3600.0).callback(
        logging.getLogger("export"), "x.csv"
    )
    with caplog.at_level(logging.DEBUG):
        for rows in range(0, 100_000, 10_000):
            report(rows)
    assert capsys.readouterr().err == ""
    assert caplog.text == ""


def test_live_progress_reaches_a_watcher() -> None:
    watcher = Collect()
    LIVE_PROGRESS.addHandler(watcher)
    LIVE_PROGRESS.setLevel(logging.INFO)
    try:
        report = ProgressReporter(log_interval_seconds=3600.0).callback(
            logging.getLogger("export"), "x.csv"
        )
        report(1_000)
        report(2_000)  # within LIVE_INTERVAL_SECONDS of the first: not repeated
    finally:
        LIVE_PROGRESS.removeHandler(watcher)
        LIVE_PROGRESS.setLevel(logging.NOTSET)
    [record] = watcher.records
    assert (record.__dict__["label"], record.__dict__["rows"]) == ("x.csv", 1_000)
    assert record.__dict__["rate"] > 0
