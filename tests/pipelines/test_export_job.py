"""`export_records` executed in process on a real instance, as the Launchpad would launch it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from sqlalchemy.engine import Engine

from pipelines import request_store
from pipelines.cli import build_parser, export_params
from pipelines.definitions import build_definitions
from pipelines.export_job import ExportConfig
from pipelines.sensors.export_requests import run_request_for, validate_request
from record_exports.params import PARAM_FIELDS, ExportParams, parse_export_params
from record_exports.seed import seed_records
from resources.export_storage import ExportStorage
from resources.progress_reporter import ProgressReporter
from resources.records_database import RecordsDatabase
from tests.dagster_support import Setup


def execute(
    postgres_url: str, root: Path, config: dict[str, Any], instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    job = build_definitions(
        {
            "records_database": RecordsDatabase(url=postgres_url),
            "export_storage": ExportStorage(root=str(root)),
        }
    ).resolve_job_def("export_records")
    return job.execute_in_process(
        run_config={"ops": {"export": {"config": config}}}, instance=instance, raise_on_error=False
    )


@pytest.fixture
def seeded(pg_engine: Engine) -> Engine:
    seed_records(pg_engine, 800, 2, seed=3)
    return pg_engine


def output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    for event in result.all_events:
        if event.is_successful_output and event.step_output_data is not None:
            return {key: value.value for key, value in event.step_output_data.metadata.items()}
    raise AssertionError("no output")


def test_default_config_exports_csv_with_metadata(
    seeded: Engine, postgres_url: str, tmp_path: Path
) -> None:
    with dg.instance_for_test() as instance:
        result = execute(postgres_url, tmp_path, {}, instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None
    meta = output_metadata(result)
    path = Path(str(result.output_for_node("export")))
    assert path.parent == tmp_path / "on-demand" and path.suffix == ".csv"
    assert meta["dagster/row_count"] == pl.read_csv(path, infer_schema=False).height > 700
    assert meta["path"] == str(path)
    assert meta["bytes"] == path.stat().st_size
    assert len(meta["sha256"]) == 64
    assert meta["format"] == "csv"
    assert meta["columns"][0] == "id" and meta["columns"][-1] == "profit_cents"
    assert meta["filters"] == {
        "account_codes": [],
        "statuses": [],
        "sale_date_from": None,
        "sale_date_to": None,
    }


def test_configured_export(seeded: Engine, postgres_url: str, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        result = execute(
            postgres_url,
            tmp_path,
            {
                "format": "xlsx",
                "account_codes": ["ACC2"],
                "statuses": ["SUCCESSFUL"],
                "money": "dollars",
                "output_name": "acc2-successful",
            },
            instance,
        )
    assert result.success
    path = Path(str(result.output_for_node("export")))
    assert path == tmp_path / "on-demand" / "acc2-successful.xlsx"
    meta = output_metadata(result)
    assert meta["filters"]["account_codes"] == ["ACC2"]
    assert meta["columns"][-1] == "profit"


def test_schema_invalid_config_names_the_field(postgres_url: str, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance, pytest.raises(dg.DagsterInvalidConfigError) as caught:
        execute(postgres_url, tmp_path, {"format": "xml"}, instance)
    assert "format" in str(caught.value)
    assert not tmp_path.joinpath("on-demand").exists()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"columns": ["id", "nope"]}, "columns"),
        ({"account_codes": ["NOPE"]}, "account_codes"),
        ({"sale_date_from": "2026-13-01"}, "sale_date_from"),
        ({"output_name": "../escape"}, "output_name"),
        ({"columns": ["service_remark"]}, "columns"),
    ],
)
def test_invalid_values_fail_the_run_naming_the_field(
    seeded: Engine, postgres_url: str, tmp_path: Path, config: dict[str, Any], field: str
) -> None:
    with dg.instance_for_test() as instance:
        result = execute(postgres_url, tmp_path, config, instance)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert failure.step_failure_data is not None
    user = failure.step_failure_data.user_failure_data
    assert user is not None and user.description is not None
    assert f"{field}:" in user.description
    assert user.metadata["field"].value == field
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_progress_lines_reach_the_run_log(
    seeded: Engine, postgres_url: str, tmp_path: Path
) -> None:
    job = build_definitions(
        {
            "records_database": RecordsDatabase(url=postgres_url),
            "export_storage": ExportStorage(root=str(tmp_path)),
            "progress_reporter": ProgressReporter(log_interval_seconds=0.0),
        }
    ).resolve_job_def("export_records")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            run_config={"ops": {"export": {"config": {"format": "ndjson"}}}}, instance=instance
        )
        messages = [record.user_message for record in instance.all_logs(result.run_id)]
    assert any("rows written" in message and "rows/s" in message for message in messages)


# Every field of ExportParams set away from its default by at least one case (checked below).
SOURCES: list[tuple[dict[str, Any], list[str]]] = [
    (
        {
            "format": "csv",
            "account_codes": ["ACC2", "ACC1"],
            "statuses": ["SUCCESSFUL", "RETURN_CLOSED"],
            "sale_date_from": "2026-01-01",
            "sale_date_to": "2026-01-31",
            "columns": ["id", "order_remark", "profit_cents"],
            "include_remarks": True,
            "money": "dollars",
            "bom": True,
            "excel_safe": True,
            "compression": "gzip",
            "output_name": "january",
        },
        [
            "--format=CSV",
            "--account=ACC2",
            "--account=ACC1",
            "--status=successful",
            "--status=RETURN_CLOSED",
            "--from=2026-01-01",
            "--to=2026-01-31",
            "--columns=id, order_remark,profit_cents",
            "--include-remarks",
            "--money=DOLLARS",
            "--bom",
            "--excel-safe",
            "--compression=GZIP",
            "--output-name=january",
        ],
    ),
    (
        {
            "format": "ndjson",
            "account_codes": [],
            "statuses": [],
            "columns": [],
            "include_remarks": True,
            "money": "cents",
            "bom": False,
            "excel_safe": False,
            "compression": "zstd",
        },
        ["--format=NDJson", "--include-remarks", "--compression=zstd"],
    ),
]


def params_through_every_source(
    setup: Setup, config: dict[str, Any], cli_args: list[str]
) -> list[ExportParams]:
    """The same export asked for on the command line, in the Launchpad, and as a request row
    (inserted, read back, turned into its run's config by the sensor's functions)."""
    from_cli = export_params(build_parser().parse_args(["request", *cli_args]))
    job = setup.defs.resolve_job_def("export_records")

    def launched(run_config: Mapping[str, Any]) -> ExportParams:
        processed = dg.validate_run_config(job, run_config)
        return ExportConfig(**processed["ops"]["export"]["config"]).export_params()

    from_launchpad = launched({"ops": {"export": {"config": config}}})
    request_id = request_store.insert_request(setup.engine, config, "tests")
    row = request_store.get_request(setup.engine, request_id)
    assert row is not None
    request = run_request_for(request_id, validate_request(setup.engine, row.params))
    from_request = launched(request.run_config)
    return [from_cli, from_launchpad, from_request]


@pytest.mark.parametrize(("config", "cli_args"), SOURCES)
def test_cli_launchpad_and_request_rows_give_the_same_params(
    dagster_setup: Setup, config: dict[str, Any], cli_args: list[str]
) -> None:
    from_cli, from_launchpad, from_request = params_through_every_source(
        dagster_setup, config, cli_args
    )
    assert from_cli == from_launchpad == from_request
    assert from_cli.to_config() == config
    assert parse_export_params(from_cli.to_config()) == from_cli


def test_the_sources_cover_every_field_and_agree_on_defaults() -> None:
    defaults = ExportParams()
    changed = {
        name
        for config, _ in SOURCES
        for name in PARAM_FIELDS
        if getattr(parse_export_params(config), name) != getattr(defaults, name)
    }
    assert changed == set(PARAM_FIELDS)
    assert list(ExportConfig.model_fields) == list(PARAM_FIELDS)
    assert ExportConfig().export_params() == defaults
    assert export_params(build_parser().parse_args(["request"])) == defaults
    assert parse_export_params(defaults.to_config()) == defaults
