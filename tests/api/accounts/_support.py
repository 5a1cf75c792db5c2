"""Helpers of the accounts tests: register, log in, read problem codes."""

from __future__ import annotations

from typing import Any

import httpx

PASSWORD = "a long enough passphrase"
API = "/api/v1"


async def register(client: httpx.AsyncClient, email: str, *, role: str = "student",
                   password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    """Register and return the 201 body (``user`` and ``tokens``)."""
    body = {"email": email, "password": password, "role": role,
            "display_name": email.split("@")[0], **extra}
    response = await client.post(f"{API}/auth/register", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def login(client: httpx.AsyncClient, email: str,
                password: str = PASSWORD) -> httpx.Response:
    return await client.post(f"{API}/auth/login", json={"email": email, "password": password})


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{API}/auth/refresh", json={"refresh_token": token})


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def code(response: httpx.Response) -> str:
    """The problem details' ``code`` (asserting it is a problem response)."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    value: str = response.json()["code"]
    return value

