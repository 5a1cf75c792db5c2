"""Property-based tests of the whole OpenAPI schema with schemathesis: every operation gets
generated requests (its examples, boundary and invalid values, random fuzzing) as a student,
the teachers' routes also as a teacher, and every operation without a token; none may answer
5xx, and documented response bodies must match their schemas (see ``CHECKS``).

SQLite only (a migrated template copy): these tests look for crashes and schema drift in the
routes, which do not depend on the database; the routes' own tests run on both databases.
The app is built once for the module; schemathesis starts its lifespan (in its own event
loop thread) with the first request, and stops it at the end of the module. Test users are
made with ``make_user`` in that same event loop, through a hook path of a thin wrapper
around the app (not in the schema).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import get_client, shutdown_lifespans

from api.main import create_app
from api.notify import MemoryNotifier
from mpt.settings import ApiSettings, DatabaseSettings, RateLimitSettings, Settings
from tests.api._support.db import sqlite_copy
from tests.api._support.users import make_user

Scope = dict[str, Any]
HOOK_PATH = "/__test__/make-user"
# No 5xx ever; every status code, content type and body is the one documented (errors as
# application/problem+json, completed for every operation by api/openapi.py).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BOUNDED = settings(
    max_examples=10,
    deadline=None,  # the first requests of an operation pay for imports and the database
    derandomize=True,  # the same examples on every run: a failure here is never a fluke
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


class WithUserHook:
    """The app under test, plus ``POST /__test__/make-user?role=R`` that runs ``make_user``
    in the server's own event loop and answers ``{"id", "token"}``.

    The app is given by the module's fixture; the schema is loaded at import (schemathesis'
    fixture-based loader does not work with this pytest), from an app with the same routes.
    """

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        assert self.app is not None, "the fuzzed_app fixture has not set the app"
        if scope["type"] != "http" or scope["path"] != HOOK_PATH:
            await self.app(scope, receive, send)
            return
        role = scope["query_string"].decode().partition("role=")[2] or "student"
        user = await make_user(self.app, role=role)  # type: ignore[arg-type]
        body = json.dumps({"id": str(user.id), "token": user.token}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def load_schema(*, coverage: bool) -> Any:
    """The app's schema; calls go to ``HOOKED`` in-process (ASGI), as with ``from_asgi``.
    ``coverage`` adds schemathesis' boundary and negative cases (not bounded by
    ``max_examples``) to the explicit examples and the fuzzing."""
    config = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": coverage}}})
    loaded = schemathesis.openapi.from_dict(OPENAPI, config=config)
    loaded.app = HOOKED
    return loaded


HOOKED = WithUserHook()
OPENAPI = create_app(Settings()).openapi()
schema = load_schema(coverage=True)
anonymous_schema = load_schema(coverage=False)  # nearly every answer is 401: keep it cheap
# What a student mostly gets 403 on: the teacher's routes, feedback, links and consent.
teacher_schema = load_schema(coverage=False).include(
    path_regex=r"^/api/v1/(teachers|students)/|/feedback|^/api/v1/sessions$"
)


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory,
               sqlite_template_path: Path) -> Iterator[WithUserHook]:
    directory = tmp_path_factory.mktemp("schemathesis")
    app_settings = Settings(
        data_dir=directory / "data",
        database=DatabaseSettings(url=sqlite_copy(sqlite_template_path, directory),
                                  auto_migrate=False),
        api=ApiSettings(rate_limits=RateLimitSettings(enabled=False), consume_events=False),
    )
    HOOKED.app = create_app(app_settings, notifier=MemoryNotifier())
    try:
        yield HOOKED
    finally:
        shutdown_lifespans()  # the lifespan schemathesis started with the first request
        HOOKED.app = None


@pytest.fixture(scope="module")
def student_headers(fuzzed_app: WithUserHook) -> dict[str, str]:
    with get_client(fuzzed_app) as client:
        made = client.post(f"{HOOK_PATH}?role=student")
    assert made.status_code == 200, made.text
    return {"Authorization": f"Bearer {made.json()['token']}"}


@pytest.fixture(scope="module")
def teacher_headers(fuzzed_app: WithUserHook) -> dict[str, str]:
    with get_client(fuzzed_app) as client:
        made = client.post(f"{HOOK_PATH}?role=teacher")
    assert made.status_code == 200, made.text
    return {"Authorization": f"Bearer {made.json()['token']}"}


@schema.parametrize()
@BOUNDED
def test_as_a_student(case: Any, student_headers: dict[str, str]) -> None:
    case.call_and_validate(headers=student_headers, checks=CHECKS)


@teacher_schema.parametrize()
@BOUNDED
def test_as_a_teacher(case: Any, teacher_headers: dict[str, str]) -> None:
    case.call_and_validate(headers=teacher_headers, checks=CHECKS)


@anonymous_schema.parametrize()
@settings(BOUNDED, max_examples=5)
def test_without_a_token(case: Any, fuzzed_app: WithUserHook) -> None:
    case.call_and_validate(checks=CHECKS)


def test_the_schema_covers_every_domain() -> None:
    paths = set(schema.raw_schema["paths"])
    for expected in ("/healthz", "/api/v1/auth/login", "/api/v1/sessions",
                     "/api/v1/teachers/me/dashboard", "/api/v1/tags", "/api/v1/sync/batch"):
        assert expected in paths
    assert HOOK_PATH not in paths
