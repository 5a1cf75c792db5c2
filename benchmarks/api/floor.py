"""The per-request CPU floor of the API, route by route, measured with wrk.

``python -m benchmarks.api.floor [--duration-s 8] [--connections 16] [--students 100]
[--routes NAME,...] [--profile-dir DIR] [--no-results]``

Where does the load benchmark's ~100 requests/s per core go? Route by route, on the load
benchmark's data (its own seeding: students with 30 sessions over 28 days, teachers, stream
summaries) in a fresh PostgreSQL database: the server (``python -m api``, rate limits off,
Redis for the leaderboard) pinned to CPU 0, Debian's ``wrk`` pinned to CPU 1, and for each
GET route of the mix the requests/s and the server's CPU seconds from /proc, so requests/s
per server core and CPU ms per request. ``/healthz`` is the floor of uvicorn + FastAPI + our
middleware (no database, no token); ``/users/me`` adds token verification, dependency
injection and a few primary-key reads; the mix's routes add their queries and the progress
rules; ``POST /sessions`` and ``POST /sync/batch`` (three new sessions under a fresh
Idempotency-Key) are the mix's writes, sent by a wrk Lua script. ``--routes`` picks some by
name (``health, me, session, list, leaderboard, streak, points, progress, minutes,
accuracy, dashboard, create, sync``), ``--profile-dir`` records each route's window with
py-spy (collapsed stacks, one file per route: where a route's CPU goes), ``--no-results``
leaves RESULTS.md alone (for a comparison, run it from a worktree of the other commit).
Writes the table between ``<!-- api-floor:start -->`` and ``<!-- api-floor:end -->`` in
benchmarks/RESULTS.md.
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
ROUTE_NAMES = ("health", "me", "session", "list", "leaderboard", "streak", "points", "progress",
               "minutes", "accuracy", "dashboard", "create", "sync")
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


# The mix's writes, one request per call of ``request()`` (wrk's Lua): a session as the
# load's students log them (started within the last four weeks), and a sync batch of three
# new sessions under a fresh Idempotency-Key.
_LUA_COMMON = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(os.time())
counter = 0
local function at(n, extra_s)
  return os.date("!%Y-%m-%dT%H:%M:%S+00:00", os.time() - 3600 - (n * 977) % (27 * 86400) + extra_s)
end
local function uuid4()
  return string.format("%08x-%04x-4%03x-%04x-%08x%04x", math.random(0, 0x7fffffff),
    math.random(0, 0xffff), math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff),
    math.random(0, 0x7fffffff), math.random(0, 0xffff))
end
local function fields(n)
  return string.format('"focus":"Scales in thirds","started_at":"%s","ended_at":"%s",' ..
    '"self_rating":4,"target_bpm":96,"mode":"normal","tag_ids":[],' ..
    '"segments":[{"label":"A","start_bar":1,"end_bar":8,"click_count":3}]', at(n, 0), at(n, 1800))
end
"""
_LUA = {
    "create": _LUA_COMMON + r"""
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, "{" .. fields(counter) .. "}")
end
""",
    "sync": _LUA_COMMON + r"""
request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, 3 do
    parts[i] = '{"id":"' .. uuid4() .. '","updated_at":"' .. at(0, 0) .. '",' ..
      fields(counter * 3 + i) .. "}"
  end
  wrk.headers["Idempotency-Key"] = string.format("%08x%08x", math.random(0, 0x7fffffff), counter)
  return wrk.format(nil, nil, nil, '{"sessions":[' .. table.concat(parts, ",") .. "]}")
end
""",
}


def _lua(name: str, directory: Path) -> Path:
    path = directory / f"{name}.lua"
    path.write_text(_LUA[name])
    return path


def _wrk(url: str, token: str | None, duration_s: int, connections: int,
         script: Path | None = None) -> float:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration_s}s"]
    if script is not None:
        cmd += ["-s", str(script)]
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


