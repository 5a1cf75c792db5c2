"""The API's commands of ``mpt``: ``db upgrade|downgrade|current``, ``admin create``,
``seed`` (in-process, on a temporary SQLite file and a fresh PostgreSQL database), their
one-line errors, and ``mpt up`` / ``mpt api`` serving the API as real processes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from mpt.cli import _describe_api, main
from mpt.settings import DatabaseSettings, Settings, get_settings
from tests._support.services import require_postgres
from tests.api._support.db import postgres_database
from tests.mpt._support.processes import Child, child_env
from tests.mpt._support.supervised import read_until, stop_gracefully

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough password"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mpt: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def set_env(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """Set a variable for the next command (``get_settings`` caches what it read)."""
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


# --- mpt db -------------------------------------------------------------------------------


def test_db_upgrade_current_downgrade_on_sqlite(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    db = data_dir / "api.sqlite3"
    code, out, _ = run(capsys, "db", "current", "--data-dir", str(data_dir))
    assert code == 0
    assert out.strip() == (
        f"sqlite+aiosqlite:///{db}: revision none (no schema) "
        "(the newest is 0003: run `mpt db upgrade`)"
    )

    code, out, _ = run(capsys, "db", "upgrade", "0001", "--data-dir", str(data_dir))
    assert code == 0
    assert "revision 0001 (the newest is 0003" in out
    assert "users" in tables(db) and "practice_metrics" not in tables(db)

    code, out, _ = run(capsys, "--data-dir", str(data_dir), "db", "upgrade")
    assert code == 0
    assert out.startswith("upgraded ") and out.rstrip().endswith("revision 0003 (the newest)")
    assert {"users", "practice_sessions", "practice_metrics"} <= tables(db)

    code, out, _ = run(capsys, "db", "current", "--data-dir", str(data_dir))
    assert (code, out.strip()) == (0, f"sqlite+aiosqlite:///{db}: revision 0003 (the newest)")

    code, out, _ = run(capsys, "db", "downgrade", "base", "--data-dir", str(data_dir))
    assert code == 0
    assert "revision none (no schema)" in out
    assert tables(db) <= {"alembic_version"}


def test_db_on_postgres(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with postgres_database(require_postgres()) as url:
        set_env(monkeypatch, "MPT_DATABASE__URL", url)
        code, out, _ = run(capsys, "db", "current")
        assert code == 0 and out.rstrip().endswith("revision 0003 (the newest)")
        assert "postgresql+asyncpg://" in out
        code, out, _ = run(capsys, "db", "downgrade", "0001")
        assert code == 0 and "revision 0001 (the newest is 0003" in out
        code, out, _ = run(capsys, "db", "upgrade")
        assert code == 0 and out.rstrip().endswith("revision 0003 (the newest)")


def test_db_errors_are_one_line(capsys: pytest.CaptureFixture[str], data_dir: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(capsys, "db", "downgrade", "nope", "--data-dir", str(data_dir))
    assert code == 1
    assert_one_error_line(err, "Can't locate revision identified by 'nope'")

    code, _, err = run(capsys, "db")
    assert code == 2
    assert_one_error_line(err, "mpt db needs an action")

    set_env(monkeypatch, "MPT_DATABASE__URL", "postgresql+asyncpg://postgres:s3cret@127.0.0.1:1/x")
    code, _, err = run(capsys, "db", "upgrade")
    assert code == 1
    assert_one_error_line(err, "cannot connect to the database postgresql+asyncpg://postgres:***@")
    assert "s3cret" not in err

    set_env(monkeypatch, "MPT_DATABASE__URL", "not a url")
    code, _, err = run(capsys, "db", "current")
    assert code == 2
    assert_one_error_line(err, "MPT_DATABASE__URL='not a url' is not a database URL")

    set_env(monkeypatch, "MPT_DATABASE__URL", "postgresql://postgres@127.0.0.1/x")
    code, _, err = run(capsys, "admin", "create", "--email", "a@example.com",
                       "--display-name", "A", "--password-stdin")
    assert code == 2
    assert_one_error_line(err, "uses the driver 'postgresql'", "postgresql+asyncpg")


# --- mpt admin create, mpt seed -----------------------------------------------------------


async def log_in(settings: Settings, email: str, password: str) -> dict[str, Any]:
    """Log in through the app (ASGI, lifespan running) and return ``/users/me``."""
    from api.main import create_app

    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            login = await http.post("/api/v1/auth/login",
                                    json={"email": email, "password": password})
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            me = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    body: dict[str, Any] = me.json()
    return body


def test_admin_create_then_the_admin_logs_in(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data_dir: Path,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = run(capsys, "admin", "create", "--email", "Boss@Example.com",
                         "--display-name", "The Boss", "--password-stdin",
                         "--data-dir", str(data_dir))
    assert code == 0, err
    match = re.fullmatch(r"created administrator boss@example\.com \(id ([0-9a-f-]{36})\)\n", out)
    assert match, out

    me = asyncio.run(log_in(Settings(data_dir=data_dir), "boss@example.com", PASSWORD))
    assert me["id"] == match.group(1)
    assert me["role"] == "admin"
    assert me["display_name"] == "The Boss"

    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    code, _, err = run(capsys, "admin", "create", "--email", "boss@example.com",
                       "--display-name", "Again", "--password-stdin", "--data-dir", str(data_dir))
    assert code == 1
    assert_one_error_line(err, "boss@example.com")


def test_admin_create_refuses_bad_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data_dir: Path,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    code, _, err = run(capsys, "admin", "create", "--email", "a@example.com",
                       "--display-name", "A", "--password-stdin", "--data-dir", str(data_dir))
    assert code == 1
    assert_one_error_line(err, "password")

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "admin", "create", "--email", "a@example.com",
                       "--display-name", "A", "--password-stdin", "--data-dir", str(data_dir))
    assert code == 2
    assert_one_error_line(err, "empty password")

    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))  # not a terminal
    code, _, err = run(capsys, "admin", "create", "--email", "a@example.com",
                       "--display-name", "A", "--data-dir", str(data_dir))
    assert code == 2
    assert_one_error_line(err, "--password-stdin")


def test_seed_creates_the_global_tags_once(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    code, out, _ = run(capsys, "seed", "--data-dir", str(data_dir))
    assert code == 0
    assert out.startswith("created 5 global tags: Scales, Etudes")
    with sqlite3.connect(data_dir / "api.sqlite3") as conn:
        count = conn.execute("SELECT count(*) FROM tags WHERE owner_id IS NULL").fetchone()[0]
    assert count == 5
    code, out, _ = run(capsys, "seed", "--data-dir", str(data_dir))
    assert (code, out.startswith("nothing to create")) == (0, True)


def test_importing_the_cli_loads_no_service() -> None:
    code = "import sys, mpt.cli\nprint(sorted(m for m in sys.modules if m.split('.')[0] in " \
        "{'api', 'audio_engine', 'fastapi', 'sqlalchemy', 'uvicorn'}))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=REPO)
    assert proc.stdout.strip() == "[]"


# --- mpt up, mpt api ----------------------------------------------------------------------


def api_child_env() -> dict[str, str]:
    return child_env({"MPT_ENGINE__SHUTDOWN_GRACE_S": "3"})


@pytest.fixture
def up_api_only(tmp_path: Path) -> Iterator[Child]:
    child = Child(
        ["-m", "mpt.cli", "up", "--no-engine", "--api-port", "0",
         "--data-dir", str(tmp_path / "data")],
        env=api_child_env(), cwd=tmp_path,
    )  # fmt: skip
    try:
        yield child
    finally:
        stop_gracefully(child)


API_LINE = r"^api\s+(http://127\.0\.0\.1:(\d+)), docs http://127\.0\.0\.1:\d+/docs \(pid (\d+)\)$"


def test_mpt_up_serves_the_api_and_stops_on_sigterm(up_api_only: Child) -> None:
    child = up_api_only
    line = read_until(child, API_LINE)
    url = line.group(1)
    hint = read_until(child, r"^The REST API: (\S+)").group(1)
    assert hint == f"{url}/docs"
    with httpx.Client(base_url=url, timeout=10.0) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").status_code == 200
        assert http.get("/docs").status_code == 200
    child.proc.send_signal(signal.SIGTERM)
    assert child.finish(timeout_s=30) == 0
    err = child.stderr()
    assert "mpt up: stopped" in err
    assert '"logger": "api.access"' in err  # the API's JSON access log, passed through


def test_mpt_api_runs_in_the_foreground(tmp_path: Path) -> None:
    child = Child(["-m", "mpt.cli", "api", "--port", "0", "--data-dir", str(tmp_path / "data")],
                  env=api_child_env(), cwd=tmp_path)
    try:
        line = read_until(child, r"^mpt api: listening on (http://127\.0\.0\.1:\d+) \(docs ")
        with httpx.Client(base_url=line.group(1), timeout=10.0) as http:
            assert http.get("/healthz").status_code == 200
        child.proc.send_signal(signal.SIGINT)
        assert child.finish(timeout_s=30) == 0
    finally:
        child.close()


def test_mpt_up_checks_the_api_port_and_its_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "up", "--no-engine", "--api-port", str(port),
                           "--data-dir", str(tmp_path / "d"))
    assert code == 1
    assert_one_error_line(err, f"cannot listen on 127.0.0.1:{port}", "--api-port")

    code, _, err = run(capsys, "up", "--port", "8123", "--api-port", "8123")
    assert code == 2
    assert_one_error_line(err, "--port and --api-port are both 8123")

    code, _, err = run(capsys, "up", "--no-engine", "--no-api")
    assert code == 2
    assert_one_error_line(err, "nothing to run")

    code, _, err = run(capsys, "up", "--no-engine", "--host", "0.0.0.0", "--api-port", "0")
    assert code == 2
    assert_one_error_line(err, "--host 0.0.0.0 is not a loopback address", "the API",
                          "--allow-remote")


def test_api_line_from_the_ready_file() -> None:
    info = {"host": "0.0.0.0", "port": 8000, "url": "http://127.0.0.1:8000", "workers": 1}
    assert _describe_api(info) == "http://127.0.0.1:8000, docs http://127.0.0.1:8000/docs"
    assert _describe_api({**info, "workers": 3}, docs=False) == "http://127.0.0.1:8000, 3 workers"
    assert json.loads(json.dumps(info)) == info


def test_settings_reach_the_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``MPT_DATABASE__URL`` wins over the data directory's SQLite file."""
    target = tmp_path / "elsewhere.sqlite3"
    url = f"sqlite+aiosqlite:///{target}"
    assert Settings(database=DatabaseSettings(url=url)).database.url == url
    set_env(monkeypatch, "MPT_DATABASE__URL", url)
    code, out, _ = run(capsys, "db", "upgrade", "--data-dir", str(tmp_path / "data"))
    assert code == 0 and str(target) in out
    assert "users" in tables(target)
    assert not (tmp_path / "data" / "api.sqlite3").exists()
    assert os.environ["MPT_DATABASE__URL"] == url
