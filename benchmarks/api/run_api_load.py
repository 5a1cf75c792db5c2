"""Load benchmark of the REST API: requests per second per server core, and latency.

``python -m benchmarks.api.run_api_load [--users N] [--duration-s S] [--workers W]``:

1. creates a fresh PostgreSQL database (``--postgres-url``, default
   ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``) and migrates it;
2. seeds the accounts straight into it: students, teachers with linked students (one
   password hash for all, so seeding is quick);
3. starts ``python -m api --port 0 --workers W`` on it with rate limits off
   (``MPT_API__RATE_LIMITS__ENABLED=false``), pinned to CPU 0 when the machine has 2 or more
   (``--no-pin`` leaves the scheduler free); access logs stay on (JSON to a file);
4. warms it up: every account logs in (locust users mostly reuse these tokens: see the
   locustfile) and every student records ``--seed-sessions`` sessions over HTTP;
5. runs locust headless (``benchmarks/api/locustfile.py``, ``FastHttpUser``) as a separate
   process pinned to the other CPUs, while reading the CPU seconds of the server's process
   tree, of the PostgreSQL server's processes and of locust from ``/proc``; with
   ``--profile-s`` > 0, py-spy samples the server in the middle of the run and the report
   names where its time goes;
6. writes the result into ``benchmarks/RESULTS.md`` between ``<!-- api-load:start -->`` and
   ``<!-- api-load:end -->`` (appended when absent; the rest of the file is untouched), stops
   the server (SIGTERM, expecting exit 0) and drops the database.

Requests per server core = requests completed / CPU seconds the server's processes used over
the same window (so it does not depend on how busy the server was); the target is >= 1,000
per core with p99 <= 100 ms and no failures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.load.serverproc import pin_tree, process_tree, tree_cpu_s

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RESULTS = REPO / "benchmarks" / "RESULTS.md"
BOTTLENECK = REPO / "benchmarks" / "api" / "bottleneck.md"
START = "<!-- api-load:start -->"
END = "<!-- api-load:end -->"
_BLOCK_RE = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
PASSWORD = "benchmark password 123"
TARGET_PER_CORE = 1000.0
TARGET_P99_MS = 100.0
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class RequestStats:
    """One row of locust's ``_stats.csv``."""

    name: str
    count: int
    failures: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class Phase:
    """One locust run against the server: closed loop (``rate_per_user`` 0) or paced."""

    name: str
    users: int
    rate_per_user: float
    rows: list[RequestStats]
    total: RequestStats
    server_cpu_s: float
    postgres_cpu_s: float
    locust_cpu_s: float
    wall_s: float
    failures_sample: list[str] = field(default_factory=list)
    profile: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    loadavg: tuple[str, str] = ("?", "?")

    @property
    def rps(self) -> float:
        return self.total.count / self.wall_s if self.wall_s else 0.0

    @property
    def per_core(self) -> float:
        return self.total.count / self.server_cpu_s if self.server_cpu_s else 0.0

    @property
    def per_core_with_db(self) -> float:
        cpu = self.server_cpu_s + self.postgres_cpu_s
        return self.total.count / cpu if cpu else 0.0

    @property
    def offered(self) -> str:
        if self.rate_per_user <= 0:
            return "closed loop (no wait: each user sends its next request on the answer)"
        return (f"paced: {self.users} users x {self.rate_per_user:.2f} requests/s = "
                f"{self.users * self.rate_per_user:.0f} requests/s offered")


@dataclass
class LoadResult:
    """Everything the report shows."""

    command: str
    started: str
    duration_s: float
    workers: int
    pinned: str
    phases: list[Phase]
    server_exit: int | None
    history: str = ""
    machine: str = ""
    versions: str = ""
    bottleneck: str = ""
    redis: str = ""
    ramp_s: float = 0.0


# --------------------------------------------------------------------------------------------
# The database


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    return f"{url.rpartition('/')[0]}/{name}"


