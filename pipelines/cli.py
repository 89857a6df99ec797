"""`record-exports`: set up the records database, seed it, export, and file export requests.

Exit codes: 0 done; 2 bad input (nothing written); 1 the export failed (no partial file).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy.engine import Engine

from pipelines.local_instance import ensure_local_instance
from pipelines.output_target import OutputPathError, OutputTarget, resolve_output
from record_exports.database import (
    DatabaseBusyError,
    DatabaseSettingError,
    connect_checked,
    parse_database_url,
)
from record_exports.errors import ExportInputError
from record_exports.params import FIELD_HELP, ExportParams, choices, parse_export_params
from record_exports.schema import create_schema
from record_exports.settings import DAGSTER_HOME, RECORDS_DATABASE_URL, fill_defaults

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """Bad input on the command line; the message says what and how to fix."""


def apply_default_settings() -> None:
    """Fill in the documented defaults for settings the user left unset, for this process
    and the Dagster run it starts, and make sure the local instance exists."""
    fill_defaults()
    ensure_local_instance(Path(DAGSTER_HOME.value()))


def _positive(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return number


def _choice_option(
    parser: argparse.ArgumentParser, flag: str, field: str, default: StrEnum
) -> None:
    """An option taking one of the values of `default`'s enum, in any case. Values are
    checked by `parse_export_params`, so a wrong one gets the same one-line message (naming
    the field and listing the choices) as in run config or a request row."""
    values = choices(type(default))
    parser.add_argument(
        flag,
        default=default.value,
        metavar="{" + ",".join(values) + "}",
        help=f"{FIELD_HELP[field]} Default {default.value}; any case.",
    )


def _add_export_options(parser: argparse.ArgumentParser) -> None:
    """The export options, described by `FIELD_HELP` as in the Launchpad."""
    defaults = ExportParams()
    _choice_option(parser, "--format", "format", defaults.format)
    parser.add_argument(
        "--account",
        dest="account_codes",
        action="append",
        default=[],
        metavar="CODE",
        help=f"{FIELD_HELP['account_codes']} Repeatable.",
    )
    parser.add_argument(
        "--status",
        dest="statuses",
        action="append",
        default=[],
        metavar="S",
        help=f"{FIELD_HELP['statuses']} Repeatable; any case.",
    )
    parser.add_argument(
        "--from", dest="sale_date_from", metavar="YYYY-MM-DD", help=FIELD_HELP["sale_date_from"]
    )
    parser.add_argument(
        "--to", dest="sale_date_to", metavar="YYYY-MM-DD", help=FIELD_HELP["sale_date_to"]
    )
    parser.add_argument(
        "--columns", default="", metavar="a,b,c", help=f"Comma-separated. {FIELD_HELP['columns']}"
    )
    parser.add_argument(
        "--include-remarks", action="store_true", help=FIELD_HELP["include_remarks"]
    )
    _choice_option(parser, "--money", "money", defaults.money)
    parser.add_argument("--bom", action="store_true", help=FIELD_HELP["bom"])
    _choice_option(parser, "--compression", "compression", defaults.compression)
    parser.add_argument("--excel-safe", action="store_true", help=FIELD_HELP["excel_safe"])


def _raw_params(args: argparse.Namespace) -> dict[str, Any]:
    """The export options as `parse_export_params` takes them (the fields of `ExportParams`)."""
    raw: dict[str, Any] = {
        "format": args.format,
        "account_codes": args.account_codes,
        "statuses": args.statuses,
        "sale_date_from": args.sale_date_from,
        "sale_date_to": args.sale_date_to,
        "columns": [name.strip() for name in args.columns.split(",") if name.strip()],
        "include_remarks": args.include_remarks,
        "money": args.money,
        "bom": args.bom,
        "excel_safe": args.excel_safe,
        "compression": args.compression,
    }
    output_name = getattr(args, "output_name", None)
    if output_name:
        raw["output_name"] = output_name
    return raw


def export_params(args: argparse.Namespace, output: OutputTarget | None = None) -> ExportParams:
    """The export the options ask for; raises `ExportInputError` naming the field. The file
    name of `--output` (when it names a file) is checked as `output_name`."""
    raw = _raw_params(args)
    if output is not None and output.name is not None:
        raw["output_name"] = output.name
    return parse_export_params(raw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="record-exports", description="Export bookkeeping records to files."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init-db", help="create every table and index (idempotent)")
    seed = commands.add_parser("seed", help="add synthetic records")
    seed.add_argument("--records", type=_positive, required=True)
    seed.add_argument("--accounts", type=_positive, default=5)
    seed.add_argument("--seed", type=int, default=1)
    seed.add_argument("--if-empty", action="store_true", help="do nothing if records exist")
    export = commands.add_parser("export", help="run the export_records job through Dagster")
    _add_export_options(export)
    export.add_argument(
        "--output",
        metavar="PATH",
        help="file path, or a folder (existing, or ending in /) to write the default file name "
        "in; missing folders are created (default: EXPORTS_DIR/on-demand/)",
    )
    request = commands.add_parser("request", help="file an export request, as the web app would")
    _add_export_options(request)
    request.add_argument("--output-name", metavar="NAME", help=FIELD_HELP["output_name"])
    request.add_argument("--requested-by", help="who asks (free text)")
    return parser


def _database(create: bool = False) -> Engine:
    """The records database. Only `init-db` and `seed` may create a missing SQLite file (and
    its folder, as `make demo` needs for the default `data/records.db`)."""
    target = parse_database_url(RECORDS_DATABASE_URL.value())
    if create and not target.is_postgresql:
        Path(target.adbc_uri()).parent.mkdir(parents=True, exist_ok=True)
    return connect_checked(RECORDS_DATABASE_URL.value(), create=create)


def command_init_db(_: argparse.Namespace) -> int:
    engine = _database(create=True)
    create_schema(engine)
    print(f"schema ready in {engine.url.render_as_string(hide_password=True)}")
    return EXIT_OK


def command_seed(args: argparse.Namespace) -> int:
    from record_exports.seed import has_records, seed_records

    if args.accounts < 1:
        raise UsageError("--accounts must be at least 1")
    engine = _database(create=True)
    create_schema(engine)
    if args.if_empty and has_records(engine):
        print("records already present; nothing seeded (--if-empty)")
        return EXIT_OK
    summary = seed_records(engine, args.records, args.accounts, args.seed)
    print(
        f"added {summary.records:,} records over {summary.accounts} accounts "
        f"({summary.order_remarks:,} order remarks, {summary.service_remarks:,} service remarks)"
    )
    return EXIT_OK


def command_export(args: argparse.Namespace) -> int:
    from pipelines.export_runner import run_export_job

    output = resolve_output(args.output) if args.output is not None else None
    params = export_params(args, output)
    outcome = run_export_job(params, output=output, terminal=sys.stderr.isatty())
    if not outcome.success:
        print(f"error: export failed: {outcome.error}", file=sys.stderr)
        return EXIT_FAILED
    if outcome.truncated_cells:
        print(
            f"warning: {outcome.truncated_cells} text cells were longer than Excel's "
            "32,767-character limit and were cut",
            file=sys.stderr,
        )
    print(f"{outcome.path}\t{outcome.row_count} rows\trun {outcome.run_id}")
    return EXIT_OK


def command_request(args: argparse.Namespace) -> int:
    from pipelines.request_store import insert_request

    params = export_params(args)
    engine = _database()
    try:
        request_id = insert_request(engine, params.to_config(), args.requested_by)
    finally:
        engine.dispose()
    print(request_id)
    print(how_to_watch(request_id), file=sys.stderr)
    return EXIT_OK


def how_to_watch(request_id: int) -> str:
    """Where a filed request goes next; on stderr, so stdout stays the bare id for scripts."""
    from pipelines.request_store import EXPORT_REQUEST_TAG

    return (
        f"request {request_id} is pending; export_requests_sensor starts its run at its next "
        "tick while the Dagster daemon runs (make dev). Watch it in the UI under Runs, tag "
        f"{EXPORT_REQUEST_TAG}={request_id}, or in its row: SELECT status, output_path, "
        f"row_count, error FROM export_requests WHERE id = {request_id}"
    )


COMMANDS = {
    "init-db": command_init_db,
    "seed": command_seed,
    "export": command_export,
    "request": command_request,
}


def _fail(message: str, code: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM stops the CLI as Ctrl-C does (`KeyboardInterrupt`, exit 1) while the block
    runs. While a run executes, Dagster routes both to its own handler, which stops the
    export step at once (a step waiting for a pool slot included); this covers the moments
    around the run. The previous handler is back afterwards (tests call `main` in process)."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_default_settings()
    try:
        with sigterm_as_ctrl_c():
            return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        _fail("interrupted (Ctrl-C or SIGTERM)", EXIT_FAILED)
    except (DatabaseSettingError, UsageError, OutputPathError) as error:
        _fail(str(error), EXIT_BAD_INPUT)
    except ExportInputError as error:
        _fail("\nerror: ".join(str(problem) for problem in error.problems), EXIT_BAD_INPUT)
    except DatabaseBusyError as error:
        _fail(str(error), EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
