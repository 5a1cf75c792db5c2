"""Route lookup narrowed by the path's first segments and its length.

FastAPI finds a request's route by asking each included router in turn, and each router
tries every one of its routes (a regular expression and some scope bookkeeping per route;
the router that matches tries its routes a second time to handle the request). With the
sixty-odd routes of this API that was a fifth of the CPU of a cheap read.
:class:`RouteIndex` sits in front of the application's router: for each beginning of a
path (its first three segments, ``/api/v1/sessions``) and each number of segments, it keeps
the included routers narrowed to their routes that can match such a path, in their order,
and lets FastAPI's own matching run over those only. A path that none of its bucket's
routes matches (a 404, a redirect to the path with or without its trailing slash, a path
outside the API) and any request after the routes changed go through the whole list as
before, so the same route answers every request, or the same 404, 405 or redirect.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.routing import compile_path
from starlette.types import Receive, Scope, Send

__all__ = ["RouteIndex"]

DEPTH = 3  # path segments a bucket is keyed by, beside the number of segments and the last

# (the first DEPTH segments, how many segments, the last one or WILD when it is a parameter)
Key = tuple[tuple[str, ...], int, str]
WILD = "{}"  # no path segment is this (FastAPI reads "{}" in a template as a parameter)


def _key_of_path(path: str) -> Key:
    """The bucket of a request's path."""
    parts = path.split("/")
    return tuple(parts[1:DEPTH + 1]), len(parts) - 1, parts[-1]


def _key(template: str) -> Key | None:
    """The bucket of a route's path template (its last segment WILD when a parameter); None
    when a parameter comes before the end of the first segments or can span segments (such
    a route can match paths of any bucket)."""
    first, count, last = _key_of_path(template)
    if any("{" in part for part in first) or ":path}" in template:
        return None
    return first, count, WILD if "{" in last else last


def _fits(template: str | None, key: Key) -> bool:
    """Whether a route of ``template`` (None: unknown) can match a path of bucket ``key``."""
    if template is None:
        return True
    own = _key(template)
    return own is None or (own[:2] == key[:2] and own[2] in (WILD, key[2]))


def _path_of(route: Any) -> str | None:
    """A route's path template; None for one without (an included router, a mount)."""
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def _templates(included: Any, prefix: str) -> list[str | None]:
    """The full path templates of an included router's routes, through the routers it
    includes (None: a route of unknown shape)."""
    out: list[str | None] = []
    for route in included.original_router.routes:
        if hasattr(route, "original_router"):
            out += _templates(route, prefix + route.include_context.prefix)
        else:
            path = _path_of(route)
            out.append(None if path is None else prefix + path)
    return out


def _narrowed(included: Any, prefix: str, key: Key) -> tuple[Any, list[str] | None]:
    """A copy of an included router's entry (FastAPI's ``_IncludedRouter``, through the
    routers it includes) holding only its routes that can match a path of bucket ``key``,
    or None if none can; and their templates (None: one of unknown shape). FastAPI builds
    its per-route handlers for the copy as for the original."""
    kept: list[Any] = []
    templates: list[str] | None = []
    for route in included.original_router.routes:
        if hasattr(route, "original_router"):
            inner, inner_templates = _narrowed(route, prefix + route.include_context.prefix,
                                               key)
            if inner is None:
                continue
            kept.append(inner)
            templates = (None if templates is None or inner_templates is None
                         else templates + inner_templates)
            continue
        path = _path_of(route)
        template = None if path is None else prefix + path
        if _fits(template, key):
            kept.append(route)
            templates = None if templates is None or template is None else [*templates,
                                                                             template]
    if not kept:
        return None, []
    sub = copy.copy(included.original_router)
    sub.routes = kept
    return type(included)(original_router=sub, include_context=included.include_context), templates


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
        first = len(router.routes) - len(included)
        if first < 0 or any(_path_of(route) is not None for route in router.routes[first:]):
            raise RuntimeError("the included routers must be the router's last routes")
        entries: list[Any] = list(router.routes[first:])  # FastAPI's _IncludedRouter entries
        templates = [t for t in map(_path_of, router.routes[:first]) if t is not None]
        for entry in entries:
            templates += [t for t in _templates(entry, entry.include_context.prefix) if t]
        keys = {key for key in map(_key, templates) if key is not None}
        keys |= {(first_parts, count, WILD) for first_parts, count, _last in keys}
        self._shells: dict[Key, APIRouter] = {}
        self._patterns: dict[Key, list[re.Pattern[str]] | None] = {}
        for key in keys:
            shell = copy.copy(router)  # the router's settings, a narrowed copy of its routes
            shell.routes = [route for route in router.routes[:first]
                            if _fits(_path_of(route), key)]
            patterns: list[re.Pattern[str]] | None = []
            for entry in entries:
                narrowed, kept = _narrowed(entry, entry.include_context.prefix, key)
                if narrowed is None:
                    continue
                shell.routes.append(narrowed)
                patterns = (None if patterns is None or kept is None
                            else patterns + [compile_path(t)[0] for t in kept])
            self._shells[key] = shell
            self._patterns[key] = patterns

    def _current_shape(self) -> tuple[int, ...]:
        return (len(self._router.routes), *(len(sub.routes) for sub in self._included))

    def install(self) -> None:
        """Route the application's requests through the index."""
        self._router.middleware_stack = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and not scope.get("root_path")
                and self._current_shape() == self._shape):
            shell = self._shell_for(scope["path"])
            if shell is not None:
                scope.setdefault("router", self._router)
                await shell.app(scope, receive, send)
                return
        await self._full(scope, receive, send)

    def _shell_for(self, path: str) -> APIRouter | None:
        """The narrowed router for ``path``; None when no bucket holds it or none of its
        bucket's routes matches it (then every route is tried)."""
        first, count, last = _key_of_path(path)
        key = (first, count, last)
        if key not in self._shells:
            key = (first, count, WILD)
            if key not in self._shells:
                return None
        patterns = self._patterns[key]
        if patterns is not None and not any(p.match(path) for p in patterns):
            return None
        return self._shells[key]

    def candidates(self, path: str) -> list[Any] | None:
        """The routes tried for ``path``, each included router narrowed to its routes tried
        (None: every route is tried); for tests."""
        shell = self._shell_for(path)
        return None if shell is None else list(shell.routes)
