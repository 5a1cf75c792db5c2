"""Test users with unique e-mails (``make_user``'s default e-mail takes the first 10 hex
digits of a UUIDv7 — its timestamp — so two users made within ~256 ms would collide)."""

from __future__ import annotations

import uuid

from fastapi import FastAPI

from mpt.tokens import Role
from tests.api._support.users import TestUser, make_user


async def person(app: FastAPI, role: Role = "student", *, is_minor: bool = False) -> TestUser:
    """A user of ``role`` with a random e-mail."""
    return await make_user(app, role=role, is_minor=is_minor,
                           email=f"{role}-{uuid.uuid4().hex}@example.com")
