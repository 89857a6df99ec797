"""The integrity checks in real Dagster runs (pipelines/integrity.py): the daily asset's check
`files_match_database` and the check of each request run, against a real PostgreSQL. The
failures are real: a file changed on disk while the run still runs (held back by a real day
lock), and records changed behind the change log while a request's export reads."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import dagster as dg
import polars as pl
import sqlalchemy as sa

from pipelines import request_store
from pipelines.integrity import DAILY_CHECK_NAME
from pipelines.sensors.export_requests import run_request_for, validate_request
from record_exports.daily_layout import lock_folder
from record_exports.day_locks import hold_days
from record_exports.manifest import manifest_path
from resources.progress_reporter import ProgressReporter
from tests.dagster_support import DAILY_ASSET, Setup, live_account_days

TIMEOUT_SECONDS = 120


def daily_evaluation(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.asset_check_key == dg.AssetCheckKey(DAILY_ASSET, DAILY_CHECK_NAME)
    return evaluation


def test_a_daily_run_checks_every_file_it_wrote(dagster_setup: Setup) -> None:
    first, last = dt.date(2026, 10, 1), dt.date(2026, 10, 20)
    result = dagster_setup.materialize(first, last, formats=["csv", "xlsx", "ndjson"])
    evaluation = daily_evaluation(result)
    files = [p for p in dagster_setup.daily_files() if not p.name.endswith(".json")]
    assert evaluation.passed, evaluation.description
    assert len(files) >= 30
    assert evaluation.metadata["files_checked"].value == len(files)
    assert evaluation.metadata["files_failed"].value == 0
    assert evaluation.description == f"all {len(files)} files agree with the database"


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_file_changed_before_the_check_fails_the_daily_run_showing_both_numbers(
    dagster_setup: Setup,
) -> None:
    """The run writes October's first 31 days, then waits for the lock of November 1st, which
    the test holds; meanwhile the test drops a row from one written file. The check at the
    end of the run finds it."""
    first, last, held = dt.date(2026, 10, 1), dt.date(2026, 11, 5), dt.date(2026, 11, 1)
    chunk = {key for key in live_account_days(dagster_setup.engine) if first <= key[1] < held}
    expected = [
        manifest_path(dagster_setup.daily_file(code, day, ext))
        for code, day in chunk
        for ext in ("csv", "xlsx")
    ]
    results: list[dg.ExecuteInProcessResult] = []
    with hold_days(lock_folder(dagster_setup.exports / "daily"), [held]):
        run = threading.Thread(
            target=lambda: results.append(
                dagster_setup.materialize(first, last, raise_on_error=False)
            )
        )
        run.start()
        wait_for(lambda: all(path.exists() for path in expected), "October's files")
        code, day = sorted(chunk, key=lambda key: (key[1], key[0]))[0]
        victim = dagster_setup.daily_file(code, day, "csv")
        frame = pl.read_csv(victim, infer_schema=False)
        frame.head(-1).write_csv(victim)
    run.join(TIMEOUT_SECONDS)
    assert not run.is_alive()
    (result,) = results
    assert not result.success
    evaluation = daily_evaluation(result)
    assert not evaluation.passed
    rows = frame.height
    assert f"{victim.name}: rows: database {rows}, file {rows - 1}" in (
        evaluation.description or ""
    )
    table = str(evaluation.metadata["differences"].value)
    assert f"| {victim} | rows | {rows} |  | {rows - 1} |" in table
    assert evaluation.metadata["files_failed"].value == 1
    # The files stay: they are complete, and the check says which one is in question.
    assert victim.exists() and manifest_path(victim).exists()


class ChangesBehindTheLog(ProgressReporter):
    """After the first batch is written (the export's read has its snapshot), changes a
    record with triggers off: the change log never hears of it, as after a restore or a
    bulk fix run with `session_replication_role = replica`."""

    url: str

    def callback(self, log, label):  # type: ignore[no-untyped-def]
        inner = super().callback(log, label)
        done = False

        def report(rows: int) -> None:
            nonlocal done
            inner(rows)
            if not done:
                done = True
                engine = sa.create_engine(self.url)
                with engine.begin() as connection:
                    connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
                    connection.execute(
                        sa.text(
                            "UPDATE bookkeeping_records SET sale_price_cents = "
                            "sale_price_cents + 7 WHERE id = (SELECT id FROM bookkeeping_records "
                            "WHERE deleted_at IS NULL ORDER BY id LIMIT 1)"
                        )
                    )
                engine.dispose()

        return report


def run_request(
    setup: Setup, params: dict[str, object], **resources: object
) -> tuple[int, dg.ExecuteInProcessResult]:
    engine = setup.engine
    request_id = request_store.insert_request(engine, params, "tests")
    assert request_store.queue_request(engine, request_id)
    run_request_ = run_request_for(request_id, validate_request(engine, params))
    job = setup.defs.resolve_job_def("export_records")
    result = job.execute_in_process(
        run_config=run_request_.run_config,
        tags=run_request_.tags,
        instance=setup.instance,
        resources={**setup.resources, **resources},
        raise_on_error=False,
    )
    return request_id, result


def output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    for event in result.all_events:
        if event.is_successful_output and event.step_output_data is not None:
            return {k: v.value for k, v in event.step_output_data.metadata.items()}
    raise AssertionError("no output")


def test_a_request_run_checks_its_file(dagster_setup: Setup) -> None:
    request_id, result = run_request(
        dagster_setup, {"format": "xlsx", "account_codes": ["ACC2"], "money": "dollars"}
    )
    assert result.success
    row = request_store.get_request(dagster_setup.engine, request_id)
    assert row is not None and row.status == "succeeded"
    meta = output_metadata(result)
    assert meta["integrity"] == "passed"
    assert row.row_count is not None and row.row_count > 0
    assert meta["integrity_rows_in_database"] == row.row_count


def test_records_changed_behind_the_log_fail_the_request_showing_both_sums(
    dagster_setup: Setup, postgres_url: str
) -> None:
    request_id, result = run_request(
        dagster_setup,
        {"format": "csv", "money": "dollars"},
        progress_reporter=ChangesBehindTheLog(url=postgres_url),
    )
    assert not result.success
    row = request_store.get_request(dagster_setup.engine, request_id)
    assert row is not None and row.status == "failed" and row.error is not None
    assert "integrity check failed: 1 of 1 files differ from the database" in row.error
    with dagster_setup.engine.connect() as connection:
        total = connection.execute(
            sa.text(
                "SELECT sum(sale_price_cents) FROM bookkeeping_records WHERE deleted_at IS NULL"
            )
        ).scalar_one()
    assert f"sale_price_cents: database {total}, file {total - 7}" in row.error
    # The file and its manifest stay where the run put them, beside the failed row.
    folder = dagster_setup.exports / "requests" / str(request_id)
    assert len(list(folder.iterdir())) == 2
