"""The `<file>.manifest.json` written next to every export."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from record_exports.atomic import DirectorySync, fsync_directory, write_bytes_atomically


@dataclass(frozen=True)
class Manifest:
    """What `<file>.manifest.json` records about an export file."""

    format: str
    columns: list[str]
    filters: dict[str, Any]
    money: str
    row_count: int
    bytes: int
    sha256: str
    created_at: dt.datetime
    run_id: str | None

    def describe(self) -> dict[str, Any]:
        """What the file is, as plain JSON values: the facts run metadata, materializations
        and request rows report as well (through `ExportResult.metadata`)."""
        return {
            "format": self.format,
            "columns": self.columns,
            "filters": self.filters,
            "money": self.money,
            "row_count": self.row_count,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    def to_json(self) -> dict[str, Any]:
        """The manifest file's content: `describe()`, then when and by which run."""
        return {
            **self.describe(),
            "created_at": self.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "run_id": self.run_id,
        }


MANIFEST_SUFFIX = ".manifest.json"


def manifest_path(export_path: Path) -> Path:
    return export_path.with_name(export_path.name + MANIFEST_SUFFIX)


def write_manifest(
    export_path: Path, manifest: Manifest, sync_directory: DirectorySync = fsync_directory
) -> Path:
    path = manifest_path(export_path)
    payload = json.dumps(manifest.to_json(), indent=2, ensure_ascii=False) + "\n"
    write_bytes_atomically(path, payload.encode("utf-8"), sync_directory)
    return path
