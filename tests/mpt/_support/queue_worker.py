"""A publisher or consumer process for the durable-queue kill tests.

Run as a script; the queue comes from the environment like a real service's
(``MPT_DATA_DIR`` for SQLite, ``MPT_REDIS__URL`` and ``MPT_REDIS__KEY_PREFIX`` for Redis).
Every step it reaches is printed as one line on stdout, flushed, so the test can kill it
(SIGKILL) at a known point. ``--hang`` makes it wait to be killed at that point.

Commands::

    publish TOPIC EVENT_ID PAYLOAD_JSON RECORD [--hang]
        publish, print "published <True|False>", [hang], then record success in the file
        RECORD and print "recorded".
    publish-many TOPIC COUNT RECORD_DIR
        print "started"; for each event e0..e<COUNT-1> not yet recorded in RECORD_DIR:
        publish it, record it (an empty file named after the event), print "recorded <id>";
        finally print "done".
    consume TOPIC CONSUMER DB LEASE_S [--hang]
        claim one message (waiting up to 10 s), write its payload into the SQLite database
        DB keyed by event id in one transaction (a repeated event id changes nothing), print
        "committed <event_id> <attempts> <inserted 0|1>", [hang], then ack and print "acked".
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path

from mpt.queue import open_queue
from mpt.settings import load_settings

HANG_S = 60.0
CLAIM_WAIT_S = 10.0


def say(line: str) -> None:
    print(line, flush=True)


def hang() -> None:
    time.sleep(HANG_S)  # the test kills us here
    raise SystemExit("queue_worker: not killed in time")


def publish(args: list[str], hang_after: bool) -> int:
    topic, event_id, payload, record = args
    queue = open_queue(load_settings())
    published = queue.publish(topic, event_id, json.loads(payload))
    say(f"published {published}")
    if hang_after:
        hang()
    Path(record).write_text("ok\n")
    say("recorded")
    queue.close()
    return 0


def publish_many(args: list[str]) -> int:
    topic, count, record_dir = args[0], int(args[1]), Path(args[2])
    queue = open_queue(load_settings())
    say("started")
    for i in range(count):
        event_id = f"e{i}"
        if (record_dir / event_id).exists():
            continue
        queue.publish(topic, event_id, {"i": i})
        (record_dir / event_id).touch()
        say(f"recorded {event_id}")
    say("done")
    queue.close()
    return 0


def consume(args: list[str], hang_after: bool) -> int:
    topic, consumer, db_path, lease_s = args[0], args[1], args[2], float(args[3])
    queue = open_queue(load_settings())
    messages = queue.claim(topic, consumer, lease_s=lease_s, block_s=CLAIM_WAIT_S)
    if not messages:
        say("nothing")
        return 3
    (message,) = messages
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute(
        "CREATE TABLE IF NOT EXISTS processed"
        " (event_id TEXT PRIMARY KEY, payload TEXT NOT NULL, attempts INTEGER NOT NULL)"
    )
    db.execute("BEGIN IMMEDIATE")
    inserted = db.execute(
        "INSERT INTO processed (event_id, payload, attempts) VALUES (?, ?, ?)"
        " ON CONFLICT (event_id) DO NOTHING",
        (message.event_id, json.dumps(message.payload), message.attempts),
    ).rowcount
    db.execute("COMMIT")
    db.close()
    say(f"committed {message.event_id} {message.attempts} {inserted}")
    if hang_after:
        hang()
    queue.ack(message)
    say("acked")
    queue.close()
    return 0


def main(argv: list[str]) -> int:
    hang_after = "--hang" in argv
    args = [a for a in argv if a != "--hang"]
    command, rest = args[0], args[1:]
    if command == "publish":
        return publish(rest, hang_after)
    if command == "publish-many":
        return publish_many(rest)
    if command == "consume":
        return consume(rest, hang_after)
    raise SystemExit(f"queue_worker: unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
