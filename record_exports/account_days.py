"""Cutting an ordered stream of record frames into account-days.

The daily read returns rows ordered by sale day and account, so each account-day is one
contiguous run of rows, which may straddle the frames the reader hands out. This module
turns the frames into what the file writers need, in order:

- `AccountDays`: a frame of whole account-days, each at most `max_rows` long, with their
  keys and lengths: the many small files, built together;
- `LargePiece` ... `LargeEnd`: an account-day longer than `max_rows`, in pieces as they
  arrive, for a writer that streams (an Excel file of more rows than a sheet holds).

Memory stays bounded by a frame plus the rows of one unfinished account-day (at most
`max_rows`; a longer one is streamed instead of held).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import polars as pl

DAY = "sale_date"
ACCOUNT = "account_code"

Key = tuple[dt.date, str]
"""(sale day, account code) of an account-day."""


@dataclass(frozen=True)
class AccountDays:
    frame: pl.DataFrame
    keys: list[Key]
    lengths: list[int]


@dataclass(frozen=True)
class LargePiece:
    key: Key
    frame: pl.DataFrame


@dataclass(frozen=True)
class LargeEnd:
    key: Key


Part = AccountDays | LargePiece | LargeEnd


def runs(frame: pl.DataFrame) -> tuple[list[Key], list[int]]:
    """Keys and lengths of the frame's runs of equal (day, account), in order."""
    table = frame.select(pl.struct(DAY, ACCOUNT).rle().alias("run")).unnest("run")
    values = table.get_column("value").struct.unnest()
    days, codes = values.get_column(DAY).to_list(), values.get_column(ACCOUNT).to_list()
    keys = list(zip(days, codes, strict=True))
    return keys, [int(n) for n in table.get_column("len").to_list()]


def _whole(
    frame: pl.DataFrame, keys: list[Key], lengths: list[int], max_rows: int
) -> Iterator[Part]:
    """Complete account-days of `frame`, small ones together, large ones as one piece each."""
    start = block_start = 0
    block_keys: list[Key] = []
    block_lengths: list[int] = []
    for key, length in zip(keys, lengths, strict=True):
        if length > max_rows:
            if block_keys:
                yield AccountDays(
                    frame.slice(block_start, start - block_start), block_keys, block_lengths
                )
            yield LargePiece(key, frame.slice(start, length))
            yield LargeEnd(key)
            block_keys, block_lengths, block_start = [], [], start + length
        else:
            block_keys.append(key)
            block_lengths.append(length)
        start += length
    if block_keys:
        yield AccountDays(frame.slice(block_start, start - block_start), block_keys, block_lengths)


def account_days(frames: Iterable[pl.DataFrame], max_rows: int) -> Iterator[Part]:
    """Split ordered frames (with `sale_date` and `account_code` columns) into parts."""
    held: pl.DataFrame | None = None  # the last, maybe unfinished account-day
    streaming: Key | None = None  # a large account-day whose pieces are being passed on
    for frame in frames:
        if frame.height == 0:
            continue
        keys, lengths = runs(frame)
        if streaming is not None:
            if keys[0] == streaming:
                yield LargePiece(streaming, frame.slice(0, lengths[0]))
                if len(keys) == 1:
                    continue
                frame, keys, lengths = frame.slice(lengths[0]), keys[1:], lengths[1:]
            yield LargeEnd(streaming)
            streaming = None
        if held is not None:
            frame = pl.concat([held, frame])
            held = None
            keys, lengths = runs(frame)
        *done_keys, last_key = keys
        *done_lengths, last_length = lengths
        if done_keys:
            yield from _whole(frame, done_keys, done_lengths, max_rows)
        tail = frame.slice(frame.height - last_length)
        if last_length > max_rows:
            streaming = last_key
            yield LargePiece(last_key, tail)
        else:
            held = tail
    if streaming is not None:
        yield LargeEnd(streaming)
    if held is not None:
        keys, lengths = runs(held)
        yield from _whole(held, keys, lengths, max_rows)
