"""A production-shaped deployment on this machine, for tests and for bench/celery_workers.py:
`dagster-daemon` on deploy/dagster.yaml with the Celery executor switched on, and
`dagster-celery` workers on a throwaway RabbitMQ vhost.

Every process is started in a session of its own, so stopping one stops its whole
process group (a worker is the `dagster-celery` wrapper, the `celery` main process and
its pool child). The vhost is deleted at the end, and with it every queue the broker
held for these workers and runs.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
RABBITMQ_SERVER = os.environ.get("TEST_RABBITMQ_SERVER", "amqp://guest:guest@127.0.0.1:5672")
RABBITMQ_USER = "guest"
WORKER_START_SECONDS = 90
STOP_SECONDS = 30


def rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, timeout=60)


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A fresh vhost on the local RabbitMQ; yields its broker URL, deletes it afterwards
    (which deletes its queues and exchanges)."""
    name = f"rx_test_{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, RABBITMQ_USER, ".*", ".*", ".*")
        yield f"{RABBITMQ_SERVER}/{name}"
    finally:
        rabbitmqctl("delete_vhost", name)


def vhost_exists(broker_url: str) -> bool:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_vhosts", "name"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return broker_url.rsplit("/", 1)[1] in listed.stdout.split()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_of(home: Path) -> list[int]:
    """Pids of live processes whose DAGSTER_HOME is `home`: every process a deployment
    started, and the run processes and code servers those started in turn."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("DAGSTER_HOME") == str(home):
                found.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@dataclass
class Service:
    """One supervised process group: the daemon, or one worker."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pgid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None and group_alive(self.pgid)

    def kill(self) -> None:
        """SIGKILL the whole group at once, as when a machine or container dies."""
        os.killpg(self.pgid, signal.SIGKILL)
        self.process.wait()
        wait_for(lambda: not group_alive(self.pgid), 10, f"{self.name} to die")

    def stop(self) -> None:
        """SIGTERM (a worker finishes its step), then SIGKILL what is left."""
        if group_alive(self.pgid):
            os.killpg(self.pgid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            while group_alive(self.pgid) and time.monotonic() < deadline:
                self.process.poll()
                time.sleep(0.2)
            if group_alive(self.pgid):
                os.killpg(self.pgid, signal.SIGKILL)
        self.process.wait()
        wait_for(lambda: not group_alive(self.pgid), 10, f"{self.name} to stop")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {seconds} s")
        time.sleep(0.2)


def is_ready(worker: Service) -> bool:
    """A worker's log says it connected and is ready for steps."""
    log = worker.log_text()
    return f"{worker.name}@" in log and " ready." in log


@dataclass
class CeleryDeployment:
    """A Dagster instance with PostgreSQL storage, its daemon and its Celery workers."""

    home: Path
    exports: Path
    logs: Path
    env: dict[str, str]
    services: dict[str, Service] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        folder: Path,
        *,
        records_url: str,
        dagster_storage_url: str,
        broker_url: str,
        instance_yaml: str | None = None,
    ) -> CeleryDeployment:
        """`instance_yaml` replaces deploy/dagster.yaml when given."""
        home, exports, logs = folder / "dagster_home", folder / "exports", folder / "logs"
        for path in (home, exports, logs):
            path.mkdir(parents=True, exist_ok=True)
        shipped = (REPO_ROOT / "deploy" / "dagster.yaml").read_text()
        (home / "dagster.yaml").write_text(instance_yaml or shipped)
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": dagster_storage_url,
            "RECORDS_DATABASE_URL": records_url,
            "EXPORTS_DIR": str(exports),
            "EXPORTS_TIMEZONE": "UTC",
            "EXPORTS_EXECUTOR": "celery",
            "CELERY_BROKER_URL": broker_url,
            "CELERY_RESULT_BACKEND": "rpc://",
        }
        return cls(home, exports, logs, env)

    def _start(self, name: str, command: list[str]) -> Service:
        log = self.logs / f"{name}.log"
        with log.open("ab") as handle:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, process, log)
        self.services[name] = service
        return service

    def start_daemon(self) -> Service:
        return self._start(
            "daemon", [str(VENV_BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
        )

    def worker_command(self, name: str) -> list[str]:
        """The command deploy/README.md documents, one step at a time."""
        return [
            str(VENV_BIN / "dagster-celery"),
            "worker",
            "start",
            "-A",
            "dagster_celery.app",
            "-y",
            str(REPO_ROOT / "deploy" / "celery.yaml"),
            "-n",
            name,
            "--",
            "--concurrency=1",
        ]

    def start_workers(self, names: list[str]) -> list[Service]:
        """Start workers side by side; return once each has connected and is ready."""
        started = [self._start(name, self.worker_command(name)) for name in names]
        for worker in started:
            wait_for(
                functools.partial(is_ready, worker),
                WORKER_START_SECONDS,
                f"worker {worker.name} to be ready:\n{worker.log_text()[-3000:]}",
            )
        return started

    def instance(self) -> dg.DagsterInstance:
        """The deployment's instance, opened in this process (the caller closes it)."""
        previous = os.environ.get("DAGSTER_PG_URL")
        os.environ["DAGSTER_PG_URL"] = self.env["DAGSTER_PG_URL"]
        try:
            return dg.DagsterInstance.from_config(str(self.home))
        finally:
            if previous is None:
                del os.environ["DAGSTER_PG_URL"]
            else:
                os.environ["DAGSTER_PG_URL"] = previous

    def stop_all(self) -> None:
        """Workers first (they finish their step), then the daemon and its run processes."""
        for name in sorted(self.services, key=lambda n: n == "daemon"):
            self.services[name].stop()

    def logs_tail(self, limit: int = 3000) -> str:
        return "\n".join(
            f"--- {name} ---\n{service.log_text()[-limit:]}"
            for name, service in self.services.items()
        )


def worker_names(prefix: str, count: int) -> list[str]:
    """Worker names unique to this test run (a node name is unique per host)."""
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}{tag}-{number}" for number in range(1, count + 1)]
