"""Registration, login (JSON and OAuth2 form), refresh rotation with reuse detection,
logout; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select

from api.accounts.models import RefreshToken, StudentProfile, TeacherProfile, User
from api.accounts.rules import hash_secret
from api.main import create_app
from mpt.settings import Settings
from mpt.tokens import verify_token
from tests.api.accounts._support import API, PASSWORD, bearer, code, login, refresh, register

pytestmark = pytest.mark.anyio


async def test_register_student_returns_user_and_working_tokens(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    body = await register(client, "  Ada@Example.COM ", timezone="Europe/Vienna",
                          is_minor=True, instrument="violin", level="beginner")
    user, tokens = body["user"], body["tokens"]
    assert user["email"] == "ada@example.com"
    assert user["role"] == "student" and user["status"] == "active"
    assert user["timezone"] == "Europe/Vienna"
    assert user["student"] == {"is_minor": True, "instrument": "violin", "level": "beginner"}
    assert user["teacher"] is None
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 1800 and tokens["refresh_expires_in"] == 7 * 24 * 3600
    claims = verify_token(tokens["access_token"], app.state.mpt.public_key, audience="mpt-api")
    assert claims.sub == user["id"] and claims.role == "student"
    assert set(claims.audience) == {"mpt-api", "mpt-engine"}
    me = await client.get(f"{API}/users/me", headers=bearer(tokens))
    assert me.status_code == 200 and me.json()["id"] == user["id"]
    # only the refresh token's hash is stored
    async with app.state.mpt.sessions() as db:
        stored = (await db.execute(select(RefreshToken))).scalars().all()
        assert [t.token_hash for t in stored] == [hash_secret(tokens["refresh_token"])]
        assert (await db.get(User, stored[0].user_id)).password_hash.startswith("$argon2id$")


async def test_register_teacher_with_profile(client: httpx.AsyncClient, app: FastAPI) -> None:
    body = await register(client, "clara@example.com", role="teacher", studio_name="Studio S",
                          bio="Piano", instruments="piano, organ")
    assert body["user"]["teacher"] == {"studio_name": "Studio S", "bio": "Piano",
                                       "instruments": "piano, organ"}
    async with app.state.mpt.sessions() as db:
        assert await db.get(TeacherProfile, uuid.UUID(body["user"]["id"])) is not None
        assert (await db.execute(select(StudentProfile))).first() is None


@pytest.mark.parametrize(("change", "where"), [
    ({"role": "admin"}, "role"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "utc "}, "timezone"),
    ({"password": "short"}, "password"),
    ({"password": "x" * 257}, "password"),
    ({"email": "not-an-email"}, "email"),
    ({"email": "a@b"}, "email"),
    ({"display_name": "   "}, "display_name"),
    ({"display_name": "Ada\u0000"}, "display_name"),
    ({"instrument": "x" * 81}, "instrument"),
    ({"studio_name": "Studio for a student"}, "studio_name"),
    ({"unknown": 1}, "unknown"),
])
async def test_register_rejects_invalid_input(
    client: httpx.AsyncClient, change: dict[str, object], where: str
) -> None:
    body = {"email": "ada@example.com", "password": PASSWORD, "role": "student",
            "display_name": "Ada", **change}
    response = await client.post(f"{API}/auth/register", json=body)
    assert response.status_code == 422, response.text
    assert code(response) == "validation_failed"
    assert where in response.text


async def test_duplicate_email_is_409_whatever_the_case(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    response = await client.post(f"{API}/auth/register", json={
        "email": "ADA@example.com ", "password": PASSWORD, "role": "teacher",
        "display_name": "Other"})
    assert response.status_code == 409
    assert code(response) == "email_taken"
    assert "ada@example.com" in response.json()["detail"]


async def test_login_json_and_oauth2_form(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    response = await login(client, " ADA@example.com")
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"
    form = await client.post(f"{API}/auth/token",
                             data={"username": "ada@example.com", "password": PASSWORD})
    assert form.status_code == 200
    me = await client.get(f"{API}/users/me", headers=bearer(form.json()))
    assert me.json()["email"] == "ada@example.com"


@pytest.mark.parametrize(("email", "password"), [
    ("ada@example.com", "wrong password!"),
    ("nobody@example.com", PASSWORD),
    ("not an email", PASSWORD),
])
async def test_wrong_credentials_are_401_alike(
    client: httpx.AsyncClient, email: str, password: str
) -> None:
    await register(client, "ada@example.com")
    response = await login(client, email, password)
    assert response.status_code == 401
    assert code(response) == "invalid_credentials"
    assert response.json()["detail"] == "wrong e-mail or password"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    first = (await register(client, "ada@example.com"))["tokens"]
    other_device = (await login(client, "ada@example.com")).json()

    second = await refresh(client, first["refresh_token"])
    assert second.status_code == 200
    second_tokens = second.json()
    assert second_tokens["refresh_token"] != first["refresh_token"]
    third = await refresh(client, second_tokens["refresh_token"])
    assert third.status_code == 200
    newest = third.json()

    # the first token again: a reuse; the whole family dies, the newest token included
    reused = await refresh(client, first["refresh_token"])
    assert reused.status_code == 401 and code(reused) == "token_reused"
    dead = await refresh(client, newest["refresh_token"])
    assert dead.status_code == 401 and code(dead) == "token_reused"
    # another login (another family) is untouched
    alive = await refresh(client, other_device["refresh_token"])
    assert alive.status_code == 200

    async with app.state.mpt.sessions() as db:
        rows = (await db.execute(select(RefreshToken))).scalars().all()
    families = {r.family_id for r in rows}
    assert len(families) == 2
    reuse_family = next(r.family_id for r in rows
                        if r.token_hash == hash_secret(first["refresh_token"]))
    assert all(r.revoked_at is not None and r.revoked_reason == "reuse"
               for r in rows if r.family_id == reuse_family)
    assert len([r for r in rows if r.family_id == reuse_family]) == 3


async def test_unknown_and_expired_refresh_tokens(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    unknown = await refresh(client, "no-such-token")
    assert unknown.status_code == 401 and code(unknown) == "token_invalid"
    tokens = (await register(client, "ada@example.com"))["tokens"]
    async with app.state.mpt.sessions() as db, db.begin():
        row = (await db.execute(select(RefreshToken))).scalar_one()
        row.expires_at = row.created_at
    expired = await refresh(client, tokens["refresh_token"])
    assert expired.status_code == 401 and code(expired) == "token_invalid"
    assert "expired" in expired.json()["detail"]


async def test_refresh_issues_the_current_role(client: httpx.AsyncClient, app: FastAPI) -> None:
    body = await register(client, "ada@example.com")
    async with app.state.mpt.sessions() as db, db.begin():
        (await db.get(User, uuid.UUID(body["user"]["id"]))).role = "teacher"
    new = (await refresh(client, body["tokens"]["refresh_token"])).json()
    claims = verify_token(new["access_token"], app.state.mpt.public_key, audience="mpt-api")
    assert claims.role == "teacher"


async def test_reuse_detection_survives_a_restart(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    first = (await register(client, "ada@example.com"))["tokens"]
    rotated = (await refresh(client, first["refresh_token"])).json()
    # a second app (a restarted or parallel worker) on the same database
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as other:
            reused = await refresh(other, first["refresh_token"])
            assert reused.status_code == 401 and code(reused) == "token_reused"
            dead = await refresh(other, rotated["refresh_token"])
            assert code(dead) == "token_reused"
    # and the first app sees the revocation too
    assert code(await refresh(client, rotated["refresh_token"])) == "token_reused"


async def test_concurrent_refreshes_of_one_token_let_exactly_one_win(
    client: httpx.AsyncClient,
) -> None:
    tokens = (await register(client, "ada@example.com"))["tokens"]
    for _round in range(3):
        responses = await asyncio.gather(
            *(refresh(client, tokens["refresh_token"]) for _ in range(4))
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 401, 401, 401], [r.text for r in responses]
        assert {code(r) for r in responses if r.status_code == 401} == {"token_reused"}
        # the loser's reuse revoked the family: the winner's new token is dead as well
        winner = next(r for r in responses if r.status_code == 200).json()
        assert code(await refresh(client, winner["refresh_token"])) == "token_reused"
        tokens = (await login(client, "ada@example.com")).json()


async def test_logout_revokes_the_family_only(client: httpx.AsyncClient) -> None:
    phone = (await register(client, "ada@example.com"))["tokens"]
    laptop = (await login(client, "ada@example.com")).json()
    phone2 = (await refresh(client, phone["refresh_token"])).json()
    response = await client.post(f"{API}/auth/logout",
                                 json={"refresh_token": phone2["refresh_token"]})
    assert response.status_code == 204
    assert code(await refresh(client, phone2["refresh_token"])) == "token_reused"
    assert (await refresh(client, laptop["refresh_token"])).status_code == 200
    again = await client.post(f"{API}/auth/logout", json={"refresh_token": "unknown"})
    assert again.status_code == 204


async def test_logout_all_devices(client: httpx.AsyncClient) -> None:
    phone = (await register(client, "ada@example.com"))["tokens"]
    laptop = (await login(client, "ada@example.com")).json()
    response = await client.post(f"{API}/auth/logout", json={
        "refresh_token": phone["refresh_token"], "all_devices": True})
    assert response.status_code == 204
    for tokens in (phone, laptop):
        assert (await refresh(client, tokens["refresh_token"])).status_code == 401
    assert (await login(client, "ada@example.com")).status_code == 200
