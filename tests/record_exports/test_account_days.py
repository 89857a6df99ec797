"""Cutting ordered frames into account-days: nothing lost, nothing reordered, bounded parts."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from record_exports.account_days import AccountDays, LargeEnd, LargePiece, Part, account_days


def ordered_frame(sizes: list[int]) -> pl.DataFrame:
    """Account-days of the given sizes, in order, each row numbered."""
    days, codes = [], []
    for index, size in enumerate(sizes):
        day = dt.date(2026, 1, 1) + dt.timedelta(days=index // 3)
        days += [day] * size
        codes += [f"ACC{index % 3}"] * size
    return pl.DataFrame({"sale_date": days, "account_code": codes}).with_row_index("n")


def cut(frame: pl.DataFrame, batch_sizes: list[int]) -> list[pl.DataFrame]:
    frames, start = [], 0
    for size in batch_sizes:
        frames.append(frame.slice(start, size))
        start += size
    frames.append(frame.slice(start))
    return frames


def reassemble(parts: list[Part]) -> list[tuple[tuple[dt.date, str], list[int]]]:
    """(key, row numbers) per account-day, from the parts, checking each part's shape."""
    groups: list[tuple[tuple[dt.date, str], list[int]]] = []
    open_key = None
    for part in parts:
        if isinstance(part, AccountDays):
            assert open_key is None
            start = 0
            for key, length in zip(part.keys, part.lengths, strict=True):
                rows = part.frame.slice(start, length)
                assert set(rows.select("sale_date", "account_code").iter_rows()) == {key}
                groups.append((key, rows["n"].to_list()))
                start += length
            assert start == part.frame.height
        elif isinstance(part, LargePiece):
            if open_key != part.key:
                assert open_key is None
                open_key = part.key
                groups.append((part.key, []))
            groups[-1][1].extend(part.frame["n"].to_list())
        elif isinstance(part, LargeEnd):
            assert open_key == part.key
            open_key = None
    assert open_key is None
    return groups


@pytest.mark.parametrize("seed", range(40))
def test_every_row_once_in_order_small_ones_whole(seed: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.choice([1, 2, 3, 7, 20, 45]) for _ in range(rng.randint(1, 30))]
    frame = ordered_frame(sizes)
    batches = [rng.randint(0, 25) for _ in range(rng.randint(0, 12))]
    max_rows = rng.choice([1, 5, 10, 50])

    parts = list(account_days(cut(frame, batches), max_rows))

    groups = reassemble(parts)
    assert [len(rows) for _, rows in groups] == sizes
    assert [n for _, rows in groups for n in rows] == list(range(frame.height))
    for part in parts:
        if isinstance(part, AccountDays):
            assert max(part.lengths) <= max_rows
    large = {part.key for part in parts if isinstance(part, LargePiece)}
    assert all(
        size > max_rows for (key, rows), size in zip(groups, sizes, strict=True) if key in large
    )


def test_a_long_account_day_streams_in_pieces_as_batches_arrive() -> None:
    frame = ordered_frame([2, 100, 3])
    parts = list(account_days(cut(frame, [10, 10, 10, 10]), max_rows=20))
    pieces = [part.frame.height for part in parts if isinstance(part, LargePiece)]
    # Held until it passes 20 rows (8 + 10 + 10), then passed on as each batch arrives.
    assert pieces == [28, 10, 62]
    assert [len(rows) for _, rows in reassemble(parts)] == [2, 100, 3]


def test_no_rows_no_parts() -> None:
    assert list(account_days([ordered_frame([]).clear()], max_rows=5)) == []
