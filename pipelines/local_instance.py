"""The local Dagster instance the CLI and `make dev` use, configured from deploy/dagster.yaml.

Production's instance file is the one source of the run queue and pool settings (at most two
export steps against the records database, one run per daily partition at a time, ...): the
local `DAGSTER_HOME/dagster.yaml` takes its `concurrency` and `telemetry` sections as they are.
The rest of the production file (PostgreSQL storage, run monitoring) stays production's; a local
instance keeps runs and events in files under `DAGSTER_HOME`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from record_exports.settings import REPO_ROOT

DEPLOY_INSTANCE_FILE = REPO_ROOT / "deploy" / "dagster.yaml"
SHARED_SECTIONS = ("concurrency", "telemetry")
HEADER = "# Written by record-exports: the concurrency and telemetry of deploy/dagster.yaml.\n"


def deployed_instance_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(DEPLOY_INSTANCE_FILE.read_text())
    return config


def local_instance_yaml() -> str:
    """The local instance file: production's sections in `SHARED_SECTIONS`, nothing else."""
    deployed = deployed_instance_config()
    shared = {section: deployed[section] for section in SHARED_SECTIONS}
    return HEADER + yaml.safe_dump(shared, sort_keys=False)


def ensure_local_instance(home: Path) -> None:
    """Create `home` and its `dagster.yaml` when missing; an existing file is left as it is."""
    home.mkdir(parents=True, exist_ok=True)
    instance_file = home / "dagster.yaml"
    if not instance_file.exists():
        instance_file.write_text(local_instance_yaml())
