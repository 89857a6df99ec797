"""The code location loads the way `make dev` and the daemon load it: through workspace.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).parent / "dagster"


def test_definitions_validate(dagster_env: Path, sqlite_url: str) -> None:
    result = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "RECORDS_DATABASE_URL": sqlite_url},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_definitions_hold_the_contract_names() -> None:
    from pipelines.definitions import defs

    assert defs.resolve_job_def("export_records") is not None
