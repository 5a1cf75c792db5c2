"""``python -m api`` as a real process: port 0 and the ready file, /healthz and /readyz over
real HTTP, JSON access logs on stderr, SIGTERM -> exit 0; on the embedded SQLite default (a
fresh data directory, migrated at start) and on a fresh PostgreSQL database; two workers on
one port; and the failures (a taken port, a database that does not answer).

Every wait is bounded; a server that overstays is killed and the test fails with its log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._support.services import require_postgres
from tests.api._support.db import postgres_database

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment without ``MPT_*`` variables (and with the checkout importable from
    any directory), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPT_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


class ApiProcess:
    """``python -m api --port 0 --ready-file F`` with its stderr in a file."""

    def __init__(self, tmp: Path, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.ready_file = tmp / "ready.json"
        self.log_path = tmp / "api.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api", "--port", "0", "--data-dir", str(tmp / "data"),
             "--ready-file", str(self.ready_file), *args],
            env=child_env(env or {}), cwd=tmp, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self._log,
        )  # fmt: skip

    def wait_ready(self) -> dict[str, Any]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready_file.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"the API exited with {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the API was not ready within {READY_TIMEOUT_S} s: {self.log()}")
            time.sleep(0.05)
        info: dict[str, Any] = json.loads(self.ready_file.read_text())
        return info

    def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the API did not exit within {timeout_s} s: {self.log()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def log_records(self) -> list[dict[str, Any]]:
        """Every stderr line, each of which must be one JSON object."""
        self._log.flush()
        lines = self.log_path.read_text().splitlines()
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"a log line is not JSON: {line!r}")
        return records


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    started: list[ApiProcess] = []

    def run(*args: str, env: Mapping[str, str] | None = None) -> ApiProcess:
        server = ApiProcess(tmp_path, *args, env=env)
        started.append(server)
        return server

    yield run
    for server in started:
        server.kill()


@pytest.fixture(scope="module")
def fresh_postgres() -> Iterator[str]:
    with postgres_database(require_postgres()) as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_serves_on_a_free_port_logs_json_and_stops_on_sigterm(
    start: Any, backend: str, request: pytest.FixtureRequest,
) -> None:
    env = {}
    if backend == "postgres":
        env["MPT_DATABASE__URL"] = request.getfixturevalue("fresh_postgres")
    server: ApiProcess = start(env=env)
    info = server.wait_ready()
    assert info["host"] == "127.0.0.1" and info["workers"] == 1
    assert info["port"] > 0 and info["url"] == f"http://127.0.0.1:{info['port']}"
    assert info["pid"] == server.proc.pid

    with httpx.Client(base_url=info["url"], timeout=10.0) as http:
        health = http.get("/healthz", headers={"X-Request-ID": "serve-test-1"})
        ready = http.get("/readyz")
        missing = http.get("/api/v1/no-such-route")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert health.headers["x-request-id"] == "serve-test-1"
    assert "server" not in health.headers
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")

    assert server.stop() == 0
    records = server.log_records()
    access = [r for r in records if r["logger"] == "api.access"]
    assert [(r["route"], r["status"]) for r in access] == [
        ("/healthz", 200), ("/readyz", 200), ("unmatched", 404),
    ]
    assert access[0]["request_id"] == "serve-test-1" and access[0]["msg"] == "GET /healthz 200"
    assert all(r["duration_ms"] >= 0 for r in access)
    assert not [r for r in records if r["logger"] == "uvicorn.access"]
    listening = [r for r in records if r["logger"] == "api.serve"]
    assert listening and listening[0]["port"] == info["port"]
    messages = [r["msg"] for r in records]
    assert "Application shutdown complete." in messages
    if backend == "sqlite":  # a fresh data directory: migrated at start, before ready
        assert (server.ready_file.parent / "data" / "api.sqlite3").is_file()
        assert any("Running upgrade" in m for m in messages)
        assert messages.index("Application startup complete.") < messages.index(
            listening[0]["msg"]
        )


def test_two_workers_share_the_port_and_stop_together(start: Any) -> None:
    server: ApiProcess = start("--workers", "2")
    info = server.wait_ready()
    assert info["workers"] == 2
    with httpx.Client(base_url=info["url"], timeout=10.0) as http:
        assert all(http.get("/healthz").status_code == 200 for _ in range(4))
    assert server.stop() == 0
    records = server.log_records()
    finished = {r["msg"] for r in records if r["msg"].startswith("Finished server process")}
    assert len(finished) == 2, finished  # two worker processes, each stopped gracefully
    upgrades = [r for r in records if "Running upgrade  -> 0001" in r["msg"]]
    assert len(upgrades) == 1  # migrated once, by the parent


def test_a_taken_port_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "api", "--port", str(port), "--data-dir",
             str(tmp_path / "data")],
            env=child_env({}), cwd=tmp_path, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"mpt-api: error: cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_database_that_does_not_answer_fails_the_start(start: Any) -> None:
    server: ApiProcess = start(env={
        "MPT_DATABASE__URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none",
    })
    code = server.wait_exit(60.0)
    assert code == 3  # uvicorn's start-up failure
    assert not server.ready_file.exists()
    records = server.log_records()
    assert any(r["level"] == "error" and "startup failed" in r["msg"].lower() for r in records)


def test_tune_gc_freezes_the_started_app_and_raises_the_threshold() -> None:
    """What a serving process does once its app has started (api.serve.tune_gc)."""
    import gc

    from api.serve import GC_GEN0_THRESHOLD, tune_gc

    before = gc.get_threshold()
    keep = [object() for _ in range(10)]  # alive now: frozen by the call
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() >= len(keep)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