async def _admin(server_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(server_url), timeout=10.0)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, migrated database on the server of ``server_url``; dropped afterwards."""
    from api.migrate import upgrade
    from mpt.settings import Settings

    name = f"mpt_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    url = _with_database(server_url, name)
    try:
        upgrade(Settings(), url=url)
        yield url
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def seed_accounts(url: str, *, students: int, teachers: int) -> dict[str, Any]:
    """Insert the accounts (teachers get the students round robin, actively linked), their
    passwords hashed as the server hashes them (its default argon2id cost)."""
    from api.accounts.models import StudentProfile, TeacherProfile, User
    from api.accounts.passwords import make_hasher
    from api.db import make_sessionmaker, new_id
    from api.teaching.models import TeacherStudentLink
    from mpt.settings import DatabaseSettings, Settings

    settings = Settings(database=DatabaseSettings(url=url))
    from api.db import make_engine

    engine = make_engine(settings)
    password_hash = make_hasher(settings.api.password_hash).hash(PASSWORD)
    run = uuid.uuid4().hex[:6]
    student_ids, teacher_ids = [new_id() for _ in range(students)], [
        new_id() for _ in range(teachers)
    ]
    accounts: dict[str, Any] = {"password": PASSWORD, "students": [], "teachers": [],
                                "ids": {}}
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            for i, uid in enumerate(student_ids):
                email = f"student{i}-{run}@bench.example"
                accounts["students"].append(email)
                accounts["ids"][email] = str(uid)
                db.add(User(id=uid, email=email, role="student", timezone="Europe/Vienna",
                            display_name=f"Student {i}", password_hash=password_hash))
            for i, uid in enumerate(teacher_ids):
                email = f"teacher{i}-{run}@bench.example"
                accounts["teachers"].append(email)
                accounts["ids"][email] = str(uid)
                db.add(User(id=uid, email=email, role="teacher", timezone="UTC",
                            display_name=f"Teacher {i}", password_hash=password_hash))
            await db.flush()
            db.add_all([StudentProfile(user_id=uid, is_minor=False) for uid in student_ids])
            db.add_all([TeacherProfile(user_id=uid) for uid in teacher_ids])
            await db.flush()
            if teacher_ids:
                db.add_all([
                    TeacherStudentLink(teacher_id=teacher_ids[i % len(teacher_ids)],
                                       student_id=uid, status="active")
                    for i, uid in enumerate(student_ids)
                ])
    finally:
        await engine.dispose()
    return accounts


def _timing_report(target_bpm: float, accuracy_pct: float, n_beats: int = 32) -> dict[str, Any]:
    """A stream's timing report: quarter notes at ``target_bpm``, beat k of each bar k ms
    late (the shape of the engine's ``timing`` summary)."""
    period = 60.0 / target_bpm
    notes = [[round(0.5 + k * period + (k % 4) / 1000.0, 4), float(k % 4)]
             for k in range(n_beats)]
    return {
        "target_bpm": target_bpm, "grid_start_s": 0.5, "subdivision": 1,
        "subdivision_inferred": False, "latency_ms": 0.0, "tolerance_ms": 25.0,
        "notes": notes, "accuracy_pct": accuracy_pct, "tempo_bpm_played": target_bpm - 1.0,
        "tempo_error_pct": -0.83, "steadiness_ms": 1.1 + random.random() * 4,
        "drift_bpm_per_min": 0.2, "verdict": "steady", "mood": "happy", "meditation": False,
        "points": 12, "analysed_s": 150.0, "metronome_clicks_removed": 0,
    }


async def seed_history(url: str, accounts: dict[str, Any], *, sessions_each: int, days: int,
                       stream_share: float, pieces: int = 8) -> tuple[int, int]:
    """Give every student ``sessions_each`` practice sessions spread over the last ``days``
    days (one segment on one of ``pieces`` global pieces each), their manual metrics (the
    hook the API runs on every session write) and, for a ``stream_share`` of them, a live
    stream's summary applied as the API's consumer does (metrics with source ``stream``);
    returns ``(sessions, streams)``."""
    from sqlalchemy import update

    from api.accounts.models import User
    from api.db import make_engine, make_sessionmaker, new_id, utcnow
    from api.metrics.hooks import sessions_written
    from api.metrics.service import apply_stream_summary
    from api.practice.models import PracticeSegment, PracticeSession, Tag
    from mpt.events import stream_summary_event
    from mpt.settings import DatabaseSettings, Settings

    engine = make_engine(Settings(database=DatabaseSettings(url=url)))
    maker = make_sessionmaker(engine)
    rng = random.Random(7)
    piece_ids = [new_id() for _ in range(pieces)]
    now = utcnow()
    made = streamed = 0
    try:
        async with maker() as db, db.begin():
            db.add_all([Tag(id=pid, scope="global", kind="piece", name=f"Etude {i + 1}",
                            name_key=f"etude {i + 1}", composer="Czerny", difficulty=3)
                        for i, pid in enumerate(piece_ids)])
        sem = asyncio.Semaphore(6)

        async def one(student: uuid.UUID) -> None:
            nonlocal made, streamed
            async with sem, maker() as db:
                rows: list[PracticeSession] = []
                async with db.begin():
                    for i in range(sessions_each):
                        started = now - timedelta(days=rng.uniform(0, days), hours=1)
                        rows.append(PracticeSession(
                            id=new_id(), student_id=student, focus=rng.choice(
                                ["Scales in thirds", "Etude", "Sight-reading", "Bach"]),
                            started_at=started,
                            ended_at=started + timedelta(minutes=rng.randint(5, 60)),
                            self_rating=rng.randint(1, 5),
                            target_bpm=float(rng.choice([60, 72, 88, 96, 120])),
                            accuracy_pct=round(rng.uniform(60, 99), 1),
                            mode=rng.choice(["normal", "slow", "performance"]),
                            status="active", created_at=now, updated_at=now,
                            client_updated_at=now, change_seq=i + 1,
                        ))
                    db.add_all(rows)
                    await db.flush()
                    db.add_all([PracticeSegment(
                        id=new_id(), session_id=row.id, piece_id=rng.choice(piece_ids),
                        label="A", start_bar=1, end_bar=rng.randint(4, 32),
                        click_count=rng.randint(0, 5), tempo_bpm=row.target_bpm,
                    ) for row in rows])
                    await db.execute(update(User).where(User.id == student)
                                     .values(change_seq=sessions_each))
                    await sessions_written(db, rows)
                for row in rows[: round(len(rows) * stream_share)]:
                    target = row.target_bpm or 96.0
                    event_id, payload = stream_summary_event(
                        stream_id=uuid.uuid4(), user_id=str(student), session_id=row.id,
                        started_at=row.started_at,
                        ended_at=row.started_at + timedelta(seconds=150),
                        summary={"duration_s": 150.0, "tempo_bpm": target - 1.0,
                                 "n_onsets": 32, "n_beats": 32,
                                 "timing": _timing_report(target,
                                                          round(rng.uniform(70, 99), 1))},
                    )
                    if await apply_stream_summary(db, payload, event_id=event_id) == "applied":
                        streamed += 1
                made += len(rows)

        await asyncio.gather(*(one(uuid.UUID(accounts["ids"][email]))
                               for email in accounts["students"]))
    finally:
        await engine.dispose()
    return made, streamed


# --------------------------------------------------------------------------------------------
# The server


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path


def start_server(url: str, run_dir: Path, *, workers: int, log_level: str,
                 cpus: set[int] | None, redis_url: str | None = None,
                 redis_prefix: str = "") -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPT_")}
    if redis_url:
        env.update({"MPT_REDIS__URL": redis_url, "MPT_REDIS__KEY_PREFIX": redis_prefix})
    env.update({
        "MPT_DATABASE__URL": url,
        "MPT_DATABASE__AUTO_MIGRATE": "false",
        "MPT_API__RATE_LIMITS__ENABLED": "false",
        "MPT_DATA_DIR": str(run_dir / "data"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
    })
    ready = run_dir / "api.json"
    log_path = run_dir / "api.log"

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api", "--port", "0", "--workers", str(workers),
             "--ready-file", str(ready), "--log-level", log_level],
            env=env, cwd=run_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            preexec_fn=pin if cpus else None,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the API did not start: {log_path.read_text()[-3000:]}")
        time.sleep(0.05)
    if cpus:
        pin_tree(proc.pid, cpus)  # the workers (spawned) and every thread
    info = json.loads(ready.read_text())
    return Server(proc=proc, url=str(info["url"]), log_path=log_path)


def drop_redis_keys(redis_url: str, prefix: str) -> int:
    """Delete the keys the run wrote (every key starting with ``prefix``)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def stop_server(server: Server) -> int | None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)
    return server.proc.returncode


async def warm_up(base_url: str, accounts: dict[str, Any], *, sessions_each: int) -> int:
    """Every account logs in (its token goes into ``accounts["tokens"]``) and every student
    records ``sessions_each`` sessions; the requests made."""
    import httpx

    sem = asyncio.Semaphore(8)
    done = 0
    tokens: dict[str, str] = {}

    async def one(http: httpx.AsyncClient, email: str, sessions: int) -> None:
        nonlocal done
        async with sem:
            login = await http.post("/api/v1/auth/login",
                                    json={"email": email, "password": PASSWORD})
            login.raise_for_status()
            tokens[email] = login.json()["access_token"]
            auth = {"Authorization": f"Bearer {tokens[email]}"}
            now = datetime.now(UTC)
            for i in range(sessions):
                started = now - timedelta(days=i, hours=1)
                made = await http.post("/api/v1/sessions", headers=auth, json={
                    "focus": "warm-up", "started_at": started.isoformat(),
                    "ended_at": (started + timedelta(minutes=30)).isoformat(),
                    "mode": "normal", "tag_ids": [], "segments": [],
                })
                made.raise_for_status()
            done += 1 + sessions

    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as http:
        await asyncio.gather(
            *(one(http, email, sessions_each) for email in accounts["students"]),
            *(one(http, email, 0) for email in accounts["teachers"]),
        )
    accounts["tokens"] = tokens
    return done


# --------------------------------------------------------------------------------------------
# Measuring


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (every backend and helper)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
    return pids


def cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds of each process (vanished ones are left out)."""
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            out[pid] = tree_cpu_s([pid]) if Path(f"/proc/{pid}").exists() else 0.0
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two snapshots; a process born in between counts whole."""
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


def read_stats(prefix: Path) -> tuple[list[RequestStats], RequestStats]:
    """Rows of locust's ``<prefix>_stats.csv`` and its ``Aggregated`` row."""
    rows: list[RequestStats] = []
    total: RequestStats | None = None
    with open(f"{prefix}_stats.csv", newline="", encoding="utf-8") as handle:
        for rec in csv.DictReader(handle):
            stats = RequestStats(
                name=rec["Name"],
                count=int(rec["Request Count"]),
                failures=int(rec["Failure Count"]),
                rps=float(rec["Requests/s"]),
                p50_ms=_num(rec["50%"]),
                p99_ms=_num(rec["99%"]),
                max_ms=_num(rec["Max Response Time"]),
            )
            if rec["Name"] == "Aggregated":
                total = stats
            else:
                rows.append(stats)
    if total is None:
        raise RuntimeError(f"no Aggregated row in {prefix}_stats.csv")
    return rows, total


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def read_failures(prefix: Path, limit: int = 5) -> list[str]:
    path = Path(f"{prefix}_failures.csv")
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [f"{r['Method']} {r['Name']}: {r['Error'][:160]} (x{r['Occurrences']})"
                for r in list(csv.DictReader(handle))[:limit]]


def profile_server(pid: int, seconds: float, out: Path) -> Path | None:
    """``py-spy record`` of the server (and its workers) in collapsed-stack form."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed: no profile", file=sys.stderr)
        return None
    cmd = [py_spy, "record", "--pid", str(pid), "--subprocesses", "--duration",
           str(max(1, round(seconds))), "--rate", "200", "--format", "raw", "--output", str(out),
           "--nonblocking"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=seconds + 60)
    if proc.returncode != 0 or not out.exists():
        print(f"py-spy failed ({proc.returncode}): {proc.stderr[-500:]}", file=sys.stderr)
        return None
    return out


_FRAME_RE = re.compile(r"\(([^()]*?):\d+\)\s*$")


def _component(frame: str) -> str:
    """The top-level package of a ``function (path/to/file.py:line)`` frame (py-spy prints
    paths relative to their ``sys.path`` entry), ``api``/``mpt`` for ours."""
    match = _FRAME_RE.search(frame)
    if not match:
        return "other"
    path = match.group(1)
    if "site-packages/" in path:
        path = path.rsplit("site-packages/", 1)[1]
    head = path.lstrip("/").split("/", 1)[0]
    return head.removesuffix(".py") or "other"


def summarize_profile(path: Path, top: int = 10) -> dict[str, list[tuple[str, float]]]:
    """Shares of py-spy's samples: ``self`` by the leaf frame's package, ``inclusive`` by
    every package on the stack, ``functions`` by leaf function."""
    self_pkg: Counter[str] = Counter()
    incl_pkg: Counter[str] = Counter()
    by_fn: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        self_pkg[_component(leaf)] += count
        for component in {_component(f) for f in frames}:
            incl_pkg[component] += count
        by_fn[f"{leaf.split(' (')[0]} [{_component(leaf)}]"] += count
    if not total:
        return {}
    return {
        "self": [(k, v / total) for k, v in self_pkg.most_common(top)],
        "inclusive": [(k, v / total) for k, v in incl_pkg.most_common(top + 4)],
        "functions": [(k, v / total) for k, v in by_fn.most_common(top)],
    }


# --------------------------------------------------------------------------------------------
# The report


def _phase_lines(ph: Phase) -> list[str]:
    lines = [
        f"- Offered load: {ph.offered}; {ph.wall_s:.0f} s; 1-min load average "
        f"{ph.loadavg[0]} before, {ph.loadavg[1]} after",
        "",
        "| | value |",
        "|---|---|",
        f"| requests (failures) | {ph.total.count} ({ph.total.failures}) |",
        f"| requests/s | {ph.rps:.0f} |",
        f"| server CPU, cores (s) | {ph.server_cpu_s / ph.wall_s:.2f} "
        f"({ph.server_cpu_s:.1f}) |",
        f"| **requests/s per server core** | **{ph.per_core:.0f}** |",
        f"| PostgreSQL CPU, cores | {ph.postgres_cpu_s / ph.wall_s:.2f} |",
        f"| requests/s per core, server + PostgreSQL | {ph.per_core_with_db:.0f} |",
        f"| locust CPU, cores | {ph.locust_cpu_s / ph.wall_s:.2f} |",
        f"| latency p50 / p99 / max, ms (all requests) | {ph.total.p50_ms:.0f} / "
        f"{ph.total.p99_ms:.0f} / {ph.total.max_ms:.0f} |",
        "",
        "| request | count | failures | req/s | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in sorted(ph.rows, key=lambda s: -s.count):
        lines.append(f"| `{s.name}` | {s.count} | {s.failures} | {s.rps:.1f} | {s.p50_ms:.0f} "
                     f"| {s.p99_ms:.0f} | {s.max_ms:.0f} |")
    if ph.failures_sample:
        lines += ["", "Failures (first kinds):", ""]
        lines += [f"- {f}" for f in ph.failures_sample]
    if ph.profile:
        lines += [
            "",
            "Where the server's CPU goes in this phase (py-spy on the server process, samples "
            "from the middle of the run): by package, the share of samples with that "
            "package's frame as the leaf (self) and anywhere on the stack (inclusive); then "
            "the hottest leaf functions.",
            "",
            "| package | self | inclusive |",
            "|---|---|---|",
        ]
        self_share = dict(ph.profile.get("self", []))
        for name, share in ph.profile.get("inclusive", []):
            lines.append(f"| {name} | {self_share.get(name, 0.0):.0%} | {share:.0%} |")
        lines += ["", "| leaf function | share |", "|---|---|"]
        lines += [f"| `{n}` | {share:.1%} |" for n, share in ph.profile.get("functions", [])]
    return lines


def render_block(r: LoadResult) -> str:
    capacity = next((ph for ph in r.phases if ph.rate_per_user <= 0), r.phases[0])
    latency = next((ph for ph in r.phases if ph.rate_per_user > 0), r.phases[-1])
    ok_rate = capacity.per_core >= TARGET_PER_CORE
    ok_p99 = latency.total.p99_ms <= TARGET_P99_MS
    failures = sum(ph.total.failures for ph in r.phases)
    ok_err = failures == 0
    verdict = "**met**" if ok_rate and ok_p99 and ok_err else "**not met**"
    lines = [
        START,
        "<!-- Written by `python -m benchmarks.api.run_api_load`; rewritten on each run. -->",
        "## API load: requests per second per server core",
        "",
        f"- Command: `{r.command}`",
        f"- Date: {r.started}; machine: {r.machine}; {r.versions}",
        f"- Server `python -m api --workers {r.workers}` on PostgreSQL (fresh database), rate "
        f"limits off, JSON access logs on, {r.redis}. Data: {r.history}",
        "- Mix (locust `FastHttpUser`, 9 students : 1 teacher): students create sessions, "
        "list and read them, push sync batches, read their progress, minutes and accuracy "
        "charts (SVG), points, streak and the weekly leaderboard; teachers read their "
        "dashboard and their students' sessions, progress and charts; "
        + (f"the users arrive evenly over {r.ramp_s:g} s before each measured window (locust's "
           "statistics reset once all have; the CPU is read from then on); 1 user in 10 logs "
           "in once at a random moment of the window"
           if r.ramp_s > 0 else "all users arrive at once; 1 user in 10 logs in at start")
        + ", the others reuse a token (see benchmarks/api/README.md).",
        f"- CPU placement: {r.pinned}. The machine has {os.cpu_count()} cores: locust and "
        "PostgreSQL compete with the server for them (each one's CPU is shown).",
        f"- Server exit code after SIGTERM: {r.server_exit}",
        "",
    ]
    for ph in r.phases:
        lines += [f"### {ph.name}", "", *_phase_lines(ph), ""]
    lines += [
        f"Target: >= {TARGET_PER_CORE:,.0f} requests/s per server core at p99 <= "
        f"{TARGET_P99_MS:g} ms with no failures: {verdict} (capacity {capacity.per_core:.0f} "
        f"per core {'>=' if ok_rate else '<'} {TARGET_PER_CORE:,.0f}; p99 at the paced load "
        f"{latency.total.p99_ms:.0f} ms {'<=' if ok_p99 else '>'} {TARGET_P99_MS:g} ms; "
        f"{failures} failures).",
    ]
    if r.bottleneck:
        lines += ["", f"Bottleneck: {r.bottleneck}"]
    lines.append(END)
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """``text`` with its api-load block replaced by ``block``, or ``block`` appended."""
    if _BLOCK_RE.search(text):
        return _BLOCK_RE.sub(lambda _m: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def _versions() -> str:
    from importlib import metadata

    names = ("fastapi", "uvicorn", "sqlalchemy", "asyncpg", "pydantic", "locust")
    parts = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            parts.append(f"{name} {metadata.version(name)}")
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                         capture_output=True, check=False).stdout.strip()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, text=True,
                            capture_output=True, check=False).stdout.splitlines()
    # the results file itself is rewritten by benchmark runs: not a change to what is measured
    dirty = [line for line in status if not line.endswith("benchmarks/RESULTS.md")]
    return f"git {git or '?'}{' (plus uncommitted changes)' if dirty else ''}, " + ", ".join(
        parts)


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "?"


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, Python " \
        f"{platform.python_version()}"


# --------------------------------------------------------------------------------------------
# Main


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.api.run_api_load",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("both", "capacity", "paced"), default="both",
                   help="capacity: closed loop only; paced: fixed rate only (needs --rate); "
                   "both (default): capacity, then paced at --load-fraction of it")
    p.add_argument("--users", type=int, default=32,
                   help="locust users of the closed-loop capacity phase (default 32)")
    p.add_argument("--paced-users", type=int, default=50,
                   help="locust users of the paced phase (default 50)")
    p.add_argument("--load-fraction", type=float, default=0.7,
                   help="paced load as a share of the measured capacity (default 0.7)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="requests/s of each paced user (default: from --load-fraction)")
    p.add_argument("--duration-s", type=float, default=45.0,
                   help="length of each phase (default 45)")
    p.add_argument("--workers", type=int, default=1, help="API processes (default 1)")
    p.add_argument("--login-share", type=float, default=0.1,
                   help="share of locust users that log in once, at a random moment of the "
                   "measured window (default 0.1; the others reuse the warm-up's token)")
    p.add_argument("--ramp-s", type=float, default=5.0,
                   help="users arrive evenly over this many seconds before each measured "
                   "window, which starts once all have (default 5; 0: all at once, "
                   "measured from the start)")
    p.add_argument("--students", type=int, default=200, help="student accounts (default 200)")
    p.add_argument("--teachers", type=int, default=10, help="teacher accounts (default 10)")
    p.add_argument("--history-sessions", type=int, default=30,
                   help="sessions seeded per student (default 30)")
    p.add_argument("--history-days", type=int, default=28,
                   help="the seeded sessions spread over this many days (default 28)")
    p.add_argument("--stream-share", type=float, default=0.3,
                   help="share of seeded sessions with a stream summary (default 0.3)")
    p.add_argument("--seed-sessions", type=int, default=1,
                   help="sessions each student records over HTTP in the warm-up (default 1)")
    p.add_argument("--postgres-url", default=DEFAULT_PG,
                   help="a database on the PostgreSQL server to use (a new one is created)")
    p.add_argument("--redis-url", default=DEFAULT_REDIS,
                   help="Redis for the server (weekly leaderboard, queue) under a key prefix of "
                   "the run's own, deleted afterwards; '' runs without Redis (the "
                   f"leaderboard is then computed from the database); default {DEFAULT_REDIS}")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the server to CPU 0 and locust to the others")
    p.add_argument("--profile-s", type=float, default=0.0,
                   help="py-spy the server for this long in the middle of the capacity phase "
                   "(0 = off)")
    p.add_argument("--log-level", default="info", help="the server's log level (default info)")
    p.add_argument("--bottleneck", default=None,
                   help="the paragraph naming the bottleneck, written under the results "
                   f"(default: the text of {BOTTLENECK.relative_to(REPO)}, kept by hand)")
    p.add_argument("--out", type=Path, default=RESULTS, help="the results file to update")
    return p.parse_args(argv)


@dataclass
class _Run:
    """What every phase of one invocation shares."""

    locust: str
    server: Server
    run_dir: Path
    accounts_path: Path
    login_share: float
    load_cpus: set[int] | None
    ramp_s: float = 0.0


def locust_command(
    locust: str, url: str, prefix: Path, *, users: int, duration_s: float, ramp_s: float
) -> tuple[list[str], dict[str, str]]:
    """The headless locust command of one phase, and the login timing it passes to the
    locustfile: with ``ramp_s`` the users arrive evenly over it, the statistics reset once
    all have, the run lasts ``ramp_s`` longer, and the logins fall at random moments of the
    measured window (its first ``duration_s - 5`` s); without, all arrive at once and the
    logins come first."""
    if ramp_s > 0:
        spawn = ["-r", f"{users / ramp_s:g}", "--reset-stats"]
        login = {"MPT_BENCH_LOGIN_AFTER_S": f"{ramp_s:g}",
                 "MPT_BENCH_LOGIN_WITHIN_S": f"{max(0.0, duration_s - 5.0):g}"}
    else:
        spawn = ["-r", str(users)]
        login = {"MPT_BENCH_LOGIN_AFTER_S": "0", "MPT_BENCH_LOGIN_WITHIN_S": "0"}
    cmd = [
        locust, "-f", str(LOCUSTFILE), "--headless", "--host", url,
        "-u", str(users), *spawn, "-t", f"{round(duration_s + ramp_s)}s",
        "--csv", str(prefix), "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING",
    ]  # fmt: skip
    return cmd, login


def run_phase(run: _Run, *, name: str, users: int, rate: float, duration_s: float,
              profile_s: float) -> Phase:
    """One headless locust run (``rate`` 0: closed loop) with the CPU read from /proc.

    With ``run.ramp_s`` the users arrive evenly over that many seconds, locust resets its
    statistics once all have (``--reset-stats``), and the CPU and the wall time are read
    from ``ramp_s`` after locust is started: no later than the reset (locust takes a moment
    to start), so the window's CPU may hold a little of the ramp's and requests/s per core
    errs low. The users that log in do so at random moments of the measured window."""
    prefix = run.run_dir / f"locust-{len(list(run.run_dir.glob('locust-*_stats.csv')))}"
    ramp_s = run.ramp_s
    locust_cmd, bench_env = locust_command(
        run.locust, run.server.url, prefix, users=users, duration_s=duration_s, ramp_s=ramp_s)
    env = {**os.environ, "MPT_BENCH_ACCOUNTS": str(run.accounts_path),
           "MPT_BENCH_RATE": str(rate), "MPT_BENCH_LOGIN_SHARE": str(run.login_share),
           **bench_env}
    load_cpus = run.load_cpus

    def pin_load() -> None:
        if load_cpus:
            os.sched_setaffinity(0, load_cpus)

    server_pids = process_tree(run.server.proc.pid)
    load_before = _loadavg()
    log = (run.run_dir / "locust.log").open("ab")
    load = subprocess.Popen(locust_cmd, env=env, cwd=run.run_dir, stdout=subprocess.DEVNULL,
                            stderr=log, preexec_fn=pin_load if load_cpus else None)
    time.sleep(ramp_s)
    cpu0 = tree_cpu_s(server_pids)
    pg0 = cpu_by_pid(postgres_pids())
    t0 = time.monotonic()
    profile: dict[str, list[tuple[str, float]]] = {}
    if profile_s > 0:
        time.sleep(max(0.0, (duration_s - profile_s) / 2))
        raw = profile_server(run.server.proc.pid, profile_s, run.run_dir / "profile.txt")
        if raw is not None:
            profile = summarize_profile(raw)
            kept = Path(tempfile.gettempdir()) / "mpt-api-load-profile.txt"
            shutil.copy(raw, kept)
            print(f"api-load: py-spy samples (collapsed stacks) in {kept}", flush=True)
    locust_pids = process_tree(load.pid)
    locust_cpu = 0.0
    while load.poll() is None:
        locust_pids = sorted(set(locust_pids) | set(process_tree(load.pid)))
        locust_cpu = max(locust_cpu, tree_cpu_s(locust_pids))
        time.sleep(0.5)
        if time.monotonic() - t0 > duration_s + 120:
            load.kill()
    wall = time.monotonic() - t0
    cpu1 = tree_cpu_s(server_pids)
    pg1 = cpu_by_pid(postgres_pids())
    log.close()
    if load.returncode not in (0, 1):  # 1: some requests failed (reported)
        print((run.run_dir / "locust.log").read_text()[-3000:], file=sys.stderr)
        raise RuntimeError(f"locust exited with {load.returncode}")
    rows, total = read_stats(prefix)
    phase = Phase(name=name, users=users, rate_per_user=rate, rows=rows, total=total,
                  server_cpu_s=cpu1 - cpu0, postgres_cpu_s=cpu_delta(pg0, pg1),
                  locust_cpu_s=locust_cpu, wall_s=wall, failures_sample=read_failures(prefix),
                  profile=profile, loadavg=(load_before, _loadavg()))
    print(f"api-load: {name}: {total.count} requests, {phase.rps:.0f}/s, "
          f"{phase.per_core:.0f} per server core, p50 {total.p50_ms:.0f} ms, "
          f"p99 {total.p99_ms:.0f} ms, {total.failures} failures", flush=True)
    return phase


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.mode == "paced" and args.rate <= 0:
        print("error: --mode paced needs --rate (requests/s per user)", file=sys.stderr)
        return 2
    given = list(sys.argv[1:] if argv is None else argv)
    if "--bottleneck" in given:  # the sentence is printed under the results, not here
        i = given.index("--bottleneck")
        given[i:i + 2] = ["--bottleneck", "..."]
    command = "python -m benchmarks.api.run_api_load " + shlex.join(given)
    locust = shutil.which("locust") or str(Path(sys.executable).with_name("locust"))
    if not Path(locust).exists():
        print("error: locust is not installed (pip install 'mpt[bench]')", file=sys.stderr)
        return 1
    cpus = sorted(os.sched_getaffinity(0))
    server_n = args.workers
    # Pin only when the server's workers and locust can each have cores of their own.
    pin = not args.no_pin and len(cpus) > server_n
    server_cpus = set(cpus[:server_n]) if pin else None
    load_cpus = set(cpus[server_n:]) if pin else None
    pinned = (f"server on CPU {','.join(map(str, cpus[:server_n]))}, locust on CPU "
              f"{','.join(map(str, cpus[server_n:]))}, PostgreSQL unpinned" if pin
              else "no pinning (the scheduler places server, locust and PostgreSQL)")
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"api-load: mode {args.mode}, {args.duration_s:g} s per phase, {args.workers} "
          f"worker(s); {pinned}", flush=True)
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="mpt-api-load-") as tmp, \
            fresh_database(args.postgres_url) as url:
        run_dir = Path(tmp)
        accounts = asyncio.run(seed_accounts(url, students=args.students,
                                             teachers=args.teachers))
        t_seed = time.monotonic()
        n_sessions, n_streams = asyncio.run(seed_history(
            url, accounts, sessions_each=args.history_sessions, days=args.history_days,
            stream_share=args.stream_share))
        history = (f"{args.students} students, {args.teachers} teachers (every student "
                   f"linked to one), {n_sessions} sessions seeded over {args.history_days} "
                   f"days ({args.history_sessions} per student, one segment on one of 8 "
                   f"pieces each, manual metrics), {n_streams} of them with a stream summary "
                   "(metrics with source stream)")
        print(f"api-load: seeded {n_sessions} sessions, {n_streams} streams in "
              f"{time.monotonic() - t_seed:.0f} s", flush=True)
        accounts_path = run_dir / "accounts.json"
        redis_prefix = f"mpt-bench-{uuid.uuid4().hex[:8]}"
        server = start_server(url, run_dir, workers=args.workers, log_level=args.log_level,
                              cpus=server_cpus, redis_url=args.redis_url or None,
                              redis_prefix=redis_prefix)
        server_exit: int | None = None
        try:
            print(f"api-load: server at {server.url}; warming up", flush=True)
            warmed = asyncio.run(warm_up(server.url, accounts,
                                         sessions_each=args.seed_sessions))
            accounts_path.write_text(json.dumps(accounts))
            print(f"api-load: warm-up made {warmed} requests", flush=True)
            run = _Run(locust=locust, server=server, run_dir=run_dir,
                       accounts_path=accounts_path, login_share=args.login_share,
                       load_cpus=load_cpus, ramp_s=args.ramp_s)
            rate = args.rate
            if args.mode in ("both", "capacity"):
                cap = run_phase(run, name=f"Capacity: closed loop, {args.users} users",
                                users=args.users, rate=0.0, duration_s=args.duration_s,
                                profile_s=args.profile_s)
                phases.append(cap)
                if rate <= 0:
                    rate = args.load_fraction * cap.rps / args.paced_users
            if args.mode in ("both", "paced"):
                offered = rate * args.paced_users
                label = (f"{args.load_fraction:.0%} of the measured capacity"
                         if args.mode == "both" and args.rate <= 0 else "fixed by --rate")
                phases.append(run_phase(
                    run, name=f"Latency: paced at {offered:.0f} requests/s ({label})",
                    users=args.paced_users, rate=rate, duration_s=args.duration_s,
                    profile_s=args.profile_s if args.mode == "paced" else 0.0))
        finally:
            server_exit = stop_server(server)
            if args.redis_url:
                drop_redis_keys(args.redis_url, redis_prefix)
    result = LoadResult(
        command=command, started=started, duration_s=args.duration_s, workers=args.workers,
        pinned=pinned, phases=phases, server_exit=server_exit, history=history, ramp_s=args.ramp_s,
        bottleneck=(args.bottleneck if args.bottleneck is not None
                    else BOTTLENECK.read_text().strip()),
        machine=_machine(), versions=_versions(),
        redis="Redis (the weekly leaderboard is a sorted set, kept current after each "
        "session write)" if args.redis_url else "no Redis (the leaderboard is computed from "
        "the database on each request)",
    )
    block = render_block(result)
    text = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    args.out.write_text(replace_block(text, block), encoding="utf-8")
    print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
