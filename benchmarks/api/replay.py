"""``python -m benchmarks.api.replay``: the API load mix replayed in-process, for finding where
the server's CPU goes and for alternating two commits on a noisy host.

The locust benchmark (:mod:`benchmarks.api.run_api_load`) measures the served app: uvicorn,
HTTP, a separate load generator. This replays the same mix (the locustfile's tasks and
weights, :data:`STUDENT_MIX` and :data:`TEACHER_MIX`) as ``--users`` coroutines calling the
ASGI app directly in this process, on the same seeding (a fresh PostgreSQL database, Redis
under a key prefix of the run's own): no socket, no HTTP parsing, no client process, so the
process's CPU per request is the app's (plus a thin ASGI caller), and py-spy or cProfile see
whole coroutine stacks. The app is built as ``api.serve`` builds it (its settings, JSON
access log, garbage-collector tuning). Each ``--phases`` entry runs ``--duration-s`` seconds:
``mix`` (the whole mix) or one request kind (:data:`KINDS`), and prints the CPU milliseconds
per request (``time.process_time`` over the phase) and requests per CPU-second.

On stop 27-28's hosts it gave the locust run's requests per core to within a few per cent.
Phases run one after another on the same data: the writes of a ``create`` or ``sync`` phase
grow the students' histories, so later phases of reads cost more than in ``mix``.

Examples::

    python -m benchmarks.api.replay                       # the mix, 3 x 10 s
    python -m benchmarks.api.replay --phases create_session sync_batch --duration-s 5
    python -m benchmarks.api.replay --profile /tmp/prof   # cProfile of each phase's last run
    taskset -c 1 python -m benchmarks.api.replay          # pinned: steadier numbers
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.api.bodies import session_body
from benchmarks.api.run_api_load import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    PASSWORD,
    drop_redis_keys,
    fresh_database,
    seed_accounts,
    seed_history,
)

__all__ = ["KINDS", "STUDENT_MIX", "TEACHER_MIX", "PhaseResult", "call", "main", "replay"]

API = "/api/v1"
# the locustfile's tasks and weights (tests/benchmarks/test_api_replay.py holds them equal)
STUDENT_MIX: dict[str, int] = {
    "create_session": 3, "list_sessions": 5, "get_session": 4, "sync_batch": 1,
    "read_progress": 2, "minutes_chart": 1, "accuracy_chart": 1, "leaderboard": 2,
    "points": 1, "streak": 1,
}
TEACHER_MIX: dict[str, int] = {
    "dashboard": 3, "student_sessions": 1, "student_progress": 1, "student_chart": 1,
}
KINDS = (*STUDENT_MIX, *TEACHER_MIX)
TEACHER_SHARE = 10  # one user in ten is a teacher (the locustfile's weights 9 : 1)


async def call(
    app: Any, method: str, target: str, *, token: str | None = None,
    body: Any = None, headers: Sequence[tuple[str, str]] = (),
) -> tuple[int, bytes]:
    """One request straight to the ASGI ``app``: its status and body."""
    raw = json.dumps(body).encode() if body is not None else b""
    path, _, query = target.partition("?")
    head = [(b"host", b"replay"), (b"content-length", str(len(raw)).encode())]
    if raw:
        head.append((b"content-type", b"application/json"))
    if token:
        head.append((b"authorization", f"Bearer {token}".encode()))
    head += [(k.lower().encode(), v.encode()) for k, v in headers]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "headers": head, "client": ("127.0.0.1", 50000),
        "server": ("replay", 80),
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the app answers
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


@dataclass
class _User:
    token: str
    user_id: str
    teacher: bool
    sessions: list[str] = field(default_factory=list)
    students: list[str] = field(default_factory=list)


class ReplayError(RuntimeError):
    """A request of the replay got another status than the locustfile expects."""


async def _request(app: Any, kind: str, user: _User) -> None:
    """One task of the locustfile, as its user runs it (and checked as it checks it)."""
    token, me = user.token, user.user_id
    if kind in ("get_session", "student_sessions", "student_progress", "student_chart"):
        pool = user.sessions if kind == "get_session" else user.students
        if not pool:  # as the locustfile: first make what there is to read
            kind = "create_session" if kind == "get_session" else "dashboard"
    expected, headers, body = 200, (), None
    method = "GET"
    if kind == "create_session":
        method, target, body, expected = "POST", f"{API}/sessions", session_body(), 201
    elif kind == "list_sessions":
        target = f"{API}/sessions?limit=20"
    elif kind == "get_session":
        target = f"{API}/sessions/{random.choice(user.sessions)}"
    elif kind == "sync_batch":
        now = datetime.now(UTC).isoformat()
        sessions = [{**session_body(session_id=str(uuid.uuid4())), "updated_at": now}
                    for _ in range(random.randint(2, 4))]
        method, target, body = "POST", f"{API}/sync/batch", {"sessions": sessions}
        headers = (("Idempotency-Key", uuid.uuid4().hex),)
    elif kind == "read_progress":
        target = f"{API}/students/{me}/progress"
    elif kind in ("minutes_chart", "accuracy_chart"):
        target = f"{API}/students/{me}/charts/{kind.split('_')[0]}.svg"
    elif kind == "leaderboard":
        target = f"{API}/leaderboard?limit=20"
    elif kind in ("points", "streak"):
        target = f"{API}/students/{me}/{kind}"
    elif kind == "dashboard":
        target = f"{API}/teachers/me/dashboard"
    else:
        student = random.choice(user.students)
        target = {
            "student_sessions": f"{API}/sessions?student_id={student}&limit=20",
            "student_progress": f"{API}/students/{student}/progress",
            "student_chart": f"{API}/students/{student}/charts/minutes.svg",
        }[kind]
    status, raw = await call(app, method, target, token=token, body=body, headers=headers)
    if status != expected:
        raise ReplayError(f"{method} {target}: {status} {raw[:300]!r}")
    if kind == "create_session":
        user.sessions.append(json.loads(raw)["id"])
        del user.sessions[:-50]
    elif kind == "sync_batch":
        bad = [r for r in json.loads(raw)["results"] if r["status"] != "created"]
        if bad:
            raise ReplayError(f"sync results: {bad[:2]}")
    elif kind == "dashboard" and not user.students:
        user.students = [str(s["student_id"]) for s in json.loads(raw)["students"]]


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One phase: its name, requests made and the process's CPU seconds over it."""

    phase: str
    requests: int
    cpu_s: float

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000.0 * self.cpu_s / self.requests if self.requests else float("nan")

    @property
    def requests_per_cpu_s(self) -> float:
        return self.requests / self.cpu_s if self.cpu_s > 0 else float("nan")


