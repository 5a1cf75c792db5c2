"""The per-request CPU floor of the API, route by route, measured with wrk.

``python -m benchmarks.api.floor [--duration-s 8] [--connections 16]``

Where does the load benchmark's ~100 requests/s per core go? This separates the layers: a
fresh PostgreSQL database with one student and one session, the server (``python -m api``,
rate limits off) pinned to CPU 0, Debian's ``wrk`` pinned to CPU 1, and for each route the
requests/s and the server's CPU seconds from /proc, so requests/s per server core and CPU ms
per request. ``/healthz`` is the floor of uvicorn + FastAPI + our middleware (no database,
no token); the authenticated reads add token verification, dependency injection and their
SQL round trips through SQLAlchemy and asyncpg. Writes the table between
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.api.run_api_load import (
    cpu_by_pid,
    cpu_delta,
    fresh_database,
    start_server,
    stop_server,
)

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
START, END = "<!-- api-floor:start -->", "<!-- api-floor:end -->"


async def _seed(url: str, data_dir: Path) -> tuple[str, str, str]:
    """One student with one session and a stream summary; (token, user id, session id)."""
    from api.accounts.models import StudentProfile, User
    from api.db import make_engine, make_sessionmaker, new_id
    from api.deps import API_AUDIENCE
    from api.metrics.hooks import sessions_written
    from api.practice.changes import next_change_seq
    from api.practice.models import PracticeSession
    from mpt.settings import DatabaseSettings, Settings
    from mpt.tokens import sign_token, signing_key

    settings = Settings(data_dir=data_dir, database=DatabaseSettings(url=url))
    engine = make_engine(settings)
    try:
        user_id, session_id = new_id(), new_id()
        async with make_sessionmaker(engine)() as db, db.begin():
            db.add(User(id=user_id, email="floor@example.com", role="student",
                        display_name="Floor", password_hash=None))
            await db.flush()
            db.add(StudentProfile(user_id=user_id))
            seq = await next_change_seq(db, user_id)
            start = datetime.now(UTC) - timedelta(hours=2)
            row = PracticeSession(id=session_id, student_id=user_id, started_at=start,
                                  ended_at=start + timedelta(minutes=30), accuracy_pct=80.0,
                                  target_bpm=90.0, change_seq=seq)
            db.add(row)
            await db.flush()
            await sessions_written(db, [row])
    finally:
        await engine.dispose()
    token = sign_token(signing_key(settings), sub=str(user_id), role="student",
                       audience=[API_AUDIENCE, "mpt-engine"], ttl_s=3600)
    return token, str(user_id), str(session_id)


def _wrk(url: str, token: str | None, duration_s: int, connections: int) -> float:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration_s}s"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out:
        raise RuntimeError(f"wrk failed or got errors on {url}:\n{out}")
    return float(match.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.api.floor")
    ap.add_argument("--duration-s", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
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
        token, user_id, session_id = asyncio.run(_seed(url, Path(tmp) / "data"))
        server = start_server(url, Path(tmp), workers=1, log_level="warning", cpus={0})
        try:
            routes = [
                ("GET /healthz (no database, no token)", "/healthz", None),
                ("GET /api/v1/users/me", "/api/v1/users/me", token),
                ("GET /api/v1/sessions/{id}", f"/api/v1/sessions/{session_id}", token),
                ("GET /api/v1/sessions?limit=20", "/api/v1/sessions?limit=20", token),
                ("GET /api/v1/students/{id}/points", f"/api/v1/students/{user_id}/points",
                 token),
            ]
            for name, path, auth in routes:
                before = cpu_by_pid([server.proc.pid])
                rps = _wrk(server.url + path, auth, args.duration_s, args.connections)
                cpu_s = cpu_delta(before, cpu_by_pid([server.proc.pid]))
                rows.append((name, rps, cpu_s / args.duration_s))
        finally:
            stop_server(server)
    lines = [
        START,
        "<!-- Written by `python -m benchmarks.api.floor`; rewritten on each run. -->",
        "## API per-request floor (wrk, one server core)",
        "",
        f"- Command: `python -m benchmarks.api.floor --duration-s {args.duration_s} "
        f"--connections {args.connections}`; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "- One student, one session on a fresh PostgreSQL database; the server "
        "(`python -m api`, 1 worker, rate limits off, JSON access log) on CPU 0, wrk on CPU 1.",
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
