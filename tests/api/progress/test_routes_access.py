"""Who may read a student's progress: the same table for every progress route."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from tests.api._support.world import add_session, build_world
from tests.api.progress._routes_support import add_tag

pytestmark = pytest.mark.anyio

# (viewer, student, status, problem code)
TABLE: list[tuple[str, str, int, str | None]] = [
    ("student", "student", 200, None),
    ("other_student", "student", 403, "forbidden"),
    ("teacher", "student", 200, None),
    ("other_teacher", "student", 403, "forbidden"),
    ("former_teacher", "student", 403, "forbidden"),
    ("teacher", "minor", 200, None),
    ("teacher", "minor_no_consent", 403, "consent_required"),
    ("minor_no_consent", "minor_no_consent", 200, None),
    ("admin", "student", 200, None),
    ("admin", "teacher", 404, "not_found"),  # not a student
    ("teacher", "teacher", 404, "not_found"),  # oneself, but not a student
    ("student", "teacher", 403, "forbidden"),  # no access: existence is not revealed
]


async def test_authorization_table(app: FastAPI, client: httpx.AsyncClient) -> None:
    world = await build_world(app)
    piece = await add_tag(app, "Shared piece")
    for name in ("student", "minor", "minor_no_consent"):
        await add_session(app, world.actor(name).id, accuracy_pct=80.0)

    def paths(student_id: uuid.UUID) -> list[str]:
        base = f"/api/v1/students/{student_id}"
        return [f"{base}/progress", f"{base}/pieces/{piece}/clean-tempo",
                f"{base}/timing-heatmap", f"{base}/recommendations",
                f"{base}/charts/minutes.svg", f"{base}/charts/heatmap.svg"]

    for viewer, student, status, code in TABLE:
        user, target = world.actor(viewer), world.actor(student)
        for path in paths(target.id):
            response = await client.get(path, headers=user.headers)
            assert response.status_code == status, (viewer, student, path, response.text)
            if code is not None:
                assert response.json()["code"] == code, (viewer, student, path)
    # a chart URL opened in a browser follows the same rule
    chart = paths(world.minor_no_consent.id)[-2]
    response = await client.get(chart, params={"access_token": world.teacher.token})
    assert (response.status_code, response.json()["code"]) == (403, "consent_required")
    response = await client.get(paths(world.student.id)[-2],
                                params={"access_token": world.teacher.token})
    assert response.status_code == 200
    # an id nobody has: 404 for an admin, 403 for anyone else
    nobody = uuid.uuid4()
    assert (await client.get(paths(nobody)[0], headers=world.admin.headers)).status_code == 404
    assert (await client.get(paths(nobody)[0], headers=world.teacher.headers)
            ).status_code == 403
