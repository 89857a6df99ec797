"""The local instance takes production's run queue and pool settings from deploy/dagster.yaml."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from pipelines.local_instance import (
    deployed_instance_config,
    ensure_local_instance,
    local_instance_yaml,
)


def test_local_file_holds_the_deployed_concurrency_and_telemetry() -> None:
    local = yaml.safe_load(local_instance_yaml())
    deployed = deployed_instance_config()
    assert local == {"concurrency": deployed["concurrency"], "telemetry": deployed["telemetry"]}
    assert local["concurrency"]["pools"] == {"default_limit": 2}
    assert local["telemetry"] == {"enabled": False}


def test_an_instance_loads_it_with_the_limits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ensure_local_instance(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 10
        assert [limit["key"] for limit in queue.tag_concurrency_limits] == ["dagster/partition"]
        pool = instance.get_concurrency_config().pool_config
        assert pool.default_pool_limit == 2


def test_an_existing_file_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    ensure_local_instance(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"
