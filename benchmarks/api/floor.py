"""The per-request CPU floor of the API, route by route, measured with wrk.

``python -m benchmarks.api.floor [--duration-s 8] [--connections 16] [--students 100]``

Where does the load benchmark's ~100 requests/s per core go? Route by route, on the load
benchmark's data (its own seeding: students with 30 sessions over 28 days, teachers, stream
summaries) in a fresh PostgreSQL database: the server (``python -m api``, rate limits off,
Redis for the leaderboard) pinned to CPU 0, Debian's ``wrk`` pinned to CPU 1, and for each
GET route of the mix the requests/s and the server's CPU seconds from /proc, so requests/s
per server core and CPU ms per request. ``/healthz`` is the floor of uvicorn + FastAPI + our
middleware (no database, no token); ``/users/me`` adds token verification, dependency
injection and a few primary-key reads; the mix's routes add their queries and the progress
rules. Writes the table between
``<!-- api-floor:start -->`` and ``<!-- api-floor:end -->`` in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.api.run_api_load import (
    DEFAULT_REDIS,
    cpu_by_pid,
    cpu_delta,
    drop_redis_keys,
    fresh_database,
    seed_accounts,
    seed_history,
    start_server,
    stop_server,
)

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
START, END = "<!-- api-floor:start -->", "<!-- api-floor:end -->"


async def _seed(url: str, data_dir: Path, *, students: int) -> dict[str, str]:
    """The load benchmark's data (``students`` students with 30 sessions over 28 days, 10
    teachers, a stream summary on 30 % of the sessions); the tokens and ids the routes
    need: ``student``, ``teacher`` (tokens), ``student_id``, ``session_id``."""
    from api.deps import API_AUDIENCE
    from mpt.settings import Settings
    from mpt.tokens import sign_token, signing_key

    accounts = await seed_accounts(url, students=students, teachers=10)
    await seed_history(url, accounts, sessions_each=30, days=28, stream_share=0.3)
    key = signing_key(Settings(data_dir=data_dir))
    student_id = accounts["ids"][accounts["students"][0]]
    teacher_id = accounts["ids"][accounts["teachers"][0]]
    return {
        "student": sign_token(key, sub=student_id, role="student",
                              audience=[API_AUDIENCE, "mpt-engine"], ttl_s=3600),
        "teacher": sign_token(key, sub=teacher_id, role="teacher",
                              audience=[API_AUDIENCE, "mpt-engine"], ttl_s=3600),
        "student_id": student_id,
    }


def _first_session(base_url: str, token: str) -> str:
    import httpx

    answer = httpx.get(f"{base_url}/api/v1/sessions?limit=1",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["items"][0]["id"])


def _wrk(url: str, token: str | None, duration_s: int, connections: int) -> float:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration_s}s"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out:
        raise RuntimeError(f"wrk failed or got errors on {url}:\n{out}")
    return float(match.group(1))


def _git() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                           text=True, check=False).stdout.strip()
    return f"{head or '?'}{' (plus uncommitted changes)' if dirty else ''}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.api.floor")
    ap.add_argument("--duration-s", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--students", type=int, default=100)
    ap.add_argument("--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis-url", default=DEFAULT_REDIS, help="'' = no Redis")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("floor: error: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("floor: error: needs 2 CPUs (server on 0, wrk on 1)", file=sys.stderr)
        return 2
    rows: list[tuple[str, float, float]] = []
    with fresh_database(args.postgres_url) as url, tempfile.TemporaryDirectory() as tmp:
        # the server's data directory holds the key pair its tokens are checked with
        seed = asyncio.run(_seed(url, Path(tmp) / "data", students=args.students))
        prefix = f"mpt-floor-{uuid.uuid4().hex[:8]}"
        server = start_server(url, Path(tmp), workers=1, log_level="warning", cpus={0},
                              redis_url=args.redis_url or None, redis_prefix=prefix)
        try:
            student, teacher, sid = seed["student"], seed["teacher"], seed["student_id"]
            session_id = _first_session(server.url, student)
            api = "/api/v1"
            routes = [
                ("GET /healthz (no database, no token)", "/healthz", None),
                ("GET /users/me", f"{api}/users/me", student),
                ("GET /sessions/{id}", f"{api}/sessions/{session_id}", student),
                ("GET /sessions?limit=20", f"{api}/sessions?limit=20", student),
                ("GET /leaderboard?limit=20", f"{api}/leaderboard?limit=20", student),
                ("GET /students/{id}/streak", f"{api}/students/{sid}/streak", student),
                ("GET /students/{id}/points", f"{api}/students/{sid}/points", student),
                ("GET /students/{id}/progress", f"{api}/students/{sid}/progress", student),
                ("GET /students/{id}/charts/minutes.svg",
                 f"{api}/students/{sid}/charts/minutes.svg", student),
                ("GET /students/{id}/charts/accuracy.svg",
                 f"{api}/students/{sid}/charts/accuracy.svg", student),
                ("GET /teachers/me/dashboard", f"{api}/teachers/me/dashboard", teacher),
            ]
            for name, path, auth in routes:
                before = cpu_by_pid([server.proc.pid])
                rps = _wrk(server.url + path, auth, args.duration_s, args.connections)
                cpu_s = cpu_delta(before, cpu_by_pid([server.proc.pid]))
                rows.append((name, rps, cpu_s / args.duration_s))
                print(f"{name}: {rps:.0f} requests/s", file=sys.stderr)
        finally:
            stop_server(server)
            if args.redis_url:
                drop_redis_keys(args.redis_url, prefix)
    lines = [
        START,
        "<!-- Written by `python -m benchmarks.api.floor`; rewritten on each run. -->",
        "## API per-request floor (wrk, one server core)",
        "",
        f"- Command: `python -m benchmarks.api.floor --duration-s {args.duration_s} "
        f"--connections {args.connections} --students {args.students}`; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, git {_git()}",
        f"- The load benchmark's data on a fresh PostgreSQL database ({args.students} students "
        "with 30 sessions each over 28 days, 10 teachers, 30 % of the sessions with a stream "
        "summary), Redis for the leaderboard; every GET route of the load mix, as the first "
        "student or teacher. The server (`python -m api`, 1 worker, rate limits off, JSON "
        "access log) on CPU 0, wrk on CPU 1.",
        "",
        "| route | requests/s | server CPU, cores | requests/s per server core "
        "| CPU ms per request |",
        "|---|---|---|---|---|",
    ]
    for name, rps, cores in rows:
        per_core = rps / cores if cores > 0 else float("nan")
        lines.append(f"| `{name}` | {rps:.0f} | {cores:.2f} | {per_core:.0f} | "
                     f"{1000 / per_core:.2f} |")
    lines.append(END)
    block = "\n".join(lines)
    text = RESULTS.read_text()
    if START in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
