"""The route index (api.routing): the routes it lets FastAPI try for a path are every route
that can match that path, in the same order, so the same route answers."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import BaseRoute, Match

from api.main import create_app
from api.routing import RouteIndex
from mpt.settings import Settings

pytestmark = pytest.mark.anyio

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [],
            "query_string": b""}


def _matching(routes: Sequence[BaseRoute], method: str, path: str) -> list[BaseRoute]:
    return [route for route in routes if route.matches(_scope(method, path))[0] != Match.NONE]


def test_the_index_offers_every_route_that_can_match_in_order(settings: Settings) -> None:
    app = create_app(settings)
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    templates = list(app.openapi()["paths"])
    assert len(templates) > 40
    narrowed = 0
    for template in templates:
        path = re.sub(r"\{[^}]+\}", str(uuid.UUID(int=7)), template)
        for variant in (path, path + "/", path + "/extra"):
            candidates = index.candidates(variant)
            if candidates is None:  # the whole list is tried
                continue
            narrowed += len(candidates) < len(app.router.routes)
            for method in METHODS:
                assert (_matching(candidates, method, variant)
                        == _matching(app.router.routes, method, variant)), (method, variant)
    assert narrowed > 2 * len(templates)  # it does narrow the search


async def test_requests_reach_the_same_answers_through_the_index(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/healthz")).status_code == 200
    missing = await client.get("/api/v1/sessions-of-nobody")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    wrong_method = await client.delete("/api/v1/leaderboard")
    assert wrong_method.status_code == 405
    slash = await client.get("/api/v1/leaderboard/", follow_redirects=False)
    assert slash.status_code == 307
    assert slash.headers["location"].endswith("/api/v1/leaderboard")


async def test_a_route_added_later_is_found(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Its path begins like indexed ones (``/api/v1/sessions``), yet the index, built before
    it existed, does not hold it: the index steps aside once the routes change."""

    async def extra() -> dict[str, str]:
        return {"found": "yes"}

    app.add_api_route("/api/v1/sessions/extra/route", extra, methods=["GET"])
    answer = await client.get("/api/v1/sessions/extra/route")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"found": "yes"}


def test_the_index_refuses_routers_it_cannot_see(settings: Settings) -> None:
    app = create_app(settings)
    with pytest.raises(RuntimeError, match="middleware of its own"):
        RouteIndex(app, [])


async def test_a_route_with_a_parameter_early_in_its_path_is_tried_for_every_path() -> None:
    from fastapi import APIRouter

    shelf, anywhere = APIRouter(), APIRouter()

    @shelf.get("/shelf/books/{book_id}")
    async def book(book_id: int) -> dict[str, str]:
        return {"route": "book"}

    @anywhere.get("/{kind}/books/{item_id}")
    async def item(kind: str, item_id: int) -> dict[str, str]:
        return {"route": "item"}

    app = FastAPI()
    included = [(shelf, "/v1"), (anywhere, "/v1")]
    for router, prefix in included:
        app.include_router(router, prefix=prefix)
    index = RouteIndex(app, included)
    index.install()
    assert index.candidates("/v1/shelf/books/1") == app.router.routes[-2:]
    assert index.candidates("/v1/pens/books/1") is None  # no bucket: every route is tried
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        assert (await client.get("/v1/shelf/books/1")).json() == {"route": "book"}
        assert (await client.get("/v1/pens/books/1")).json() == {"route": "item"}
        # the first route that matches answers, and it refuses a book id that is no number
        assert (await client.get("/v1/shelf/books/x")).status_code == 422
