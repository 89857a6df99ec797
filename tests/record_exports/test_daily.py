"""`export_days` on both databases: every daily file is what a single export of that account
and day writes, however the read is batched; the change log and the day locks."""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import openpyxl
import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from record_exports.atomic import partial_file
from record_exports.change_log import pending_changes
from record_exports.columns import OutputColumn
from record_exports.daily import DailyExportError, DailySelection, export_days, ordered_batches
from record_exports.daily_layout import daily_path, lock_folder
from record_exports.database import DatabaseTarget
from record_exports.day_locks import hold_days
from record_exports.engine import run_export
from record_exports.errors import ExportInputError
from record_exports.params import ExportFormat, parse_export_params
from record_exports.query import RecordFilters
from record_exports.schema import bookkeeping_records, record_changes
from record_exports.seed import seed_records
from tests.factories import add_account, insert_records, record

FORMATS = (ExportFormat.CSV, ExportFormat.XLSX)
FIRST, LAST = dt.date(2026, 9, 1), dt.date(2026, 11, 28)


def small_batches(rows: int) -> object:
    """The ordered read cut into batches of `rows`, so account-days straddle them."""

    def batches(
        target: DatabaseTarget, columns: Sequence[OutputColumn], filters: RecordFilters
    ) -> Iterator[pa.RecordBatch]:
        for batch in ordered_batches(target, columns, filters):
            for start in range(0, batch.num_rows, rows):
                yield batch.slice(start, rows)

    return batches


def account_days(engine: Engine, first: dt.date, last: dt.date) -> set[tuple[str, dt.date]]:
    query = sa.text(
        "SELECT DISTINCT a.account_code, r.sale_date FROM bookkeeping_records r "
        "JOIN accounts a ON a.id = r.account_id WHERE r.deleted_at IS NULL "
        "AND r.sale_date BETWEEN :first AND :last"
    )
    with engine.connect() as connection:
        rows = connection.execute(query, {"first": first, "last": last})
        return {
            (code, day if isinstance(day, dt.date) else dt.date.fromisoformat(day))
            for code, day in rows
        }


def single(
    target: DatabaseTarget, code: str, day: dt.date, fmt: str, path: Path, rows_per_sheet: int
) -> Path:
    """What one export of this account and day writes."""
    params = parse_export_params(
        {"format": fmt, "account_codes": [code], "sale_date_from": day, "sale_date_to": day}
    )
    run_export(target, params, path, rows_per_sheet=rows_per_sheet)
    return path


def sheet_values(path: Path) -> list[list[tuple[object, ...]]]:
    book = openpyxl.load_workbook(path, read_only=True)
    return [list(book[name].iter_rows(values_only=True)) for name in book.sheetnames]


@pytest.mark.parametrize(("batch_rows", "rows_per_sheet"), [(37, 1_048_575), (5, 4)])
def test_each_file_is_what_a_single_export_writes(
    target: DatabaseTarget, engine: Engine, tmp_path: Path, batch_rows: int, rows_per_sheet: int
) -> None:
    """Small batches make account-days straddle them; a small sheet makes the longer
    account-days stream through XlsxSink and roll over to more sheets."""
    seed_records(engine, 4_000, 4, seed=11)
    root = tmp_path / "daily"
    outcomes = list(
        export_days(
            target,
            DailySelection(FIRST, LAST, FORMATS),
            root,
            run_id="r",
            rows_per_sheet=rows_per_sheet,
            batches=small_batches(batch_rows),  # type: ignore[arg-type]
        )
    )
    expected = account_days(engine, FIRST, LAST)
    written = {(f.account_code, f.day) for o in outcomes for f in o.files}
    assert written == expected and len(expected) > 250
    assert [o.day for o in outcomes] == [
        FIRST + dt.timedelta(days=n) for n in range((LAST - FIRST).days + 1)
    ]
    for code, day in sorted(expected)[::17]:
        csv = single(target, code, day, "csv", tmp_path / "single.csv", rows_per_sheet)
        assert daily_path(root, code, day, "csv").read_bytes() == csv.read_bytes()
        xlsx = single(target, code, day, "xlsx", tmp_path / "single.xlsx", rows_per_sheet)
        assert sheet_values(daily_path(root, code, day, "xlsx")) == sheet_values(xlsx)
    if rows_per_sheet == 4:  # some account-days did roll over
        rolled = [f for o in outcomes for f in o.files if f.format == "xlsx" and f.row_count > 4]
        assert rolled
        assert len(openpyxl.load_workbook(rolled[0].path, read_only=True).sheetnames) > 1


