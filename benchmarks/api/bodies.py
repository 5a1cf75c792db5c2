"""Request bodies of the API load mix, shared by the locustfile and the in-process replay
(:mod:`benchmarks.api.replay`); no locust import here (it patches the standard library)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["session_body"]


def session_body(*, session_id: str | None = None) -> dict[str, Any]:
    """A practice session as the mix's students log them: some time in the last 30 days,
    one segment; with ``session_id``, an offline client's own id."""
    started = datetime.now(UTC) - timedelta(minutes=random.randint(30, 60 * 24 * 30))
    body: dict[str, Any] = {
        "focus": random.choice(["Scales in thirds", "Etude no. 3", "Sight-reading", "Bach"]),
        "started_at": started.isoformat(),
        "ended_at": (started + timedelta(minutes=random.randint(5, 60))).isoformat(),
        "self_rating": random.randint(1, 5),
        "target_bpm": random.choice([60, 72, 88, 96, 120]),
        "mode": random.choice(["normal", "slow", "performance"]),
        "tag_ids": [],
        "segments": [{"label": "A", "start_bar": 1, "end_bar": random.randint(2, 32),
                      "click_count": random.randint(0, 9)}],
    }
    if session_id is not None:
        body["id"] = session_id
    return body
