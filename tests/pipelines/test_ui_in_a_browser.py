"""What a person sees in the Dagster UI, in a real browser: the `export_records` Launchpad
explains every option, and a finished CLI export is listed on the job's page and shows its
row count and path.

Drives Debian's Chromium (/usr/bin/chromium; `.ci/run` installs it when missing) through
playwright, which never downloads a browser here. Starts `dagster-webserver` on a free port
with a real instance and stops it, and everything it started, at the end.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import Engine

from record_exports.params import FIELD_HELP

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page
from record_exports.seed import seed_records
from tests.dagster_processes import (
    BIN,
    REPO_ROOT,
    free_port,
    graphql,
    start_in_own_group,
    stop_process_group,
    wait_for,
    webserver_command,
)

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # Chromium refuses to run as root with its sandbox
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOCATION = "pipelines.definitions:defs"
STARTUP_SECONDS = 180
PAGE_SECONDS = 60


@pytest.fixture
def environment(postgres_url: str, pg_engine: Engine, dagster_env: Path) -> dict[str, str]:
    seed_records(pg_engine, 400, 2, seed=11)
    return {
        **os.environ,
        "RECORDS_DATABASE_URL": postgres_url,
        "EXPORTS_DIR": str(dagster_env),
        "DAGSTER_HOME": os.environ["DAGSTER_HOME"],
    }


@pytest.fixture
def webserver(environment: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`dagster-webserver` on the workspace and the test's instance; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "webserver.log").open("wb") as log:
        process = start_in_own_group(webserver_command(port), environment, log)
        try:
            wait_for(
                "the webserver", lambda: server_up(url), STARTUP_SECONDS, tmp_path / "webserver.log"
            )
            mark_welcome_dialog_seen(url)
            yield url
        finally:
            assert stop_process_group(process), "processes of the webserver's group still run"


def server_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def graphql_data(url: str, query: str) -> object:
    return graphql(f"{url}/graphql", query)["data"]


def mark_welcome_dialog_seen(url: str) -> None:
    """Tell the instance its community welcome dialog was seen, as "Skip" would.

    On a fresh instance the UI opens that modal a moment after the page loads, at a time
    no test can predict, and its backdrop then swallows clicks meant for the page.
    """
    graphql_data(url, "mutation { setNuxSeen }")
    assert graphql_data(url, "query { shouldShowNux }") == {"shouldShowNux": False}


def metadata_value(page: Page, label: str) -> Locator:
    """The value cell of the run log's metadata entry `label` (the first one shown)."""
    return page.locator(f"xpath=//td[normalize-space(.)='{label}']/following-sibling::td[1]").first


def cli_export(environment: dict[str, str], *options: str) -> tuple[Path, int, str]:
    done = subprocess.run(
        [str(BIN / "record-exports"), "export", *options],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    path, rows, run = done.stdout.strip().split("\t")
    return Path(path), int(rows.split()[0]), run.split()[-1]


def test_launchpad_and_a_finished_run_explain_themselves(
    environment: dict[str, str], webserver: str
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Debian's chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` "
            "(which .ci/run does when it may) and run this test again"
        )
    from playwright.sync_api import expect, sync_playwright

    path, rows, run_id = cli_export(environment, "--format", "xlsx", "--account", "ACC1")
    job_url = f"{webserver}/locations/{LOCATION}/jobs/export_records"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # Tall enough that the run log renders every row of a short run.
            page = browser.new_page(viewport={"width": 1500, "height": 2400})
            page.set_default_timeout(PAGE_SECONDS * 1000)
            expect.set_options(timeout=PAGE_SECONDS * 1000)

            # The Launchpad opens with every option, and its help panel describes each.
            page.goto(f"{job_url}/playground")
            editor_line = page.locator(".CodeMirror-line", has_text="format: csv")
            expect(editor_line).to_have_count(1)
            for prefilled in ("sale_date_from: ''", "sale_date_to: ''", "output_name: ''"):
                expect(page.locator(".CodeMirror-line", has_text=prefilled)).to_have_count(1)
            expect(page.locator(".CodeMirror-line", has_text="terminal")).to_have_count(0)
            editor_line.click()
            for field in ("format", "sale_date_from", "statuses", "columns", "bom"):
                expect(page.get_by_text(FIELD_HELP[field], exact=False).first).to_be_visible()

            # The CLI's run is listed on the job's page, tagged.
            page.goto(f"{job_url}/runs")
            row = page.locator("[data-index]", has=page.locator(f"a[href='/runs/{run_id}']"))
            expect(row).to_have_count(1)
            expect(row).to_contain_text("source: cli")
            expect(row).to_contain_text("accounts: ACC1")

            # The finished run shows its row count and the file's path, and re-executes
            # without a warning that it may be another version of the job.
            page.goto(f"{webserver}/runs/{run_id}")
            expect(page.get_by_text('Yielded output "file"')).to_have_count(1)
            expect(metadata_value(page, "dagster/row_count")).to_have_text(str(rows))
            expect(metadata_value(page, "path")).to_have_text(str(path))
            expect(metadata_value(page, "money")).to_have_text("dollars")
            columns = metadata_value(page, "columns")
            expect(columns).to_contain_text("ID, eBay Order ID, Sale Date")
            reexecute = page.locator("button", has_text="Re-execute all")
            expect(reexecute).to_have_count(1)
            expect(reexecute.locator("[aria-label='warning']")).to_have_count(0)
        finally:
            browser.close()
