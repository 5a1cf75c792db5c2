"""Health, readiness, metrics and the cross-cutting request plumbing."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.api._support.users import make_user

pytestmark = pytest.mark.anyio


async def test_healthz_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok"}


async def test_unknown_path_is_problem_details(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "not_found" and body["status"] == 404
    assert body["instance"] == "/api/v1/no-such-thing"


async def test_problem_titles_are_the_status_phrases(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The title is the HTTP status's phrase (RFC 9457), not a class name."""
    student = await make_user(app, role="student")
    forbidden = await client.get("/api/v1/teachers/me/dashboard", headers=student.headers)
    assert (forbidden.status_code, forbidden.json()["title"]) == (403, "Forbidden")
    invalid = await client.get("/api/v1/sessions?limit=0", headers=student.headers)
    assert (invalid.status_code, invalid.json()["title"]) == (422, "Unprocessable content")
    unknown = await client.get("/api/v1/no-such-thing")
    assert unknown.json()["title"] == "Not found"


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    text = (await client.get("/metrics")).text
    assert 'mpt_api_requests_total{method="GET",route="/healthz",status="200"}' in text