async def _run_phase(app: Any, users: list[_User], phase: str, duration_s: float) -> int:
    done = 0
    stop = time.monotonic() + duration_s

    async def run(user: _User) -> None:
        nonlocal done
        mix = TEACHER_MIX if user.teacher else STUDENT_MIX
        kinds, weights = list(mix), list(mix.values())
        if phase != "mix" and phase not in mix:
            return  # a phase of the other role's requests: this user sits it out
        while time.monotonic() < stop:
            kind = random.choices(kinds, weights)[0] if phase == "mix" else phase
            await _request(app, kind, user)
            done += 1

    await asyncio.gather(*(run(user) for user in users))
    return done


async def replay(
    url: str, *, redis_url: str | None, redis_prefix: str, data_dir: Path,
    phases: Sequence[str], duration_s: float, users: int, repeats: int,
    students: int, teachers: int, history_sessions: int, history_days: int,
    stream_share: float, log_level: str, profile_dir: Path | None = None,
    report: Any = print, as_served: bool = True,
) -> list[PhaseResult]:
    """Seed ``url`` (a fresh, migrated database), build the app on it and run the phases
    ``repeats`` times; ``report`` gets a line per phase. ``as_served`` sets this process's
    logging (JSON lines on stderr at ``log_level``) and garbage collector as ``api.serve``
    does (both process-wide: a test leaves them alone)."""
    from api.main import create_app
    from api.serve import configure_logging, tune_gc
    from mpt.settings import Settings

    accounts = await seed_accounts(url, students=students, teachers=teachers)
    await seed_history(url, accounts, sessions_each=history_sessions, days=history_days,
                       stream_share=stream_share)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        database={"url": url, "auto_migrate": False},
        redis={"url": redis_url, "key_prefix": redis_prefix},
        api={"rate_limits": {"enabled": False}},
    )
    app = create_app(settings)
    if as_served:
        configure_logging(log_level)
    results: list[PhaseResult] = []
    async with app.router.lifespan_context(app):
        people: list[_User] = []
        for i in range(users):
            teacher = i % TEACHER_SHARE == TEACHER_SHARE - 1 and bool(accounts["teachers"])
            emails = accounts["teachers" if teacher else "students"]
            email = emails[i % len(emails)]
            status, raw = await call(app, "POST", f"{API}/auth/login",
                                     body={"email": email, "password": PASSWORD})
            if status != 200:
                raise ReplayError(f"login of {email}: {status} {raw[:200]!r}")
            people.append(_User(json.loads(raw)["access_token"], accounts["ids"][email],
                                teacher=teacher))
        if as_served:
            tune_gc()
        for person in people:  # warm: each user's first requests (and the route caches)
            mix = TEACHER_MIX if person.teacher else STUDENT_MIX
            for kind in mix:
                await _request(app, kind, person)
        for repeat in range(repeats):
            for phase in phases:
                profiler = None
                if profile_dir is not None and repeat == repeats - 1:
                    import cProfile

                    profiler = cProfile.Profile()
                    profiler.enable()
                cpu0 = time.process_time()
                done = await _run_phase(app, people, phase, duration_s)
                result = PhaseResult(phase, done, time.process_time() - cpu0)
                if profiler is not None and profile_dir is not None:
                    profiler.disable()
                    profile_dir.mkdir(parents=True, exist_ok=True)
                    profiler.dump_stats(profile_dir / f"{phase}.prof")
                results.append(result)
                report(f"run {repeat + 1} {phase:17s} {done:6d} requests  "
                       f"{result.cpu_ms_per_request:6.3f} ms CPU a request  "
                       f"{result.requests_per_cpu_s:5.0f} requests per CPU-second")
    return results


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.api.replay",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--phases", nargs="+", default=["mix"], choices=("mix", *KINDS),
                   help="phases in order: mix, or one request kind each (default: mix)")
    p.add_argument("--duration-s", type=float, default=10.0, help="seconds per phase")
    p.add_argument("--repeats", type=int, default=3, help="runs of the phases (default 3)")
    p.add_argument("--users", type=int, default=32, help="concurrent users (default 32)")
    p.add_argument("--students", type=int, default=200)
    p.add_argument("--teachers", type=int, default=10)
    p.add_argument("--history-sessions", type=int, default=30)
    p.add_argument("--history-days", type=int, default=28)
    p.add_argument("--stream-share", type=float, default=0.3)
    p.add_argument("--postgres-url", default=DEFAULT_PG,
                   help="a database on the PostgreSQL server to use (a new one is created)")
    p.add_argument("--redis-url", default=DEFAULT_REDIS, help="'' runs without Redis")
    p.add_argument("--log-level", default="info",
                   help="the app's log level (info: the JSON access log on, as served)")
    p.add_argument("--profile", type=Path, default=None, metavar="DIR",
                   help="write a cProfile of each phase's last run to DIR/<phase>.prof")
    args = p.parse_args(argv)
    if args.duration_s <= 0 or args.repeats < 1 or args.users < 1:
        p.error("--duration-s must be > 0, --repeats and --users at least 1")
    if args.students < 1:
        p.error("--students must be at least 1")
    teacher_phases = sorted(set(args.phases) & set(TEACHER_MIX))
    if teacher_phases and (args.users < TEACHER_SHARE or args.teachers < 1):
        p.error(f"phases {', '.join(teacher_phases)} are teachers' requests: they need "
                f"--teachers >= 1 and --users >= {TEACHER_SHARE} (one user in "
                f"{TEACHER_SHARE} is a teacher)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    import uvloop

    prefix = f"mpt-replay-{uuid.uuid4().hex[:8]}"
    try:
        with fresh_database(args.postgres_url) as url, \
                tempfile.TemporaryDirectory(prefix="mpt-replay-") as data_dir:
            uvloop.run(replay(
                url, redis_url=args.redis_url or None, redis_prefix=prefix,
                data_dir=Path(data_dir), phases=args.phases, duration_s=args.duration_s,
                users=args.users, repeats=args.repeats, students=args.students,
                teachers=args.teachers, history_sessions=args.history_sessions,
                history_days=args.history_days, stream_share=args.stream_share,
                log_level=args.log_level, profile_dir=args.profile,
                report=lambda line: print(line, flush=True),
            ))
    finally:
        if args.redis_url:
            drop_redis_keys(args.redis_url, prefix)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
