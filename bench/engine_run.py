"""One engine export in its own process: `python -m bench.engine_run URL FORMAT OUT [LIMIT]`.

Prints one JSON line: rows, bytes, sha256 and the seconds `run_export` took (the library
call, without interpreter start-up and imports).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench.peak import peak_rss_mb
from record_exports.database import parse_database_url
from record_exports.engine import run_export
from record_exports.params import ExportFormat, ExportParams


def main(argv: list[str]) -> None:
    url, export_format, out = argv[:3]
    target = parse_database_url(url)
    params = ExportParams(format=ExportFormat(export_format))
    started = time.perf_counter()
    result = run_export(target, params, Path(out))
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": result.row_count,
                "bytes": result.bytes,
                "sha256": result.sha256,
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
