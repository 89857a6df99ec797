"""A real export that SIGKILLs itself at one rename or unlink under a folder: the fault
injection of test_publish_crash.py.

Run as `python -m tests.record_exports.crashing_export '<job as JSON>'`. The job says what
to export (`kind` "export": one file at `destination` with `params`; `kind` "daily": the
files of `account_code` on `day` in `formats` under the daily `root`), from the database at
`url`, and where to die: at the `kill_at`-th call of `os.replace` or `os.unlink` on a path
under `watched`, just `before` or `after` it (`kill_at` 0: never). The wrapping is done
here, in this process, around the real calls; the product has no hook for it. It prints
the calls it saw, as JSON, when it was not killed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from record_exports.daily import DailySelection, export_days
from record_exports.database import parse_database_url
from record_exports.engine import run_export
from record_exports.params import ExportFormat, parse_export_params

RANDOM_PART = re.compile(r"partial-[0-9a-f]{12}")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def watch_calls(watched: str, kill_at: int, phase: str) -> list[str]:
    """Wrap `os.replace` and `os.unlink` so calls under `watched` are recorded, and the
    `kill_at`-th kills this process `phase` ("before"/"after") it runs."""
    seen: list[str] = []

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            paths = [os.fspath(arg) for arg in args[:2] if isinstance(arg, str | os.PathLike)]
            if not paths or not str(paths[0]).startswith(watched + os.sep):
                return real(*args, **kwargs)
            names = [RANDOM_PART.sub("partial-*", os.path.relpath(p, watched)) for p in paths]
            seen.append(f"{name} {' -> '.join(names)}")
            if len(seen) == kill_at and phase == "before":
                _die()
            try:
                return real(*args, **kwargs)
            finally:
                if len(seen) == kill_at and phase == "after":
                    _die()

        return call

    os.replace = wrap("replace", os.replace)
    os.unlink = wrap("unlink", os.unlink)
    return seen


def main(job: dict[str, Any]) -> None:
    seen = watch_calls(job["watched"], job["kill_at"], job["phase"])
    target = parse_database_url(job["url"])
    if job["kind"] == "export":
        params = parse_export_params(job["params"])
        run_export(target, params, Path(job["destination"]), run_id="crashing")
    else:
        day = dt.date.fromisoformat(job["day"])
        formats = tuple(ExportFormat(value) for value in job["formats"])
        selection = DailySelection(day, day, formats, (job["account_code"],))
        list(export_days(target, selection, Path(job["root"]), run_id="crashing"))
    print(json.dumps(seen))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
