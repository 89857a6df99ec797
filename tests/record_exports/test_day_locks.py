"""One export per sale day at a time: a second holder waits until the first lets go."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

from record_exports.day_locks import hold_days, lock_path


def test_a_second_export_of_a_day_waits_for_the_first(tmp_path: Path) -> None:
    day, other = dt.date(2026, 3, 5), dt.date(2026, 3, 6)
    order: list[str] = []
    waited: list[dt.date] = []
    first_holds = threading.Event()
    release = threading.Event()

    def first() -> None:
        with hold_days(tmp_path, [day]):
            order.append("first in")
            first_holds.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        with hold_days(tmp_path, [other, day], on_wait=waited.append):
            order.append("second in")

    one = threading.Thread(target=first)
    one.start()
    assert first_holds.wait(10)
    two = threading.Thread(target=second)
    two.start()
    time.sleep(0.5)
    assert order == ["first in"] and waited == [day]  # the other day was free
    release.set()
    one.join(10)
    two.join(10)
    assert order == ["first in", "first out", "second in"]
    assert lock_path(tmp_path, day).exists()


def test_a_lock_is_free_again_after_its_holder_is_done(tmp_path: Path) -> None:
    day = dt.date(2026, 3, 5)
    with hold_days(tmp_path, [day]):
        pass
    waited: list[dt.date] = []
    with hold_days(tmp_path, [day, day], on_wait=waited.append):
        assert waited == []