def _profile(pid: int, duration_s: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy on the server for one route's window (on wrk's core)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        ["taskset", "-c", "1", py_spy, "record", "--pid", str(pid), "--duration",
         str(duration_s), "--rate", "200", "--nonblocking", "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.api.floor")
    ap.add_argument("--duration-s", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--students", type=int, default=100)
    ap.add_argument("--routes", default="", help="route names, comma-separated (default: all)")
    ap.add_argument("--profile-dir", type=Path, default=None,
                    help="py-spy each route's window into DIR/<route>.txt (collapsed stacks)")
    ap.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    ap.add_argument("--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis-url", default=DEFAULT_REDIS, help="'' = no Redis")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("floor: error: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("floor: error: needs 2 CPUs (server on 0, wrk on 1)", file=sys.stderr)
        return 2
    wanted = [name.strip() for name in args.routes.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(ROUTE_NAMES))
    if unknown:
        print(f"floor: error: unknown route {', '.join(unknown)}; known: "
              f"{', '.join(ROUTE_NAMES)}", file=sys.stderr)
        return 2
    if args.profile_dir is not None:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
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
            # (name, label, path, token, wrk script)
            routes: list[tuple[str, str, str, str | None, str | None]] = [
                ("health", "GET /healthz (no database, no token)", "/healthz", None, None),
                ("me", "GET /users/me", f"{api}/users/me", student, None),
                ("session", "GET /sessions/{id}", f"{api}/sessions/{session_id}", student, None),
                ("list", "GET /sessions?limit=20", f"{api}/sessions?limit=20", student, None),
                ("leaderboard", "GET /leaderboard?limit=20", f"{api}/leaderboard?limit=20",
                 student, None),
                ("streak", "GET /students/{id}/streak", f"{api}/students/{sid}/streak", student,
                 None),
                ("points", "GET /students/{id}/points", f"{api}/students/{sid}/points", student,
                 None),
                ("progress", "GET /students/{id}/progress", f"{api}/students/{sid}/progress",
                 student, None),
                ("minutes", "GET /students/{id}/charts/minutes.svg",
                 f"{api}/students/{sid}/charts/minutes.svg", student, None),
                ("accuracy", "GET /students/{id}/charts/accuracy.svg",
                 f"{api}/students/{sid}/charts/accuracy.svg", student, None),
                ("dashboard", "GET /teachers/me/dashboard", f"{api}/teachers/me/dashboard",
                 teacher, None),
                ("create", "POST /sessions (one segment)", f"{api}/sessions", student, "create"),
                ("sync", "POST /sync/batch (three new sessions)", f"{api}/sync/batch", student,
                 "sync"),
            ]
            assert tuple(r[0] for r in routes) == ROUTE_NAMES
            for name, label, path, auth, script_name in routes:
                if wanted and name not in wanted:
                    continue
                script = _lua(script_name, Path(tmp)) if script_name else None
                _wrk(server.url + path, auth, 1, args.connections, script)  # warm
                spy = (_profile(server.proc.pid, args.duration_s, args.profile_dir / f"{name}.txt")
                       if args.profile_dir is not None else None)
                before = cpu_by_pid([server.proc.pid])
                rps = _wrk(server.url + path, auth, args.duration_s, args.connections, script)
                cpu_s = cpu_delta(before, cpu_by_pid([server.proc.pid]))
                if spy is not None:
                    spy.wait()
                rows.append((label, rps, cpu_s / args.duration_s))
                print(f"{label}: {rps:.0f} requests/s, {1000 * cpu_s / args.duration_s / rps:.2f}"
                      " ms of server CPU each", file=sys.stderr)
        finally:
            stop_server(server)
            if args.redis_url:
                drop_redis_keys(args.redis_url, prefix)
    if args.no_results:
        return 0
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
        "summary), Redis for the leaderboard; every GET route of the load mix and its two "
        "writes (wrk Lua scripts), as the first student or teacher. The server (`python -m "
        "api`, 1 worker, rate limits off, log level warning: no access log) on CPU 0, wrk on "
        "CPU 1.",
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
