"""Dagster's own processes (`dagster-daemon`, `dagster-webserver`) started by a test, and
what a test needs to talk to them and to stop them for good.

Each runs in a new session (its own process group) with its output in a log file, because a
daemon starts a code server that outlives a SIGTERM to the daemon alone: stopping the group
is what leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKSPACE = ["-w", "workspace.yaml"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def deployed_environment(
    home: Path, exports: Path, storage_url: str, records_url: str, **settings: str
) -> dict[str, str]:
    """The environment of a deployment on a fresh instance: `home` gets deploy/dagster.yaml
    (PostgreSQL storage at `storage_url`, run queue, pools), exports go under `exports`, and
    `settings` (EXPORTS_FIRST_DAY=..., ...) come on top of UTC as the time zone."""
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": storage_url,
        "RECORDS_DATABASE_URL": records_url,
        "EXPORTS_DIR": str(exports),
        "EXPORTS_TIMEZONE": "UTC",
        **settings,
    }


def daemon_command() -> list[str]:
    return [str(BIN / "dagster-daemon"), "run", *WORKSPACE]


def webserver_command(port: int) -> list[str]:
    return [str(BIN / "dagster-webserver"), *WORKSPACE, "-h", "127.0.0.1", "-p", str(port)]


def start_in_own_group(
    command: Sequence[str], env: Mapping[str, str], log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """`command` from the repository root, its output in `log`, in a process group of its own."""
    return subprocess.Popen(
        list(command),
        cwd=REPO_ROOT,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_process_group(
    process: subprocess.Popen[bytes], first: signal.Signals = signal.SIGTERM, timeout: float = 30.0
) -> bool:
    """`first` to the process's group and wait for the process to end, then SIGKILL what is
    left of the group (a daemon's code server ignores SIGTERM); True once the group is empty."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, first)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            process.wait()
            return True
        process.poll()
        time.sleep(0.2)
    return False


def graphql(
    url: str, query: str, variables: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The whole answer (`data`, `errors`) of the GraphQL endpoint `url` to `query`."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"query": query, "variables": dict(variables or {})}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        payload: dict[str, object] = json.loads(response.read())
    return payload


def wait_for(what: str, check: Callable[[], bool], seconds: float, log: Path) -> float:
    """Seconds until `check()` held; fails with the processes' log when it never does."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            pytest.fail(f"{what} not within {seconds:.0f} s\n{log.read_text()[-6000:]}")
        time.sleep(0.5)
    return time.monotonic() - started
