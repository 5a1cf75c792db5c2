"""The caller's account (/users/me) and the admin routes; create_user for the CLI."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api.accounts.models import StudentProfile, TeacherProfile, User
from api.accounts.service import create_user
from api.errors import ConflictError, UnprocessableError
from tests.api._support.users import make_user
from tests.api.accounts._support import API, PASSWORD, bearer, code, login, register

pytestmark = pytest.mark.anyio


async def test_patch_me_updates_account_and_profile(client: httpx.AsyncClient) -> None:
    tokens = (await register(client, "ada@example.com", instrument="violin"))["tokens"]
    response = await client.patch(f"{API}/users/me", headers=bearer(tokens), json={
        "display_name": "  Ada L. ", "timezone": "America/New_York", "level": "advanced",
        "instrument": None})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["display_name"] == "Ada L." and body["timezone"] == "America/New_York"
    assert body["student"] == {"is_minor": False, "instrument": None, "level": "advanced"}
    again = await client.get(f"{API}/users/me", headers=bearer(tokens))
    assert again.json() == body


@pytest.mark.parametrize(("change", "status", "needle"), [
    ({"timezone": "Nowhere/Land"}, 422, "timezone"),
    ({"timezone": None}, 422, "timezone"),
    ({"display_name": ""}, 422, "display_name"),
    ({"level": "grade\u00005"}, 422, "level"),
    ({"studio_name": "Mine"}, 422, "studio_name"),
    ({"email": "new@example.com"}, 422, "email"),
])
async def test_patch_me_rejects(client: httpx.AsyncClient, change: dict[str, object],
                                status: int, needle: str) -> None:
    tokens = (await register(client, "ada@example.com"))["tokens"]
    response = await client.patch(f"{API}/users/me", headers=bearer(tokens), json=change)
    assert response.status_code == status, response.text
    assert needle in response.text


async def test_student_may_set_but_not_clear_is_minor(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    tokens = (await register(client, "ada@example.com"))["tokens"]
    me = await client.patch(f"{API}/users/me", headers=bearer(tokens), json={"is_minor": True})
    assert me.json()["student"]["is_minor"] is True
    cleared = await client.patch(f"{API}/users/me", headers=bearer(tokens),
                                 json={"is_minor": False})
    assert cleared.status_code == 403 and code(cleared) == "forbidden"
    admin = await make_user(app, role="admin")
    by_admin = await client.patch(f"{API}/admin/users/{me.json()['id']}", headers=admin.headers,
                                  json={"is_minor": False})
    assert by_admin.status_code == 200 and by_admin.json()["student"]["is_minor"] is False


async def test_teacher_edits_teacher_fields(client: httpx.AsyncClient) -> None:
    tokens = (await register(client, "clara@example.com", role="teacher"))["tokens"]
    ok = await client.patch(f"{API}/users/me", headers=bearer(tokens),
                            json={"studio_name": "Studio S", "bio": "Hello"})
    assert ok.json()["teacher"] == {"studio_name": "Studio S", "bio": "Hello",
                                    "instruments": None}
    student_field = await client.patch(f"{API}/users/me", headers=bearer(tokens),
                                       json={"is_minor": True})
    assert student_field.status_code == 422 and "is_minor" in student_field.json()["detail"]


async def test_me_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/users/me")
    assert response.status_code == 401 and code(response) == "unauthenticated"
    bad = await client.get(f"{API}/users/me", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and code(bad) == "token_invalid"


async def test_admin_routes_are_for_admins_only(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app, role="student")
    teacher = await make_user(app, role="teacher")
    for user in (student, teacher):
        listing = await client.get(f"{API}/admin/users", headers=user.headers)
        assert listing.status_code == 403 and code(listing) == "forbidden"
        patch = await client.patch(f"{API}/admin/users/{student.id}", headers=user.headers,
                                   json={"role": "admin"})
        assert patch.status_code == 403
    assert (await client.get(f"{API}/admin/users")).status_code == 401


async def test_admin_whose_role_was_taken_away_is_refused(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_user(app, role="admin")
    await make_user(app, role="admin")
    async with app.state.mpt.sessions() as db, db.begin():
        (await db.get(User, admin.id)).role = "teacher"
    response = await client.get(f"{API}/admin/users", headers=admin.headers)
    # the token still says admin: it is refused as a whole (api.usergate), log in again
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"


async def test_admin_lists_users_by_keyset_with_filters(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_user(app, role="admin")
    students = [await make_user(app, role="student") for _ in range(3)]
    teacher = await make_user(app, role="teacher")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(f"{API}/admin/users", headers=admin.headers,
                                 params=params)).json()
        seen += [u["id"] for u in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(seen, key=uuid.UUID) == [
        str(u.id) for u in (admin, *students, teacher)]
    only = (await client.get(f"{API}/admin/users", headers=admin.headers,
                             params={"role": "student", "status": "active"})).json()
    assert [u["id"] for u in only["items"]] == [str(s.id) for s in students]
    assert only["next_cursor"] is None
    deleted = (await client.get(f"{API}/admin/users", headers=admin.headers,
                                params={"status": "deleted"})).json()
    assert deleted["items"] == []
    for bad in ({"cursor": "garbage"}, {"role": "owner"}, {"limit": 0}):
        response = await client.get(f"{API}/admin/users", headers=admin.headers, params=bad)
        assert response.status_code == 422, bad


async def test_admin_changes_roles_and_profiles_follow(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_user(app, role="admin")
    student = await make_user(app, role="student")
    response = await client.patch(f"{API}/admin/users/{student.id}", headers=admin.headers,
                                  json={"role": "teacher"})
    assert response.status_code == 200
    body = response.json()
    assert body["role"] == "teacher"
    assert body["teacher"] == {"studio_name": None, "bio": None, "instruments": None}
    assert body["student"] is not None  # the old profile is kept
    async with app.state.mpt.sessions() as db:
        assert await db.get(TeacherProfile, student.id) is not None
    # a teacher made a student gets a student profile and can be marked a minor at once
    teacher = await make_user(app, role="teacher")
    response = await client.patch(f"{API}/admin/users/{teacher.id}", headers=admin.headers,
                                  json={"role": "student", "is_minor": True})
    assert response.json()["student"] == {"is_minor": True, "instrument": None, "level": None}
    # is_minor for a user without a student profile
    other_admin = await make_user(app, role="admin")
    response = await client.patch(f"{API}/admin/users/{other_admin.id}",
                                  headers=admin.headers, json={"is_minor": True})
    assert response.status_code == 422
    missing = await client.patch(f"{API}/admin/users/{uuid.uuid4()}", headers=admin.headers,
                                 json={"role": "teacher"})
    assert missing.status_code == 404
    not_uuid = await client.patch(f"{API}/admin/users/42", headers=admin.headers,
                                  json={"role": "teacher"})
    assert not_uuid.status_code == 422


async def test_the_last_admin_cannot_be_demoted(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await make_user(app, role="admin")
    response = await client.patch(f"{API}/admin/users/{admin.id}", headers=admin.headers,
                                  json={"role": "student"})
    assert response.status_code == 409 and "last admin" in response.json()["detail"]


async def test_create_user_bootstraps_an_admin(client: httpx.AsyncClient, app: FastAPI) -> None:
    state = app.state.mpt
    async with state.sessions() as db:
        user = await create_user(db, state.hasher, email=" Root@Example.com",
                                 password=PASSWORD, role="admin", display_name="Root")
    assert user.email == "root@example.com" and user.role == "admin"
    async with state.sessions() as db:
        assert (await db.execute(select(StudentProfile))).first() is None
        assert (await db.execute(select(TeacherProfile))).first() is None
    tokens = (await login(client, "root@example.com")).json()
    assert (await client.get(f"{API}/admin/users", headers=bearer(tokens))).status_code == 200
    async with state.sessions() as db:
        with pytest.raises(ConflictError) as taken:
            await create_user(db, state.hasher, email="root@example.com", password=PASSWORD,
                              role="teacher", display_name="Again")
        assert taken.value.code == "email_taken"
        for bad in ({"password": "short"}, {"timezone": "Nowhere"}, {"role": "owner"},
                    {"email": "root"}, {"display_name": " "}):
            args = {"email": "x@example.com", "password": PASSWORD, "role": "student",
                    "display_name": "X", **bad}
            with pytest.raises(UnprocessableError):
                await create_user(db, state.hasher, **args)  # type: ignore[arg-type]
