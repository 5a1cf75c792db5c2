"""Load mix for the REST API (``locust -f benchmarks/api/locustfile.py``; run by
``python -m benchmarks.api.run_api_load``, which seeds the accounts and starts the server).

Students (9 in 10 simulated users) log in rarely: one user in ten logs in once
(``POST /api/v1/auth/login``; ``MPT_BENCH_LOGIN_SHARE``), at a random moment of the run
(``MPT_BENCH_LOGIN_AFTER_S``, ``MPT_BENCH_LOGIN_WITHIN_S``), the others reuse the access token
the warm-up's login issued to their account, and each logs in again only when its token
expires or is refused (argon2id makes a login cost ~25 ms of CPU on purpose). Then they
record sessions (``POST /sessions``), read their recent sessions (``GET /sessions?limit=20``)
and single sessions (``GET /sessions/{id}``), and push offline sync batches of a few sessions
with a fresh ``Idempotency-Key`` (``POST /sync/batch``), and look at their progress
(``GET /students/{id}/progress``), its SVG charts (``charts/minutes.svg``,
``charts/accuracy.svg``), their points and streak and the weekly leaderboard
(``GET /leaderboard``). Teachers (1 in 10) read their dashboard
(``GET /teachers/me/dashboard``), their students' session lists, progress and charts.

The accounts come from the JSON file named by ``MPT_BENCH_ACCOUNTS``
(``{"password", "students": [email...], "teachers": [email...], "tokens": {email: token},
"ids": {email: user id}}``); each simulated user takes the next account of its role, round
robin. ``MPT_BENCH_RATE`` sets the requests per second of each simulated user
(``constant_throughput``; default 5); ``0`` means no wait at all (a closed loop: each user
sends its next request as soon as the previous one is answered).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, constant_throughput, task

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # locust puts only the locustfile's folder on the path
    sys.path.insert(0, str(_REPO))

from benchmarks.api.bodies import session_body  # noqa: E402  (after the path)

API = "/api/v1"
TOKEN_REFRESH_S = 25 * 60.0  # log in again before the default 30-min access token expires
RATE = float(os.environ.get("MPT_BENCH_RATE", "5"))
# Share of simulated users that log in; the others reuse the token the warm-up's login
# issued to their account (a real client keeps its token for 30 minutes). Each of them logs
# in at a random moment from LOGIN_AFTER_S to LOGIN_AFTER_S + LOGIN_WITHIN_S after it
# starts (both 0: at once), using the warm-up's token until then.
LOGIN_SHARE = float(os.environ.get("MPT_BENCH_LOGIN_SHARE", "0.1"))
LOGIN_AFTER_S = float(os.environ.get("MPT_BENCH_LOGIN_AFTER_S", "0"))
LOGIN_WITHIN_S = float(os.environ.get("MPT_BENCH_LOGIN_WITHIN_S", "0"))


def _accounts() -> dict[str, Any]:
    path = os.environ.get("MPT_BENCH_ACCOUNTS")
    if not path:
        raise RuntimeError("MPT_BENCH_ACCOUNTS must name the accounts file (see run_api_load)")
    with open(path, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


ACCOUNTS = _accounts()
_NEXT = {role: itertools.cycle(ACCOUNTS[role]) for role in ("students", "teachers")}


class _ApiUser(FastHttpUser):
    abstract = True
    role = "students"
    wait_time = constant_throughput(RATE) if RATE > 0 else constant(0)

    def on_start(self) -> None:
        self.email = next(_NEXT[self.role])
        self.user_id = str(ACCOUNTS.get("ids", {}).get(self.email, ""))
        self.token_at = 0.0
        self.auth: dict[str, str] = {}
        self.login_at: float | None = None
        token = ACCOUNTS.get("tokens", {}).get(self.email)
        logs_in = random.random() < LOGIN_SHARE
        delay = LOGIN_AFTER_S + random.uniform(0.0, LOGIN_WITHIN_S)
        if token and (not logs_in or delay > 0):
            self.auth = {"Authorization": f"Bearer {token}"}  # issued by the warm-up's login
            self.token_at = time.monotonic()
            if logs_in:
                self.login_at = self.token_at + delay
        else:
            self.login()

    def login(self) -> None:
        with self.client.post(f"{API}/auth/login", name="POST /auth/login",
                              json={"email": self.email, "password": ACCOUNTS["password"]},
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"login of {self.email}: {response.status_code}")
                return
            token = response.json()["access_token"]
        self.auth = {"Authorization": f"Bearer {token}"}
        self.token_at = time.monotonic()

    def fresh_auth(self) -> dict[str, str]:
        now = time.monotonic()
        if self.login_at is not None and now >= self.login_at:
            self.login_at = None
            self.login()
        elif not self.auth or now - self.token_at > TOKEN_REFRESH_S:
            self.login()
        return self.auth

    def _checked(self, response: Any, expected: int) -> Any:
        if response.status_code == 401:
            self.auth = {}  # log in again on the next request
        if response.status_code != expected:
            response.failure(f"{response.status_code}: {response.text[:200]}")
            return None
        if not response.headers.get("content-type", "").startswith("application/json"):
            return {"_text": response.text}
        return response.json() if response.text else {}

    def _read(self, path: str, name: str) -> Any:
        with self.client.get(path, name=name, headers=self.fresh_auth(),
                             catch_response=True) as response:
            return self._checked(response, 200)

    def progress(self, student_id: str) -> None:
        self._read(f"{API}/students/{student_id}/progress", "GET /students/{id}/progress")

    def chart(self, student_id: str, kind: str) -> None:
        with self.client.get(f"{API}/students/{student_id}/charts/{kind}.svg",
                             name=f"GET /students/{{id}}/charts/{kind}.svg",
                             headers=self.fresh_auth(), catch_response=True) as response:
            body = self._checked(response, 200)
            if body is not None and "<svg" not in str(body.get("_text", ""))[:400]:
                response.failure(f"chart {kind} of {student_id} is not an SVG")


class StudentUser(_ApiUser):
    """A student recording and reviewing practice."""

    weight = 9
    role = "students"

    def on_start(self) -> None:
        self.session_ids: list[str] = []
        super().on_start()

    @task(3)
    def create_session(self) -> None:
        with self.client.post(f"{API}/sessions", name="POST /sessions", json=session_body(),
                              headers=self.fresh_auth(), catch_response=True) as response:
            body = self._checked(response, 201)
        if body:
            self.session_ids.append(body["id"])
            del self.session_ids[:-50]

    @task(5)
    def list_sessions(self) -> None:
        with self.client.get(f"{API}/sessions?limit=20", name="GET /sessions?limit=20",
                             headers=self.fresh_auth(), catch_response=True) as response:
            self._checked(response, 200)

    @task(4)
    def get_session(self) -> None:
        if not self.session_ids:
            self.create_session()
            return
        session_id = random.choice(self.session_ids)
        with self.client.get(f"{API}/sessions/{session_id}", name="GET /sessions/{id}",
                             headers=self.fresh_auth(), catch_response=True) as response:
            self._checked(response, 200)

    @task(1)
    def sync_batch(self) -> None:
        now = datetime.now(UTC)
        sessions = [
            {**session_body(session_id=str(uuid.uuid4())), "updated_at": now.isoformat()}
            for _ in range(random.randint(2, 4))
        ]
        headers = {**self.fresh_auth(), "Idempotency-Key": uuid.uuid4().hex}
        with self.client.post(f"{API}/sync/batch", name="POST /sync/batch",
                              json={"sessions": sessions}, headers=headers,
                              catch_response=True) as response:
            body = self._checked(response, 200)
        if body:
            bad = [r for r in body["results"] if r["status"] != "created"]
            if bad:
                response.failure(f"sync results: {bad[:2]}")

    @task(2)
    def read_progress(self) -> None:
        self.progress(self.user_id)

    @task(1)
    def minutes_chart(self) -> None:
        self.chart(self.user_id, "minutes")

    @task(1)
    def accuracy_chart(self) -> None:
        self.chart(self.user_id, "accuracy")

    @task(2)
    def leaderboard(self) -> None:
        self._read(f"{API}/leaderboard?limit=20", "GET /leaderboard")

    @task(1)
    def points(self) -> None:
        self._read(f"{API}/students/{self.user_id}/points", "GET /students/{id}/points")

    @task(1)
    def streak(self) -> None:
        self._read(f"{API}/students/{self.user_id}/streak", "GET /students/{id}/streak")


class TeacherUser(_ApiUser):
    """A teacher looking at their students."""

    weight = 1
    role = "teachers"

    def on_start(self) -> None:
        self.student_ids: list[str] = []
        super().on_start()

    @task(3)
    def dashboard(self) -> None:
        with self.client.get(f"{API}/teachers/me/dashboard", name="GET /teachers/me/dashboard",
                             headers=self.fresh_auth(), catch_response=True) as response:
            body = self._checked(response, 200)
        if body and not self.student_ids:
            self.student_ids = [str(s.get("student_id") or s.get("id"))
                                for s in body.get("students", []) if isinstance(s, dict)]

    @task(1)
    def student_sessions(self) -> None:
        if not self.student_ids:
            self.dashboard()
            return
        student = random.choice(self.student_ids)
        with self.client.get(f"{API}/sessions?student_id={student}&limit=20",
                             name="GET /sessions?student_id=&limit=20",
                             headers=self.fresh_auth(), catch_response=True) as response:
            self._checked(response, 200)

    @task(1)
    def student_progress(self) -> None:
        if not self.student_ids:
            self.dashboard()
            return
        self.progress(random.choice(self.student_ids))

    @task(1)
    def student_chart(self) -> None:
        if not self.student_ids:
            self.dashboard()
            return
        self.chart(random.choice(self.student_ids), "minutes")
