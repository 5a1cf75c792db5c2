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


def _matching(routes: Sequence[BaseRoute], method: str, path: str) -> list[Any]:
    """The routes that match ``path`` (an included router: the route of it that matches,
    FastAPI's choice), with how (full or partial), in order."""
    found: list[Any] = []
    for entry in routes:
        scope = _scope(method, path)
        match, route = Match.NONE, entry
        if hasattr(entry, "_match"):  # an included router (FastAPI's _IncludedRouter)
            match, _, route, _ = entry._match(scope)
            while hasattr(route, "_match"):  # a router it includes: its route that matches
                match, _, route, _ = route._match(scope)
        else:
            (match, _), route = entry.matches(scope), entry
        if match != Match.NONE:
            found.append((match, route))
    return found


def test_the_index_offers_every_route_that_can_match_in_order(settings: Settings) -> None:
    app = create_app(settings)
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    templates = list(app.openapi()["paths"])
    assert len(templates) > 40
    tried: list[int] = []  # routes tried for each template's own path
    total = sum(len(getattr(c, "original_router", c).routes) if hasattr(c, "original_router")
                else 1 for c in app.router.routes)
    for template in templates:
        path = re.sub(r"\{[^}]+\}", str(uuid.UUID(int=7)), template)
        for variant in (path, path + "/", path + "/extra"):
            candidates = index.candidates(variant)
            if candidates is None:  # the whole list is tried
                continue
            if variant == path:
                tried.append(sum(len(c.original_router.routes) if hasattr(c, "original_router")
                                 else 1 for c in candidates))
            for method in METHODS:
                assert (_matching(candidates, method, variant)
                        == _matching(app.router.routes, method, variant)), (method, variant)
    # it does narrow the search: every template's own path has a bucket of a few routes
    assert len(tried) == len(templates)
    assert max(tried) <= 12 < total, (max(tried), total)
    assert sum(tried) / len(tried) <= 6, sorted(tried)


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


async def test_a_route_ending_in_a_parameter_is_tried_where_a_later_literal_one_is() -> None:
    """FastAPI's first match answers: ``/items/{item_id}`` declared before ``/items/new``
    takes ``/items/new`` too, through the index as without it."""
    from fastapi import APIRouter

    items = APIRouter()

    @items.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"route": "item", "id": item_id}

    @items.get("/items/new")
    async def new() -> dict[str, str]:
        return {"route": "new"}

    @items.get("/items/{item_id}/parts")
    async def parts(item_id: str) -> dict[str, str]:
        return {"route": "parts"}

    app = FastAPI()
    app.include_router(items, prefix="/api/v1")
    index = RouteIndex(app, [(items, "/api/v1")])
    index.install()
    assert index.candidates("/api/v1/items/new") is not None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        assert (await client.get("/api/v1/items/new")).json() == {"route": "item", "id": "new"}
        assert (await client.get("/api/v1/items/7")).json() == {"route": "item", "id": "7"}
        assert (await client.get("/api/v1/items/7/parts")).json() == {"route": "parts"}
        assert (await client.post("/api/v1/items/7")).status_code == 405
        assert (await client.get("/api/v1/items/7/parts/9")).status_code == 404
