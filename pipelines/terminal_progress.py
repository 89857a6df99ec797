"""The CLI's live progress bar: rows and rows/s of the running export, redrawn on stderr."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from resources.progress_reporter import LIVE_PROGRESS


class ProgressBar(logging.Handler):
    """Draws each live progress record (`resources.progress_reporter.LIVE_PROGRESS`) over the
    previous one."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.INFO)
        self.stream = stream
        self.drawn = False

    def emit(self, record: logging.LogRecord) -> None:
        label, rows, rate = (getattr(record, name) for name in ("label", "rows", "rate"))
        self.stream.write(f"\r{label}: {rows:,} rows  {rate:,.0f} rows/s ")
        self.stream.flush()
        self.drawn = True


@contextmanager
def only_handler(logger: logging.Logger, handler: logging.Handler) -> Iterator[None]:
    """`logger`'s INFO records go to `handler` alone (not up to the root logger's) while the
    block runs; the logger is as it was afterwards."""
    propagate, level = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        logger.setLevel(level)


@contextmanager
def progress_bar(stream: TextIO, enabled: bool) -> Iterator[None]:
    """Show the progress of exports run in this process on `stream` (a terminal) while the
    block runs, then end the bar's line. Does nothing when not `enabled`."""
    if not enabled:
        yield
        return
    bar = ProgressBar(stream)
    try:
        with only_handler(LIVE_PROGRESS, bar):
            yield
    finally:
        if bar.drawn:
            stream.write("\n")
            stream.flush()
