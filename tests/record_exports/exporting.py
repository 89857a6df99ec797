"""Running the engine in tests: many small batches, exports named by their raw settings, and
Excel text read back as written."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import Engine

from record_exports.database import DatabaseTarget
from record_exports.engine import default_batches, run_export
from record_exports.params import ExportParams, parse_export_params
from record_exports.seed import seed_records
from tests.factories import (
    HOSTILE,
    NULLABLE_MONEY,
    add_account,
    insert_order_remarks,
    insert_records,
    record,
    status_null_matrix,
)

EXCEL_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
# The newest records of `populate`: read first, with every nullable column NULL.
NEWEST_TIME = dt.datetime(2027, 1, 1, 0, 0, 0, 123_456, tzinfo=dt.UTC)
NULL_FIRST_ROWS = 12
# Batches of the SQLite reader in the tests that compare it with PostgreSQL: the first
# batch is all NULL in the nullable columns and the second starts among those rows.
SMALL_BATCH_ROWS = NULL_FIRST_ROWS - 5
BatchSource = Callable[[DatabaseTarget, ExportParams, Sequence[str]], Iterator[pa.RecordBatch]]


def populate(engine: Engine) -> None:
    """Every status × null combination, hostile text, ties, soft deletes, seeded volume, and
    newest records (read first) with every nullable column NULL and microsecond times."""
    first = add_account(engine, "ACC1")
    second = add_account(engine, "ACC2")
    rows = status_null_matrix(first)
    rows += [
        record(
            first,
            2_000 + number,
            amazon_order_id=None,
            created_at=NEWEST_TIME - dt.timedelta(days=1, microseconds=number),
            updated_at=NEWEST_TIME + dt.timedelta(microseconds=number * 7),
            **dict.fromkeys(NULLABLE_MONEY),
        )
        for number in range(NULL_FIRST_ROWS)
    ]
    base = len(rows)
    tie_time = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    for offset, text in enumerate(HOSTILE):
        rows.append(record(second, base + offset, item_name=text, amazon_order_id=text[:100]))
    rows += [
        record(first, 900, updated_at=tie_time),
        record(first, 901, updated_at=tie_time),
        record(second, 902, updated_at=tie_time, sale_price_cents=0, ebay_fees_cents=5),
        record(first, 903, deleted_at=tie_time, item_name="deleted, never exported"),
    ]
    insert_records(engine, rows)
    insert_order_remarks(engine, {rows[0]["id"]: '=HYPERLINK("x")', rows[1]["id"]: "plain"})
    seed_records(engine, 1_500, 3, seed=7)


def small_batches(rows: int) -> BatchSource:
    """A batch source that re-slices the real read, so every sink sees many batches."""

    def source(
        target: DatabaseTarget, params: ExportParams, account_ids: Sequence[str]
    ) -> Iterator[pa.RecordBatch]:
        for batch in default_batches(target, params, account_ids):
            for start in range(0, batch.num_rows, rows):
                yield batch.slice(start, rows)

    return source


def export(
    target: DatabaseTarget, tmp_path: Path, name: str, **raw: Any
) -> tuple[Path, dict[str, Any]]:
    """Export with settings as a run config or request row gives them, in batches of 97."""
    params = parse_export_params(raw)
    destination = tmp_path / params.file_name(name)
    result = run_export(target, params, destination, run_id="test-run", batches=small_batches(97))
    return destination, result.metadata()


def url_of(target: DatabaseTarget) -> str:
    return target.url.render_as_string(hide_password=False)


def decode_excel(text: Any) -> Any:
    """Text as written, from xlsxwriter's `_xHHHH_` escapes, which openpyxl returns as stored."""
    if not isinstance(text, str):
        return text
    return EXCEL_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), text)
