"""Password change and reset, the dummy hash for unknown accounts and rehashing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select

from api.accounts.models import PasswordResetToken, RefreshToken, User
from api.accounts.passwords import dummy_hash, make_hasher, verify_password
from api.notify import MemoryNotifier
from mpt.settings import PasswordHashSettings, Settings
from tests.api.accounts._support import API, PASSWORD, bearer, code, login, refresh, register

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "another long passphrase"


async def test_change_password_needs_the_current_one_and_logs_out_everywhere(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    tokens = (await register(client, "ada@example.com"))["tokens"]
    other = (await login(client, "ada@example.com")).json()
    wrong = await client.post(f"{API}/auth/password/change", headers=bearer(tokens), json={
        "current_password": "not my password", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 401 and code(wrong) == "invalid_credentials"
    weak = await client.post(f"{API}/auth/password/change", headers=bearer(tokens), json={
        "current_password": PASSWORD, "new_password": "short"})
    assert weak.status_code == 422 and "new_password" in weak.text
    anonymous = await client.post(f"{API}/auth/password/change", json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert anonymous.status_code == 401

    done = await client.post(f"{API}/auth/password/change", headers=bearer(tokens), json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert done.status_code == 204
    for t in (tokens, other):
        assert (await refresh(client, t["refresh_token"])).status_code == 401
    assert (await login(client, "ada@example.com")).status_code == 401
    assert (await login(client, "ada@example.com", NEW_PASSWORD)).status_code == 200
    async with app.state.mpt.sessions() as db:
        revoked = (await db.execute(
            select(RefreshToken.revoked_reason).where(RefreshToken.revoked_reason.is_not(None))
        )).scalars().all()
    assert sorted(revoked) == ["password_change", "password_change"]


async def test_reset_flow_with_the_notified_token(
    client: httpx.AsyncClient, app: FastAPI, notifier: MemoryNotifier
) -> None:
    tokens = (await register(client, "ada@example.com"))["tokens"]
    asked = await client.post(f"{API}/auth/password/reset-request",
                              json={"email": " ADA@example.com"})
    assert asked.status_code == 202
    assert [(n.to, n.kind) for n in notifier.sent] == [("ada@example.com", "password_reset")]
    reset_token = notifier.sent[0].token
    assert reset_token and reset_token in notifier.sent[0].text
    async with app.state.mpt.sessions() as db:
        stored = (await db.execute(select(PasswordResetToken))).scalar_one()
    assert reset_token not in stored.token_hash and len(stored.token_hash) == 64
    assert timedelta(minutes=59) < stored.expires_at - stored.created_at <= timedelta(hours=1)

    done = await client.post(f"{API}/auth/password/reset", json={
        "token": reset_token, "new_password": NEW_PASSWORD})
    assert done.status_code == 204
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401
    assert (await login(client, "ada@example.com")).status_code == 401
    assert (await login(client, "ada@example.com", NEW_PASSWORD)).status_code == 200

    used = await client.post(f"{API}/auth/password/reset", json={
        "token": reset_token, "new_password": "yet another passphrase"})
    assert used.status_code == 400 and code(used) == "reset_token_invalid"


async def test_reset_request_does_not_reveal_accounts(
    client: httpx.AsyncClient, notifier: MemoryNotifier
) -> None:
    await register(client, "ada@example.com")
    response = await client.post(f"{API}/auth/password/reset-request",
                                 json={"email": "nobody@example.com"})
    assert response.status_code == 202
    known = await client.post(f"{API}/auth/password/reset-request",
                              json={"email": "ada@example.com"})
    assert known.status_code == 202 and known.json() == response.json()
    assert [n.to for n in notifier.sent] == ["ada@example.com"]


async def test_reset_token_invalid_cases(
    client: httpx.AsyncClient, app: FastAPI, notifier: MemoryNotifier
) -> None:
    unknown = await client.post(f"{API}/auth/password/reset", json={
        "token": "made-up", "new_password": NEW_PASSWORD})
    assert unknown.status_code == 400 and code(unknown) == "reset_token_invalid"
    await register(client, "ada@example.com")
    await client.post(f"{API}/auth/password/reset-request", json={"email": "ada@example.com"})
    async with app.state.mpt.sessions() as db, db.begin():
        row = (await db.execute(select(PasswordResetToken))).scalar_one()
        row.expires_at = row.created_at
    expired = await client.post(f"{API}/auth/password/reset", json={
        "token": notifier.sent[0].token, "new_password": NEW_PASSWORD})
    assert expired.status_code == 400 and code(expired) == "reset_token_invalid"
    weak = await client.post(f"{API}/auth/password/reset", json={
        "token": notifier.sent[0].token, "new_password": "short"})
    assert weak.status_code == 422
    assert (await login(client, "ada@example.com")).status_code == 200


async def test_verify_without_hash_uses_the_dummy_and_fails() -> None:
    hasher = make_hasher(PasswordHashSettings())
    assert (await verify_password(hasher, "anything at all", None)).ok is False
    assert (await verify_password(hasher, "anything at all", "not-a-hash")).ok is False
    dummy = dummy_hash(hasher)
    # made by the same hasher (so it costs what a real account's check costs), once
    assert dummy.startswith("$argon2id$v=19$m=19456,t=2,p=1$") and dummy_hash(hasher) == dummy
    assert hasher.verify_and_update("x", dummy) == (False, None)  # a well-formed hash
    other = make_hasher(PasswordHashSettings(memory_kib=8192, time_cost=1))
    assert dummy_hash(other).startswith("$argon2id$v=19$m=8192,t=1,p=1$")


def test_the_hash_cost_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_hasher(Settings().api.password_hash).hash("a long passphrase").startswith(
        "$argon2id$v=19$m=19456,t=2,p=1$")  # OWASP's recommended minimum by default
    monkeypatch.setenv("MPT_API__PASSWORD_HASH__MEMORY_KIB", "65536")
    monkeypatch.setenv("MPT_API__PASSWORD_HASH__TIME_COST", "3")
    monkeypatch.setenv("MPT_API__PASSWORD_HASH__PARALLELISM", "4")
    assert make_hasher(Settings().api.password_hash).hash("a long passphrase").startswith(
        "$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106's low-memory profile
    monkeypatch.setenv("MPT_API__PASSWORD_HASH__MEMORY_KIB", "1024")
    with pytest.raises(ValueError, match="memory_kib"):
        Settings()


async def test_outdated_hash_is_replaced_at_login(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    app.state.mpt.hasher = make_hasher(PasswordHashSettings())  # the real parameters
    user_id = uuid.UUID((await register(client, "ada@example.com"))["user"]["id"])
    weak = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1),))
    old_hash = weak.hash(PASSWORD)
    async with app.state.mpt.sessions() as db, db.begin():
        (await db.get(User, user_id)).password_hash = old_hash
    assert (await login(client, "ada@example.com")).status_code == 200
    async with app.state.mpt.sessions() as db:
        new_hash = (await db.get(User, user_id)).password_hash
    assert new_hash != old_hash and "$m=19456,t=2,p=1$" in new_hash
    assert (await login(client, "ada@example.com")).status_code == 200
