"""Route lookup narrowed by the path's first segments.

FastAPI finds a request's route by asking each included router in turn, and each router
tries every one of its routes (a regular expression and some scope bookkeeping per route;
the router that matches tries its routes a second time to handle the request). With the
sixty-odd routes of this API that is a tenth of the CPU of a cheap request.
:class:`RouteIndex` sits in front of the application's router: it keeps, for each beginning
of a path (its first three segments, ``/api/v1/sessions``), the included routers that have
a route which can begin that way, in their order, and lets FastAPI's own matching run over
those only, so the first route that matches is the same one. A path no bucket holds (a
404, a path outside the API) and any request after the routes changed go through the
whole list as before.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import Receive, Scope, Send

__all__ = ["RouteIndex"]

DEPTH = 3  # path segments a bucket is keyed by


def _bucket(path: str) -> tuple[str, ...]:
    """The first ``DEPTH`` segments of a path."""
    return tuple(path.split("/", DEPTH + 1)[1:DEPTH + 1])


def _key(path: str) -> tuple[str, ...] | None:
    """The bucket of a route's path template; None when a parameter comes before the end
    of the key (such a route can match paths of any bucket)."""
    key = _bucket(path)
    return None if any("{" in part for part in key) else key


def _path_of(route: Any) -> list[str] | None:
    """A route's path template, as a list of one; None for one without (an included
    router, a mount)."""
    path = getattr(route, "path", None)
    return [path] if isinstance(path, str) else None


def _keys(templates: list[str] | None) -> set[tuple[str, ...]] | None:
    """The buckets of a route's path templates; None when it belongs in every bucket."""
    if templates is None:
        return None
    keys = {_key(path) for path in templates}
    return None if None in keys else {key for key in keys if key is not None}


class RouteIndex:
    """See the module docstring. Install it with :meth:`install` once every router is
    included.

    Parameters
    ----------
    app : FastAPI
        The application; its router's routes are indexed.
    included : sequence of (APIRouter, str)
        The routers included in the application, with their prefixes, in the order of
        inclusion (each made one entry of ``app.router.routes``).
    """

    def __init__(self, app: FastAPI, included: Sequence[tuple[APIRouter, str]]) -> None:
        router = app.router
        if router.middleware_stack != router.app:
            raise RuntimeError("the application's router has middleware of its own: "
                               "the route index would bypass it")
        self._router = router
        self._full = router.app
        self._included = [sub for sub, _prefix in included]
        self._shape = self._current_shape()
        paths: list[list[str] | None] = [_path_of(route) for route in router.routes]
        first = len(router.routes) - len(included)
        if first < 0 or any(paths[first + offset] is not None for offset in range(len(included))):
            raise RuntimeError("the included routers must be the router's last routes")
        for offset, (sub, prefix) in enumerate(included):
            inner = [_path_of(route) for route in sub.routes]
            paths[first + offset] = (None if any(path is None for path in inner)
                                     else [prefix + path[0] for path in inner if path])
        keys = [_keys(templates) for templates in paths]
        buckets = set().union(*(k for k in keys if k is not None))
        self._shells: dict[tuple[str, ...], APIRouter] = {}
        for bucket in buckets:
            shell = copy.copy(router)  # the router's settings, a part of its routes
            shell.routes = [route for route, route_keys in zip(router.routes, keys, strict=True)
                            if route_keys is None or bucket in route_keys]
            self._shells[bucket] = shell

    def _current_shape(self) -> tuple[int, ...]:
        return (len(self._router.routes), *(len(sub.routes) for sub in self._included))

    def install(self) -> None:
        """Route the application's requests through the index."""
        self._router.middleware_stack = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            shell = self._shells.get(_bucket(scope["path"]))
            if shell is not None and self._current_shape() == self._shape:
                scope.setdefault("router", self._router)
                await shell.app(scope, receive, send)
                return
        await self._full(scope, receive, send)

    def candidates(self, path: str) -> list[Any] | None:
        """The routes tried for ``path`` (None: all of them); for tests."""
        shell = self._shells.get(_bucket(path))
        return None if shell is None else list(shell.routes)
