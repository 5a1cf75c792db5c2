"""The API's consumer of ``stream.summary.v1`` events from the durable queue.

Loop: claim a batch (group ``api-metrics``) -> apply each event in its own transaction
(:func:`api.metrics.service.apply_stream_summary`, idempotent by event id) -> acknowledge.
At-least-once delivery plus the event id recorded with the effect gives exactly-once
effects: a consumer killed between the commit and the ack sees the event again and finds it
recorded. Every ``sweep_every_s`` it also applies pending events whose session has arrived
(the session's own transaction applies them too; the sweep closes the race where both
commit at once).

It runs inside the API process (a task of the lifespan; ``MPT_API__CONSUME_EVENTS``) or
alone with ``python -m api.metrics.consumer`` (used by the kill tests).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.metrics.service import (
    STREAM_SUMMARY_TOPIC,
    apply_pending_for_session,
    apply_stream_summary,
    pending_session_ids,
)
from mpt.queue import DurableQueue, open_queue
from mpt.settings import Settings

__all__ = ["CONSUMER_GROUP", "ConsumerStats", "consume_once", "run_consumer"]

log = logging.getLogger("api.metrics.consumer")
#: Called with an event's payload after it was applied and acknowledged.
AfterApplied = Callable[[dict[str, Any]], Awaitable[None]]
CONSUMER_GROUP = "api-metrics"


@dataclass
class ConsumerStats:
    """Counts since the consumer started, by outcome."""

    outcomes: dict[str, int] = field(default_factory=dict)
    swept: int = 0

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def consumer_name() -> str:
    """A name unique to this process: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


async def consume_once(
    queue: DurableQueue,
    sessions: async_sessionmaker[AsyncSession],
    *,
    consumer: str,
    stats: ConsumerStats,
    max_items: int = 50,
    block_s: float = 1.0,
    lease_s: float = 30.0,
    after_applied: AfterApplied | None = None,
) -> int:
    """Claim one batch, apply and acknowledge each event; return how many were handled."""
    messages = await asyncio.to_thread(
        queue.claim, STREAM_SUMMARY_TOPIC, consumer, group=CONSUMER_GROUP, lease_s=lease_s,
        max_items=max_items, block_s=block_s,
    )
    for message in messages:
        async with sessions() as db:
            outcome = await apply_stream_summary(db, message.payload, event_id=message.event_id,
                                                 topic=message.topic)
        stats.count(outcome)
        await asyncio.to_thread(queue.ack, message)
        if outcome == "applied" and after_applied is not None:
            try:
                await after_applied(message.payload)
            except Exception:  # a derived view (the leaderboard); the event is applied
                log.exception("after-apply hook failed for event %s", message.event_id)
    return len(messages)


async def sweep_pending(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Apply pending events whose sessions now exist; return how many were settled."""
    async with sessions() as db:
        ids = await pending_session_ids(db)
    done = 0
    for session_id in ids:
        async with sessions() as db, db.begin():
            done += await apply_pending_for_session(db, session_id)
    return done


async def run_consumer(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    stop: asyncio.Event,
    stats: ConsumerStats | None = None,
    sweep_every_s: float = 30.0,
    block_s: float = 1.0,
    lease_s: float = 30.0,
    max_items: int = 50,
    after_applied: AfterApplied | None = None,
) -> ConsumerStats:
    """Consume until ``stop`` is set. Errors of one round are logged and retried after a
    pause (the queue or database may be briefly unavailable); nothing is acknowledged
    unless it was applied."""
    stats = stats or ConsumerStats()
    name = consumer_name()
    queue = await asyncio.to_thread(open_queue, settings)
    last_sweep = 0.0
    try:
        while not stop.is_set():
            try:
                await consume_once(queue, sessions, consumer=name, stats=stats,
                                   block_s=block_s, lease_s=lease_s, max_items=max_items,
                                   after_applied=after_applied)
                if time.monotonic() - last_sweep >= sweep_every_s:
                    last_sweep = time.monotonic()
                    stats.swept += await sweep_pending(sessions)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the event consumer failed a round; retrying in 1 s")
                await asyncio.sleep(1.0)
    finally:
        await asyncio.to_thread(queue.close)
    return stats


def main(argv: list[str] | None = None) -> int:
    """``python -m api.metrics.consumer [--data-dir D]``: consume until SIGTERM/SIGINT."""
    import signal

    import api.models  # noqa: F401  (every table, so foreign-key column types resolve)
    from api.db import make_engine, make_sessionmaker
    from mpt.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m api.metrics.consumer")
    parser.add_argument("--data-dir", help="the data directory (default MPT_DATA_DIR)")
    parser.add_argument("--sweep-every-s", type=float, default=30.0,
                        help="how often pending events are retried (default 30)")
    parser.add_argument("--lease-s", type=float, default=30.0,
                        help="how long a claimed event is leased before redelivery (default 30)")
    parser.add_argument("--batch", type=int, default=50, help="events per claim (default 50)")
    args = parser.parse_args(argv)
    if args.data_dir:
        os.environ["MPT_DATA_DIR"] = args.data_dir
    settings = load_settings()
    logging.basicConfig(level=logging.INFO)

    async def run() -> None:
        engine = make_engine(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            stats = await run_consumer(settings, make_sessionmaker(engine), stop=stop,
                                       sweep_every_s=args.sweep_every_s,
                                       lease_s=args.lease_s, max_items=args.batch)
            log.info("consumer stopped: %s", stats.outcomes)
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
