"""The in-process replay of the API load mix (benchmarks/api/replay.py): the same tasks and
weights as the locustfile, a short run on the real PostgreSQL and Redis, and a failed
request stopping it."""

from __future__ import annotations

import ast
import asyncio
import uuid
from pathlib import Path

import pytest

from benchmarks.api import replay as rp
from benchmarks.api.run_api_load import drop_redis_keys, fresh_database
from tests._support.services import require_postgres, require_redis

LOCUSTFILE = Path(rp.__file__).with_name("locustfile.py")


def _task_weights(class_name: str) -> dict[str, int]:
    """The ``@task(n)`` methods of a locustfile user class (read, not imported: importing
    locust patches the standard library for gevent)."""
    tree = ast.parse(LOCUSTFILE.read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    weights = {}
    for node in cls.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "task":
                weights[node.name] = deco.args[0].value if deco.args else 1  # type: ignore[attr-defined]
    return weights


def test_the_replay_runs_the_locustfiles_tasks_with_their_weights() -> None:
    assert _task_weights("StudentUser") == rp.STUDENT_MIX
    assert _task_weights("TeacherUser") == rp.TEACHER_MIX


def test_a_short_replay_runs_its_phases_on_the_real_services(tmp_path: Path) -> None:
    """Seeded, logged in, warmed up with every kind of request of each user's role (a
    request answered otherwise than the locustfile expects stops it: below), then each
    phase timed and profiled."""
    server = require_postgres()
    redis_url = require_redis()
    prefix = f"mpt-test-replay-{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    try:
        with fresh_database(server) as url:
            results = asyncio.run(rp.replay(
                url, redis_url=redis_url, redis_prefix=prefix, data_dir=tmp_path,
                phases=["mix", "sync_batch", "student_chart"], duration_s=0.4, users=10,
                repeats=1, students=3, teachers=1, history_sessions=2, history_days=7,
                stream_share=0.5, log_level="warning", profile_dir=tmp_path / "prof",
                report=lines.append, as_served=False,
            ))
    finally:
        drop_redis_keys(redis_url, prefix)
    assert [r.phase for r in results] == ["mix", "sync_batch", "student_chart"]
    assert all(r.requests > 0 and r.cpu_s > 0 for r in results), results
    assert all(r.cpu_ms_per_request > 0 and r.requests_per_cpu_s > 0 for r in results)
    assert len(lines) == 3 and lines[0].startswith("run 1 mix")
    assert sorted(p.name for p in (tmp_path / "prof").iterdir()) == [
        "mix.prof", "student_chart.prof", "sync_batch.prof"]


def test_a_request_answered_otherwise_than_expected_stops_the_replay() -> None:
    """A replay that hides failed requests would time them as cheap ones."""

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        await send({"type": "http.response.start", "status": 401, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b'{"code": "unauthenticated"}'})  # type: ignore[operator]

    user = rp._User(token="t", user_id=str(uuid.uuid4()), teacher=False)
    with pytest.raises(rp.ReplayError, match="401"):
        asyncio.run(rp._request(app, "points", user))


def test_a_phase_no_user_would_run_is_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        rp.main(["--phases", "dashboard", "--users", "4"])
    assert exited.value.code == 2
    assert "teachers' requests" in capsys.readouterr().err
