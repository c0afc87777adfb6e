"""Fixtures of the page tests: a real trained workspace on a slice of myntra-small, a real `tailor serve`
process, and a real headless Chromium (Debian's, driven by Playwright; Playwright's own browser download
is not used and cannot work on these machines)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from readers.datasets import myntra_catalog
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("TAILOR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PRODUCTS = 300  # products loaded: enough for real composed queries, small enough to train in seconds
SERVE_START_S = 300.0  # torch, the engine and the first sync on a shared 2-core machine


@dataclass
class Workspace:
    home: Path
    env: dict[str, str]
    browser_url: str | None  # Neo4j Browser of the test database
    bolt_uri: str
    password: str


@pytest.fixture(scope="session")
def web_workspace(neo4j_target, neo4j_driver, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The catalog slice loaded and a model trained (two epochs), in a fresh TAILOR_HOME."""
    if not neo4j_target.owned:
        pytest.skip(f"the page tests load their own catalog, and {neo4j_target.how} was not started by the tests")
    catalog = myntra_catalog()
    if not catalog.exists():
        pytest.skip(f"needs myntra-small at {catalog} (set TAILOR_DATASETS)")
    from cli.app import app
    from graphdb.maintenance import delete_everything
    from graphdb.server.manager import LocalServer

    delete_everything(neo4j_driver)
    settings = neo4j_target.settings
    home = tmp_path_factory.mktemp("web") / "home"
    env = {"NEO4J_URI": settings.uri, "NEO4J_USER": settings.user, "NEO4J_PASSWORD": settings.password,
           "TAILOR_HOME": str(home)}
    runner = CliRunner()
    for args in (["load", "catalog", str(catalog), "--limit", str(PRODUCTS)], ["train", "--epochs", "2"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, f"tailor {' '.join(args)} failed:\n{result.output}"
    browser = None
    if settings.data_dir is not None:
        status = LocalServer(settings.data_dir).status()
        if status.running and status.http_port:
            browser = f"http://127.0.0.1:{status.http_port}/browser/"
    return Workspace(home, env, browser, settings.uri, settings.password)


class ServeProcess:
    """`python -m cli serve` of this checkout, as a user starts it."""

    def __init__(self, ws: Workspace, log: Path):
        self.ws = ws
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServeProcess:
        command = [sys.executable, "-m", "cli", "serve", "--port", str(self.port)]
        if self.ws.browser_url:
            command += ["--browser-url", self.ws.browser_url]
        env = {**os.environ, **self.ws.env, "PYTHONPATH": str(ROOT)}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SERVE_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tailor serve exited ({self.proc.returncode}):\n{self.tail()}")
            if (self.ws.home / "serve.json").exists() and self.health() == 200:
                return self
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"tailor serve did not answer within {SERVE_START_S:g} s:\n{self.tail()}")

    def health(self) -> int | None:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> int | None:
        """Ctrl-C, as a user stops it; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def served(web_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    server = ServeProcess(web_workspace, tmp_path_factory.mktemp("serve") / "serve.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session."""
    if not CHROMIUM.exists():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: `make setup` installs it "
                    "(apt-get install chromium chromium-driver), or set TAILOR_CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium):
    """A fresh page (its own cookies and storage); script errors on it fail the test."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)  # a like or a tag waits for the index refresh on a loaded machine
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.script_errors = errors
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


def api(server: ServeProcess, method: str, path: str, body: dict | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """A request as a command-line client sends it."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
