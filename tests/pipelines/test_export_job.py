"""`export_records` executed in process on a real instance, as the Launchpad would launch it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
import yaml
from dagster._core.snap.snap_to_yaml import default_values_yaml_from_type_snap
from sqlalchemy.engine import Engine

from pipelines import request_store
from pipelines.cli import build_parser, export_params
from pipelines.dagster_events import step_failure_message
from pipelines.definitions import build_definitions
from pipelines.export_job import ExportConfig
from pipelines.sensors.export_requests import run_request_for, validate_request
from record_exports.params import FIELD_HELP, PARAM_FIELDS, ExportParams, parse_export_params
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


def output_entries(result: dg.ExecuteInProcessResult) -> dict[str, dg.MetadataValue]:
    for event in result.all_events:
        if event.is_successful_output and event.step_output_data is not None:
            return dict(event.step_output_data.metadata)
    raise AssertionError("no output")


def output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return {key: value.value for key, value in output_entries(result).items()}


def table_rows(value: dg.MetadataValue) -> list[dict[str, Any]]:
    assert isinstance(value, dg.TableMetadataValue)
    return [dict(record.data) for record in value.records]


def test_default_config_exports_csv_with_metadata(
    seeded: Engine, postgres_url: str, tmp_path: Path
) -> None:
    with dg.instance_for_test() as instance:
        result = execute(postgres_url, tmp_path, {}, instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None
    entries = output_entries(result)
    meta = output_metadata(result)
    path = Path(meta["path"])
    assert path.parent == tmp_path / "on-demand" and path.suffix == ".csv"
    assert meta["dagster/row_count"] == pl.read_csv(path, infer_schema=False).height > 700
    assert meta["bytes"] == path.stat().st_size
    assert len(meta["sha256"]) == 64
    assert (meta["format"], meta["money"]) == ("csv", "cents")
    assert meta["columns"] == ", ".join(pl.read_csv(path, n_rows=0).columns)
    assert meta["columns"].startswith("id, ebay_order_id,")
    assert table_rows(entries["filters"]) == [
        {"filter": "account_codes", "value": "all accounts"},
        {"filter": "statuses", "value": "all statuses"},
        {"filter": "sale_date_from", "value": "from the earliest record"},
        {"filter": "sale_date_to", "value": "up to the latest record"},
    ]
    manifest = path.with_name(path.name + ".manifest.json")
    assert table_rows(entries["files"]) == [
        {
            "file": str(path),
            "rows": meta["dagster/row_count"],
            "bytes": meta["bytes"],
            "sha256": meta["sha256"],
        },
        {"file": str(manifest), "rows": None, "bytes": manifest.stat().st_size, "sha256": None},
    ]
    assert isinstance(entries["path"], dg.PathMetadataValue)
    for count in ("dagster/row_count", "bytes", "truncated_cells"):
        assert isinstance(entries[count], dg.IntMetadataValue), count


def test_configured_export(seeded: Engine, postgres_url: str, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        result = execute(
            postgres_url,
            tmp_path,
            {
                "format": "xlsx",
                "account_codes": ["ACC2"],
                "statuses": ["SUCCESSFUL"],
                "sale_date_from": "",
                "money": "cents",
                "output_name": "acc2-successful",
            },
            instance,
        )
    assert result.success
    meta = output_metadata(result)
    path = Path(meta["path"])
    assert path == tmp_path / "on-demand" / "acc2-successful.xlsx"
    assert table_rows(output_entries(result)["filters"])[:2] == [
        {"filter": "account_codes", "value": "ACC2"},
        {"filter": "statuses", "value": "SUCCESSFUL"},
    ]
    # Excel cells hold dollars whatever `money` asks, under the headers the sheet shows.
    assert meta["money"] == "dollars"
    assert meta["columns"].startswith("ID, eBay Order ID, Sale Date,")
    assert meta["columns"].endswith("Return Label Cost, Profit")


def test_null_means_not_given(seeded: Engine, postgres_url: str, tmp_path: Path) -> None:
    """Dagster's schema lets a Launchpad user write `null` for any field with a default."""
    nullable = {
        name: None for name in PARAM_FIELDS if name not in ("format", "money", "compression")
    }
    with dg.instance_for_test() as instance:
        result = execute(postgres_url, tmp_path, nullable, instance)
    assert result.success
    assert output_metadata(result)["columns"].startswith("id, ebay_order_id,")