def test_a_change_after_the_read_of_the_log_stays_pending(
    target: DatabaseTarget, engine: Engine, tmp_path: Path
) -> None:
    seed_records(engine, 500, 2, seed=3)
    with engine.connect() as connection:
        before = set(connection.execute(sa.select(record_changes.c.id)).scalars())
    r = bookkeeping_records.c
    day = dt.date(2026, 10, 1)

    def edit_then_read(
        target: DatabaseTarget, columns: Sequence[OutputColumn], filters: RecordFilters
    ) -> Iterator[pa.RecordBatch]:
        # Committed after the export read the pending ids, before it read the records.
        with engine.begin() as connection:
            connection.execute(
                sa.update(bookkeeping_records)
                .where(r.sale_date == day)
                .values(item_name="late edit")
            )
        yield from ordered_batches(target, columns, filters)

    list(
        export_days(
            target,
            DailySelection(day, day, (ExportFormat.CSV,)),
            tmp_path,
            batches=edit_then_read,
        )
    )
    left = {change.id: change.sale_date for change in pending_changes(engine, 10_000)}
    late = {i for i in left if i not in before}
    assert late and {left[i] for i in late} == {day}  # kept: the next export covers it
    assert not [i for i in before if i in left and left[i] == day]  # covered ones are gone


def test_an_export_waits_for_another_export_of_its_days(
    target: DatabaseTarget, engine: Engine, tmp_path: Path
) -> None:
    seed_records(engine, 300, 2, seed=3)
    day = dt.date(2026, 10, 1)
    waited: list[dt.date] = []
    done = threading.Event()

    def export() -> None:
        list(
            export_days(
                target,
                DailySelection(day - dt.timedelta(days=2), day, (ExportFormat.CSV,)),
                tmp_path,
                on_wait=waited.append,
            )
        )
        done.set()

    with hold_days(lock_folder(tmp_path), [day]):
        worker = threading.Thread(target=export)
        worker.start()
        deadline = time.monotonic() + 30
        while not waited and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waited == [day] and not done.is_set()
    worker.join(30)
    assert done.is_set()


def test_an_unknown_account_is_bad_input_and_touches_nothing(
    target: DatabaseTarget, engine: Engine, tmp_path: Path
) -> None:
    seed_records(engine, 100, 2, seed=3)
    with pytest.raises(ExportInputError, match="ACC9"):
        list(
            export_days(
                target,
                DailySelection(FIRST, LAST, FORMATS, account_codes=("ACC1", "ACC9")),
                tmp_path / "daily",
            )
        )
    assert not (tmp_path / "daily").exists()


def test_an_account_code_that_cannot_name_a_folder_fails_alone(
    target: DatabaseTarget, engine: Engine, tmp_path: Path
) -> None:
    """`..` passes the account-code pattern of exports, but as a folder it would put files
    outside the daily root: that account-day fails, the others are written."""
    day = dt.date(2026, 10, 1)
    good, dots = add_account(engine, "ACC1"), add_account(engine, "..")
    insert_records(engine, [record(good, 1, sale_date=day), record(dots, 2, sale_date=day)])
    root = tmp_path / "exports" / "daily"
    with pytest.raises(DailyExportError, match=r"\.\. 2026-10-01: ValueError") as raised:
        list(export_days(target, DailySelection(day, day, FORMATS), root))
    assert [f.account_code for f in raised.value.failures] == [".."]
    assert daily_path(root, "ACC1", day, "csv").exists()
    assert sorted(p.name for p in tmp_path.rglob("*.csv")) == ["ACC1_2026-10-01.csv"]


def test_partials_of_dead_exports_are_swept_and_live_ones_kept(
    target: DatabaseTarget,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Partials no process holds (what a killed export leaves: a file, an Excel scratch
    folder, the Excel template in the daily root) are removed from every folder the export
    writes into; a partial held by a live writer stays. ACC1's account-day is long enough to
    stream through the sinks (a sheet of 4 rows), ACC2's is built from the template. Nothing
    goes to the system temp folder."""
    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    day = dt.date(2026, 10, 1)
    first, second = add_account(engine, "ACC1"), add_account(engine, "ACC2")
    rows = [record(first, n, sale_date=day) for n in range(10)]
    insert_records(engine, [*rows, record(second, 10, sale_date=day)])
    root = tmp_path / "daily"
    dead = [
        root / ".template.xlsx.partial-00000000000a",
        root / "ACC1" / "2026" / "10" / ".ACC1_2026-10-01.csv.partial-00000000000b",
        root / "ACC2" / "2026" / "10" / ".ACC2_2026-10-01.xlsx.partial-00000000000c.d",
    ]
    for path in dead:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.endswith(".d"):
            path.mkdir()
            (path / "rows").write_bytes(b"<row/>")
        else:
            path.write_bytes(b"half")
    folders = [daily_path(root, code, day, "csv").parent for code in ("ACC1", "ACC2")]
    with partial_file(folders[0] / "ACC1_2026-10-01.csv") as live:
        live.write_bytes(b"a live export's rows")

        list(export_days(target, DailySelection(day, day, FORMATS), root, rows_per_sheet=4))

        assert live.read_bytes() == b"a live export's rows"
        assert not any(path.exists() for path in dead)
    assert sorted(p.name for p in root.iterdir()) == [".locks", "ACC1", "ACC2"]
    for code, folder in zip(("ACC1", "ACC2"), folders, strict=True):
        names = [f"{code}_2026-10-01.{fmt.extension}" for fmt in FORMATS]
        expected = sorted(names + [name + ".manifest.json" for name in names])
        assert sorted(p.name for p in folder.iterdir()) == expected
    assert list(system_temp.iterdir()) == []
