"""A real `tailor serve` process for the web tests, and small HTTP clients (http.client and raw sockets)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class ServeProcess:
    """`python -m cli serve` in its own process (the real server: uvicorn, the app, the engine)."""

    def __init__(self, home: Path, settings, log: Path, env: dict[str, str] | None = None, args: tuple = ()):
        self.home, self.settings, self.log_path = home, settings, log
        self.port = free_port()
        self.extra_env = env or {}
        self.args = args
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 420.0) -> ServeProcess:  # a shared, busy machine: minutes
        env = {**os.environ, "TAILOR_HOME": str(self.home), "NEO4J_URI": self.settings.uri,
               "NEO4J_USER": self.settings.user, "NEO4J_PASSWORD": self.settings.password,
               "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **self.extra_env}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(self.port), *self.args],
                                     cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tailor serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.request("GET", "/health", timeout=10, headers=self.extra_headers())
                return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"tailor serve did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def extra_headers(self) -> dict[str, str]:
        token = self.extra_env.get("TAILOR_SERVE_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                timeout: float = 60.0, raw: bytes | None = None) -> Answer:
        """One request on a fresh connection; ``body`` is sent as JSON unless ``raw`` bytes are given."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            sent = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers={**sent, **(headers or {})})
            response = conn.getresponse()
            payload = response.read()
            try:
                parsed = json.loads(payload) if payload else None
            except json.JSONDecodeError:
                parsed = payload.decode(errors="replace")
            return Answer(response.status, parsed, {k.lower(): v for k, v in response.getheaders()})
        finally:
            conn.close()

    def post(self, path: str, body: Any, **kwargs) -> Answer:
        return self.request("POST", path, body, **kwargs)

    def get(self, path: str, **kwargs) -> Answer:
        return self.request("GET", path, **kwargs)


@pytest.fixture(scope="module")
def served(catalog_home, neo4j_target, tmp_path_factory):
    """`tailor serve` over the module's copy of the trained catalog."""
    server = ServeProcess(catalog_home, neo4j_target.settings, tmp_path_factory.mktemp("serve") / "serve.log")
    server.start()
    yield server
    server.stop()


# --- a real headless Chromium, for the page tests --------------------------------------------------------
# Debian's Chromium driven by Playwright (Playwright's own browser download cannot work on these machines).

CHROMIUM = Path(os.environ.get("TAILOR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def neo4j_browser_url(settings) -> str | None:
    """Neo4j Browser of the test database (the local server's HTTP port), or None for another server."""
    from graphdb.server.manager import LocalServer

    if getattr(settings, "data_dir", None) is None:
        return None
    status = LocalServer(settings.data_dir).status()
    return f"http://127.0.0.1:{status.http_port}/browser/" if status.running and status.http_port else None


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session."""
    if not CHROMIUM.exists():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: `make setup` installs it "
                    "(apt-get install chromium chromium-driver), or set TAILOR_CHROMIUM")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=120_000)  # a like or a tag waits for the index refresh on a loaded machine
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium):
    """A fresh page (its own cookies and storage); a script error on it fails the test."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)  # a like or a tag waits for the index refresh on a loaded machine
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"
