"""The `<file>.manifest.json` written next to every export, and publishing the two together.

A manifest never describes a file it does not match. `publish_with_manifest` renames a
complete file and its manifest into place in this order, each step made durable (by
default at once) before the next:

1. the new manifest is written and fsynced under a temporary name, as is the new file;
2. the old manifest, if any, is deleted;
3. the new file is renamed over the old one;
4. the new manifest is renamed into place.

So a crash at any point leaves one of four states: the old file with its old manifest
(or nothing, the first time); the old file without a manifest (after 2); the new file
without a manifest (after 3); the new file with its new manifest. A file without a
manifest is complete (only complete files are ever renamed into place) but unverified: its
manifest was being replaced when the writer died, and the next export of that name writes
both. The old file without a manifest is the least bad state that two renames allow:
renaming the file first would leave the old manifest describing the new file.

With a deferred `sync_directory` (daily files: one fsync per folder per chunk) the order
holds for a crash of the process at once, and for a power loss as far as the file system
commits a folder's changes in order (ext4 and xfs journal them in order).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from record_exports.atomic import DirectorySync, fsync_directory, fsync_file, partial_file


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


def manifest_bytes(manifest: Manifest) -> bytes:
    return (json.dumps(manifest.to_json(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _delete(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def publish_with_manifest(
    temp: Path,
    final: Path,
    manifest: Manifest,
    sync_directory: DirectorySync = fsync_directory,
) -> Path:
    """Rename the complete file `temp` to `final` and write `manifest` beside it, in the
    order of the module docstring; returns the manifest's path."""
    path = manifest_path(final)
    with partial_file(path) as manifest_temp:
        manifest_temp.write_bytes(manifest_bytes(manifest))
        fsync_file(manifest_temp)
        fsync_file(temp)
        if _delete(path):
            sync_directory(path.parent)
        os.replace(temp, final)
        sync_directory(final.parent)
        os.replace(manifest_temp, path)
        sync_directory(path.parent)
    return path
