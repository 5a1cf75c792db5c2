"""A guardian's consent for a minor's teacher: who records it, replacing, revoking."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api.teaching.models import MinorConsent
from tests.api._support.world import World, add_session, build_world

pytestmark = pytest.mark.anyio

GUARDIAN = {"guardian_name": "  Maria Rossi ", "guardian_email": "Maria.Rossi@Example.com"}


def consent_url(student_id: uuid.UUID, teacher_id: uuid.UUID) -> str:
    return f"/api/v1/students/{student_id}/teachers/{teacher_id}/consent"


async def _teacher_reads(client: httpx.AsyncClient, world: World,
                         session_id: uuid.UUID) -> httpx.Response:
    return await client.get(f"/api/v1/sessions/{session_id}/feedback",
                            headers=world.teacher.headers)


async def test_minor_records_and_revokes(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    minor = world.minor_no_consent
    session_id = await add_session(app, minor.id)
    before = await _teacher_reads(client, world, session_id)
    assert before.status_code == 403 and before.json()["code"] == "consent_required"

    url = consent_url(minor.id, world.teacher.id)
    created = await client.put(url, json=GUARDIAN, headers=minor.headers)
    assert created.status_code == 201, created.text
    consent = created.json()
    assert consent["guardian_name"] == "Maria Rossi"
    assert consent["guardian_email"] == "maria.rossi@example.com"
    assert consent["recorded_by"] == str(minor.id)
    assert consent["link_id"] == str(world.links["minor_no_consent"])
    assert consent["revoked_at"] is None
    assert (await _teacher_reads(client, world, session_id)).status_code == 200

    replaced = await client.put(url, json={"guardian_name": "Luca Rossi",
                                           "guardian_email": "luca@example.com"},
                                headers=world.admin.headers)
    assert replaced.status_code == 200
    assert replaced.json()["id"] == consent["id"]
    assert replaced.json()["guardian_name"] == "Luca Rossi"
    assert replaced.json()["recorded_by"] == str(world.admin.id)

    assert (await client.delete(url, headers=minor.headers)).status_code == 204
    after = await _teacher_reads(client, world, session_id)
    assert after.status_code == 403 and after.json()["code"] == "consent_required"
    async with app.state.mpt.sessions() as db:
        rows = (await db.execute(
            select(MinorConsent).where(MinorConsent.link_id == world.links["minor_no_consent"])
        )).scalars().all()
    assert len(rows) == 1 and rows[0].revoked_at is not None
    again = await client.delete(url, headers=minor.headers)
    assert again.status_code == 404 and again.json()["code"] == "consent_not_found"

    # a new consent after a revocation is a new record
    renewed = await client.put(url, json=GUARDIAN, headers=minor.headers)
    assert renewed.status_code == 201 and renewed.json()["id"] != consent["id"]


async def test_admin_records_consent(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    url = consent_url(world.minor_no_consent.id, world.teacher.id)
    response = await client.put(url, json=GUARDIAN, headers=world.admin.headers)
    assert response.status_code == 201
    assert response.json()["recorded_by"] == str(world.admin.id)
    assert (await client.delete(url, headers=world.admin.headers)).status_code == 204


@pytest.mark.parametrize("actor", ["teacher", "other_student", "minor", "other_teacher"])
async def test_others_may_not_record(client: httpx.AsyncClient, app: FastAPI,
                                     actor: str) -> None:
    world = await build_world(app)
    url = consent_url(world.minor_no_consent.id, world.teacher.id)
    headers = world.actor(actor).headers
    assert (await client.put(url, json=GUARDIAN, headers=headers)).status_code == 403
    assert (await client.delete(url, headers=headers)).status_code == 403


async def test_consent_needs_an_active_link(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    never = await client.put(consent_url(world.student.id, world.other_teacher.id),
                             json=GUARDIAN, headers=world.student.headers)
    assert never.status_code == 404 and never.json()["code"] == "link_not_found"
    ended = await client.put(consent_url(world.student.id, world.former_teacher.id),
                             json=GUARDIAN, headers=world.student.headers)
    assert ended.status_code == 409 and ended.json()["code"] == "link_ended"
    unknown = await client.put(consent_url(uuid.uuid4(), world.teacher.id), json=GUARDIAN,
                               headers=world.admin.headers)
    assert unknown.status_code == 404


@pytest.mark.parametrize("body", [
    {"guardian_name": "Maria", "guardian_email": "not-an-email"},
    {"guardian_name": "   ", "guardian_email": "maria@example.com"},
    {"guardian_name": "x" * 121, "guardian_email": "maria@example.com"},
    {"guardian_name": "Maria"},
])
async def test_consent_body_is_validated(client: httpx.AsyncClient, app: FastAPI,
                                         body: dict[str, str]) -> None:
    world = await build_world(app)
    response = await client.put(consent_url(world.minor_no_consent.id, world.teacher.id),
                                json=body, headers=world.minor_no_consent.headers)
    assert response.status_code == 422
