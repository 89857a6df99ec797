"""Properties of request rows' params (`export_requests.params`, JSON another program writes),
read by `request_store` and validated by `export_requests_sensor`, against a real PostgreSQL:
each row is rejected with a reason naming the field, or becomes a run config Dagster accepts
that gives the same export; a sample of accepted rows is exported for real, writing nothing
outside the request's own folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from pipelines import request_store
from pipelines.export_job import ExportConfig
from pipelines.sensors.export_requests import run_request_for, validate_request
from record_exports.errors import ExportInputError
from record_exports.schema import export_requests
from record_exports.seed import seed_records
from tests.dagster_support import Setup
from tests.hostile_values import (
    check_file_name_stays_inside,
    check_rejection,
    check_values_never_in_sql,
    deep,
    json_values,
    raw_params,
)

FIXTURES_REUSED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture
def accounts_engine(pg_engine: Engine) -> Engine:
    """ACC1 and ACC2 exist (a few records), so some account codes are known."""
    seed_records(pg_engine, 20, 2, seed=1)
    return pg_engine


def file_request(engine: Engine, params: Any) -> int | None:
    """Insert the row as the web app would; None when PostgreSQL itself refuses the JSON (jsonb
    holds no NUL character), which never reaches the sensor."""
    try:
        return request_store.insert_request(engine, params, "hypothesis")
    except sa.exc.DataError:
        return None


def served(engine: Engine, request_id: int) -> request_store.ExportRequest:
    """The row as the sensor reads it (the same decoding as `pending_requests`)."""
    row = request_store.get_request(engine, request_id)
    assert row is not None and row.status == "pending"
    return row


def check_row(engine: Engine, job: dg.JobDefinition, raw: Any) -> None:
    request_id = file_request(engine, raw)
    assume(request_id is not None)
    assert request_id is not None
    row = served(engine, request_id)
    try:
        params = validate_request(engine, row.params)
    except ExportInputError as error:
        check_rejection(error, raw if isinstance(raw, dict) else {})
        assert request_store.reject_request(engine, request_id, str(error))
        return
    check_file_name_stays_inside(Path("/exports/requests") / str(request_id), params)
    check_values_never_in_sql(params)
    run_config = run_request_for(request_id, params).run_config
    resolved = dg.validate_run_config(job, run_config)
    assert ExportConfig(**resolved["ops"]["export"]["config"]).export_params() == params
    assert request_store.queue_request(engine, request_id)


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES_REUSED)
@given(st.one_of(raw_params, json_values))
def test_rows_are_rejected_naming_fields_or_become_valid_runs(
    dagster_setup: Setup, raw: Any
) -> None:
    job = dagster_setup.defs.resolve_job_def("export_records")
    check_row(dagster_setup.engine, job, raw)


def test_a_row_nested_too_deep_for_python_is_rejected_and_the_rest_are_served(
    accounts_engine: Engine,
) -> None:
    """Found by these tests: valid jsonb nested 3000 deep made the driver's JSON decoder raise
    RecursionError while fetching the pending rows, so every tick of the sensor failed and no
    request was served again."""
    text = json.dumps({"format": "__DEEP__"}).replace('"__DEEP__"', "[" * 3000 + "]" * 3000)
    with accounts_engine.begin() as connection:
        bad = connection.execute(
            sa.insert(export_requests)
            .values(params=sa.cast(sa.bindparam("text", text), export_requests.c.params.type))
            .returning(export_requests.c.id)
        ).scalar_one()
    good = request_store.insert_request(accounts_engine, {"format": "csv"}, "tests")
    rows = request_store.pending_requests(accounts_engine, 50)
    assert [row.id for row in rows] == [bad, good]
    with pytest.raises(ExportInputError) as rejected:
        validate_request(accounts_engine, rows[0].params)
    assert str(rejected.value) == ("params: nested too deeply to read (more than about 900 levels)")
    assert validate_request(accounts_engine, rows[1].params).format.value == "csv"
    assert deep(2) == [[[]]]


ACCEPTED_ROWS = st.fixed_dictionaries(
    {"format": st.sampled_from(["CSV", "xlsx", "Parquet", "ndjson", "json"])},
    optional={
        "account_codes": st.lists(st.sampled_from(["ACC1", "ACC2", "ACC3"]), max_size=2),
        "statuses": st.lists(st.sampled_from(["successful", "RETURN_CLOSED"]), max_size=2),
        "sale_date_from": st.sampled_from(["2026-03-01", "2026-06-15", ""]),
        "money": st.sampled_from(["cents", "DOLLARS"]),
        "output_name": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,30}", fullmatch=True),
        "columns": st.sampled_from([[], ["id", "profit_cents"], ["item_name"]]),
    },
)


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()


@settings(max_examples=5, deadline=None, suppress_health_check=FIXTURES_REUSED)
@given(ACCEPTED_ROWS)
def test_a_sample_of_accepted_rows_exports_into_its_own_folder_only(
    dagster_setup: Setup, raw: dict[str, Any]
) -> None:
    """Each row as the daemon would run it: the sensor's run request, executed for real."""
    engine = dagster_setup.engine
    request_id = request_store.insert_request(engine, raw, "hypothesis")
    params = validate_request(engine, served(engine, request_id).params)
    assert request_store.queue_request(engine, request_id)
    request = run_request_for(request_id, params)
    before = files_under(dagster_setup.exports)
    result = dagster_setup.defs.resolve_job_def("export_records").execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        instance=dagster_setup.instance,
        raise_on_error=False,
    )
    assert result.success
    row = request_store.get_request(engine, request_id)
    assert row is not None and row.status == "succeeded" and row.output_path is not None
    path = Path(row.output_path)
    folder = dagster_setup.exports / "requests" / str(request_id)
    assert path.parent == folder
    assert files_under(dagster_setup.exports) - before == {
        path,
        path.with_name(path.name + ".manifest.json"),
    }
