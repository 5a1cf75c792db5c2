"""HTTP routes of the library domain (thin: validate, call the service)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
