"""Who sees a student's data: one table of (actor, owner, request) -> status, over the
teaching routes and the practice routes, against the cast of ``build_world``.

``owner`` is whose session is asked about: ``student`` (adult, linked to ``teacher``, once
linked to ``former_teacher``), ``minor`` (consent recorded) or ``minor_no_consent``.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from tests.api._support.world import add_session, build_world

pytestmark = pytest.mark.anyio

READ = ("feedback list", "session get", "session list")
WRITE = "feedback create"

# One row per (actor, owner): the status (and code) expected from every request below.
OK, DENY, CONSENT, ANON = (200, None), (403, "forbidden"), (403, "consent_required"), \
    (401, "unauthenticated")
Expected = tuple[int, str | None]
TABLE: list[tuple[str | None, str, dict[str, Expected]]] = [
    ("student", "student", {**dict.fromkeys(READ, OK), WRITE: DENY}),
    ("other_student", "student", {**dict.fromkeys(READ, DENY), WRITE: DENY}),
    ("teacher", "student", {**dict.fromkeys(READ, OK), WRITE: (201, None)}),
    ("other_teacher", "student", {**dict.fromkeys(READ, DENY), WRITE: DENY}),
    ("former_teacher", "student", {**dict.fromkeys(READ, DENY), WRITE: DENY}),
    ("teacher", "minor", {**dict.fromkeys(READ, OK), WRITE: (201, None)}),
    ("teacher", "minor_no_consent", {**dict.fromkeys(READ, CONSENT), WRITE: CONSENT}),
    ("minor_no_consent", "minor_no_consent", {**dict.fromkeys(READ, OK), WRITE: DENY}),
    ("admin", "student", {**dict.fromkeys(READ, OK), WRITE: DENY}),
    ("admin", "minor_no_consent", {**dict.fromkeys(READ, OK), WRITE: DENY}),
    (None, "student", {**dict.fromkeys(READ, ANON), WRITE: ANON}),
]


def _request(name: str, session_id: uuid.UUID, owner_id: uuid.UUID
             ) -> tuple[str, str, dict[str, object] | None]:
    return {
        "feedback list": ("GET", f"/api/v1/sessions/{session_id}/feedback", None),
        "feedback create": ("POST", f"/api/v1/sessions/{session_id}/feedback",
                            {"at_s": 12.5, "text": "Nice phrasing"}),
        "session get": ("GET", f"/api/v1/sessions/{session_id}", None),
        "session list": ("GET", f"/api/v1/sessions?student_id={owner_id}", None),
    }[name]


@pytest.mark.parametrize(("actor", "owner", "expected"), TABLE,
                         ids=[f"{a or 'anonymous'}-on-{o}" for a, o, _ in TABLE])
async def test_who_sees_a_students_data(client: httpx.AsyncClient, app: FastAPI,
                                        actor: str | None, owner: str,
                                        expected: dict[str, Expected]) -> None:
    world = await build_world(app)
    owner_id = world.actor(owner).id
    session_id = await add_session(app, owner_id, accuracy_pct=75.0)
    headers = world.actor(actor).headers if actor else {}
    got: dict[str, Expected] = {}
    for name, (_status, code) in expected.items():
        method, path, body = _request(name, session_id, owner_id)
        response = await client.request(method, path, json=body, headers=headers)
        got[name] = (response.status_code,
                     response.json().get("code") if code is not None else None)
        if response.status_code == 200 and name == "session list":
            assert [s["id"] for s in response.json()["items"]] == [str(session_id)]
        if response.status_code == 200 and name == "session get":
            assert response.json()["id"] == str(session_id)
    assert got == expected


# The dashboard shows a student's data only to a teacher who may see it.
# (teacher, owner) -> "data" (numbers shown), "consent_required" (listed, no data), "absent"
DASHBOARD_ROWS = [
    ("teacher", "student", "data"),
    ("teacher", "minor", "data"),
    ("teacher", "minor_no_consent", "consent_required"),
    ("other_teacher", "student", "absent"),
    ("former_teacher", "student", "absent"),
]


@pytest.mark.parametrize(("actor", "owner", "expected"), DASHBOARD_ROWS)
async def test_dashboard_contents(client: httpx.AsyncClient, app: FastAPI, actor: str,
                                  owner: str, expected: str) -> None:
    world = await build_world(app)
    owner_id = world.actor(owner).id
    session_id = await add_session(app, owner_id, accuracy_pct=75.0)
    response = await client.get("/api/v1/teachers/me/dashboard",
                                headers=world.actor(actor).headers)
    assert response.status_code == 200
    entries = [s for s in response.json()["students"] if s["student_id"] == str(owner_id)]
    if expected == "absent":
        assert entries == [] and str(session_id) not in response.text
        return
    (entry,) = entries
    if expected == "consent_required":
        assert entry["consent_required"] is True and entry["recent_sessions"] is None
        assert str(session_id) not in response.text
    else:
        assert entry["consent_required"] is False
        assert [s["id"] for s in entry["recent_sessions"]] == [str(session_id)]
