"""Properties of the CLI's export options (pipelines/cli.py): any option values are refused by
argparse (exit 2, naming the option), refused by the parser naming the field, or give safe
params; a sample runs `main()` for real against PostgreSQL, where every run either exits 2
having written nothing, or exits 0 having written only its file and manifest, in its folder."""

from __future__ import annotations

import contextlib
import io
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from pipelines.cli import build_parser, export_params, main
from pipelines.output_target import OutputPathError, resolve_output
from record_exports.errors import ExportInputError
from record_exports.seed import seed_records
from tests.hostile_values import (
    PATH_TRICKS,
    check_file_name_stays_inside,
    check_values_never_in_sql,
    field_values,
    weird_text,
)

VALUED_OPTIONS = {
    "--format": "format",
    "--money": "money",
    "--compression": "compression",
    "--from": "sale_date_from",
    "--to": "sale_date_to",
    "--output": "output_name",
}
REPEATED_OPTIONS = {"--account": "account_codes", "--status": "statuses"}
FLAGS = ["--include-remarks", "--bom", "--excel-safe"]


def option_text(field: str) -> st.SearchStrategy[str]:
    """What a person types for a field: its own kind of value, or any text."""
    return st.one_of(field_values(field).filter(lambda value: isinstance(value, str)), weird_text)


@st.composite
def export_argv(draw: st.DrawFn) -> list[str]:
    argv: list[str] = []
    for option, field in VALUED_OPTIONS.items():
        if draw(st.booleans()):
            argv += [option, draw(option_text(field))]
    for option, field in REPEATED_OPTIONS.items():
        for value in draw(st.lists(option_text(field), max_size=3)):
            argv += [option, value]
    if draw(st.booleans()):
        columns = draw(st.lists(option_text("columns"), max_size=4))
        argv += ["--columns", ",".join(columns)]
    argv += [flag for flag in FLAGS if draw(st.booleans())]
    return argv


def parse_argv(argv: list[str]) -> Any:
    """The parsed namespace, or None after checking argparse's refusal names an option."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return build_parser().parse_args(["export", *argv])
    except SystemExit as exited:
        assert exited.code == 2
        text = stderr.getvalue()
        assert "error: argument --" in text, text
        return None


@settings(max_examples=300, deadline=None)
@given(export_argv())
def test_option_values_are_refused_naming_the_option_or_give_safe_params(
    argv: list[str],
) -> None:
    args = parse_argv(argv)
    if args is None:
        return
    try:
        output = resolve_output(args.output) if args.output is not None else None
        params = export_params(args, output)
    except OutputPathError as error:
        assert str(error).startswith("--output: ") and "\n" not in str(error), str(error)
        return
    except ExportInputError as error:
        text = str(error)
        assert "\n" not in text and "\r" not in text, text[:300]
        assert all(f"{problem.field}: " in text for problem in error.problems)
        return
    # `--output` is the user's own path, `..` included: the file must land in that folder.
    folder = output.folder.resolve() if output is not None else Path("/exports")
    check_file_name_stays_inside(folder, params)
    check_values_never_in_sql(params)


def tree(root: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


SAMPLE_OPTIONS = st.lists(
    st.sampled_from(
        [
            ["--format", "CSV"],
            ["--format", "Parquet"],
            ["--format", "ndjson", "--compression", "Zstd"],
            ["--format", "xlsx"],
            ["--money", "DOLLARS"],
            ["--status", "successful", "--status", "Return_Closed"],
            ["--account", "ACC2"],
            ["--account", "NOSUCH"],
            ["--account", "ACC1'; DROP TABLE accounts; --"],
            ["--from", "2026-02-30"],
            ["--columns", "id,profit_cents,item_name"],
            ["--columns", "id,password"],
            ["--bom"],
            ["--format", "xml"],
            # Relative to the test's folder, so `..` moves within it.
            *(["--output", f"out/a/b/{trick.lstrip('/')}"] for trick in PATH_TRICKS),
            ["--output", "out/plain name.csv"],
        ]
    ),
    min_size=1,
    max_size=3,
).map(lambda groups: [token for group in groups for token in group])


@pytest.fixture
def seeded(pg_engine: Engine) -> Engine:
    """Set up once for all examples of a test (Hypothesis runs them in one test call)."""
    seed_records(pg_engine, 300, 2, seed=4)
    return pg_engine


@pytest.mark.slow
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(SAMPLE_OPTIONS)
def test_a_sample_of_commands_writes_only_its_file_or_nothing(
    postgres_url: str,
    seeded: Engine,
    dagster_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    """`main()` in process, as `record-exports export ...` runs, on a real database. (Each
    command of the sample is a Dagster run; the CLI as a subprocess is tests/pipelines/
    test_cli.py's.)"""
    monkeypatch.setenv("RECORDS_DATABASE_URL", postgres_url)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    stdout = io.StringIO()
    stderr = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(["export", *argv])
        except SystemExit as exited:
            code = int(exited.code or 0)
    after = tree(tmp_path)
    home = tmp_path / "dagster_home"
    written = {p for p in after if after[p] != before.get(p) and home not in p.parents}
    assert "Traceback" not in stderr.getvalue()
    if code != 0:
        assert code == 2, stderr.getvalue()
        # One line per bad field (`error: format: ...`), or argparse's usage and one line.
        lines = stderr.getvalue().splitlines()
        assert lines and all(line.startswith(("error: ", "usage: ", " ")) for line in lines)
        assert lines[-1].startswith(("error: ", "record-exports export: error: ")), lines
        assert written == set(), written
        return
    path = Path(stdout.getvalue().split("\t")[0])
    assert written == {path, path.with_name(path.name + ".manifest.json")}
    output = [value for option, value in itertools.pairwise(argv) if option == "--output"]
    # `--output` ending in `/` names a folder: the default file name goes inside it.
    expected_folder = (
        resolve_output(output[-1]).folder.resolve() if output else dagster_env / "on-demand"
    )
    assert path.parent == expected_folder
