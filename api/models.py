"""Every table, imported in one place so the metadata is complete (Alembic, tests)."""

from __future__ import annotations

from api.accounts import models as accounts
from api.db import Base
from api.gamification import models as gamification
from api.metrics import models as metrics
from api.practice import models as practice
from api.sync import models as sync
from api.teaching import models as teaching

__all__ = ["Base", "accounts", "gamification", "metrics", "practice", "sync", "teaching"]