def test_launchpad_refuses_unknown_choices_before_a_run(postgres_url: str, tmp_path: Path) -> None:
    """Dagster's config check, which the Launchpad runs as you type, names each bad field
    once with its valid choices; no run is created."""
    config = {"format": "xml", "statuses": ["SHIPPED"], "columns": ["id", "foo"], "money": "eur"}
    with dg.instance_for_test() as instance:
        with pytest.raises(dg.DagsterInvalidConfigError) as caught:
            execute(postgres_url, tmp_path, config, instance)
        assert not instance.get_runs()
    messages = [error.message for error in caught.value.errors]
    assert len(messages) == 4
    expected = {
        "config:format": "Literal['csv', 'ndjson', 'json', 'xlsx', 'parquet'] got xml",
        "config:money": "Literal['cents', 'dollars'] got eur",
        "config:statuses[0]": "Literal['SUCCESSFUL', 'RETURN_LABEL_PROVIDED', 'RETURN_CLOSED', "
        "'REFUND_NO_RETURN'] got SHIPPED",
        "config:columns[1]": "'profit_cents', 'order_remark', 'service_remark'] got foo",
    }
    for where, text in expected.items():
        assert [m for m in messages if f"{where} not in enum type" in m and text in m], where
    assert not tmp_path.joinpath("on-demand").exists()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"columns": ["id", "id"]}, "columns"),
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
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None
    assert error.message.startswith(f"Invalid export config: {field}:")
    assert error.stack == [] and error.cause is None
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_options_naming_an_environment_variable_fail_without_its_value(
    seeded: Engine,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`{env: VAR}` is Dagster's way to read any text or bool field from the environment; for
    an export option it would carry a secret into the parser's error, which quotes values."""
    secret = "postgresql://app:s3cret@db.internal/records"
    monkeypatch.setenv("RX_SECRET_FOR_TEST", secret)
    from_env = {"env": "RX_SECRET_FOR_TEST"}
    config = {"sale_date_from": from_env, "account_codes": [from_env], "bom": from_env}
    with dg.instance_for_test() as instance:
        result = execute(postgres_url, tmp_path, config, instance)
        logged = [repr(record) for record in instance.all_logs(result.run_id)]
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None
    assert error.message.startswith("Invalid export config: sale_date_from: takes its value")
    assert "account_codes: takes its value" in error.message
    assert "bom: takes its value" in error.message
    assert [line for line in logged if "s3cret" in line] == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_every_bad_field_in_one_failure_without_a_stack_trace(
    seeded: Engine, postgres_url: str, tmp_path: Path
) -> None:
    """What the Launchpad cannot check (a real date, the account codes, options that do not
    fit the format) fails the run at its start: one failure naming each field once, read
    the same in the step's and the run's failure events, with no stack trace."""
    config = {"format": "xlsx", "sale_date_to": "2026-11-31", "account_codes": ["NOPE"]}
    with dg.instance_for_test() as instance:
        result = execute(postgres_url, tmp_path, {**config, "bom": True}, instance)
        run_failures = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert not result.success
    expected = (
        "Invalid export config: account_codes: unknown account code(s): NOPE; "
        "sale_date_to: '2026-11-31' is not a real date; bom: applies to csv only, not xlsx"
    )
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None
    assert (error.message.strip(), error.stack) == (expected, [])
    assert step_failure_message([failure]) == expected
    [run_failure] = run_failures
    assert run_failure.dagster_event is not None
    run_error = run_failure.dagster_event.job_failure_data.error
    assert run_error is not None
    assert (run_error.message.strip(), run_error.stack) == (expected, [])
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def launchpad_prefill(job: dg.JobDefinition) -> dict[str, Any]:
    """The config the Launchpad opens with (GraphQL's `rootDefaultYaml`, built by Dagster's
    `default_values_yaml_from_type_snap`)."""
    snapshot = job.get_job_snapshot()
    schema = snapshot.config_schema_snapshot
    root_key = snapshot.mode_def_snaps[0].root_config_key
    assert root_key is not None
    root = schema.get_config_snap(root_key)
    loaded: dict[str, Any] = yaml.safe_load(default_values_yaml_from_type_snap(schema, root))
    return loaded


def described_fields(job: dg.JobDefinition, *path: str) -> dict[str, str | None]:
    """The config fields at `path` in the job's run config schema, as the Launchpad's help
    panel lists them, with their descriptions."""
    snapshot = job.get_job_snapshot()
    schema = snapshot.config_schema_snapshot
    key = snapshot.mode_def_snaps[0].root_config_key
    assert key is not None
    for name in path:
        [field] = [f for f in schema.get_config_snap(key).fields or [] if f.name == name]
        key = field.type_key
    return {
        str(field.name): field.description for field in schema.get_config_snap(key).fields or []
    }


def test_launchpad_opens_with_every_option_and_only_operator_settings_besides() -> None:
    job = build_definitions(timezone="UTC").resolve_job_def("export_records")
    prefill = launchpad_prefill(job)
    options = prefill["ops"]["export"]["config"]
    assert set(options) == set(PARAM_FIELDS)
    assert {name: options[name] for name in ("sale_date_from", "sale_date_to", "output_name")} == {
        "sale_date_from": "",
        "sale_date_to": "",
        "output_name": "",
    }
    assert parse_export_params(options) == ExportParams()
    assert prefill["resources"]["progress_reporter"]["config"] == {"log_interval_seconds": 5.0}
    assert "terminal" not in yaml.safe_dump(prefill)
    for resource in ("export_storage", "progress_reporter", "records_database"):
        for name, description in described_fields(job, "resources", resource, "config").items():
            assert (description or "").startswith("For operators"), (resource, name)


def test_every_option_is_described_in_the_launchpad() -> None:
    job = build_definitions(timezone="UTC").resolve_job_def("export_records")
    assert described_fields(job, "ops", "export", "config") == FIELD_HELP


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
