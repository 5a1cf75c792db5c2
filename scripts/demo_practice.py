"""The demo's practice round trip through the REST API (stdlib only; run by demo.sh).

1. log in as the demo student (registering on the first run) and create a practice session;
2. stream the take to the engine with ``mpt stream --session-id ... --token <access token>``;
3. wait until the engine's summary, handed to the API through the durable queue, counts for
   the session (its best source becomes ``stream``), then print what the API now says:
   the session's numbers and points, the streak, the timing per beat of the bar, and the
   recommendations.

Exits non-zero with one ``demo: error:`` line when a step fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

EMAIL = "demo.student@example.com"
PASSWORD = "demo practice password"
TARGET_BPM = 96
WAIT_FOR_SUMMARY_S = 60.0


class DemoError(Exception):
    pass


def call(base: str, method: str, path: str, body: dict[str, Any] | None = None,
         token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        problem = exc.read().decode(errors="replace")
        raise DemoError(f"{method} {path} answered {exc.code}: {problem}") from None
    except urllib.error.URLError as exc:
        raise DemoError(f"{method} {path}: the API at {base} cannot be reached: {exc}") from None
    return json.loads(raw) if raw else None


def log_in(base: str) -> tuple[str, str]:
    try:
        tokens = call(base, "POST", "/api/v1/auth/login", {"email": EMAIL, "password": PASSWORD})
    except DemoError as exc:
        if " 401:" not in str(exc):
            raise
        registered = call(base, "POST", "/api/v1/auth/register", {
            "email": EMAIL, "password": PASSWORD, "role": "student",
            "display_name": "Demo Student", "timezone": "UTC",
        })
        tokens = registered["tokens"]
    token = tokens["access_token"]
    me = call(base, "GET", "/api/v1/users/me", token=token)
    return token, str(me["id"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True, help="the API's base URL")
    parser.add_argument("--engine", required=True, help="the engine's host:port")
    parser.add_argument("--mpt", required=True, help="the mpt command")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("file")
    parser.add_argument("stream_args", nargs="*", help="more arguments for mpt stream")
    args = parser.parse_args()
    try:
        token, student_id = log_in(args.api)
        start = datetime.now(UTC)
        session = call(args.api, "POST", "/api/v1/sessions", {
            "started_at": start.isoformat(),
            "ended_at": (start + timedelta(minutes=1)).isoformat(),
            "focus": "Demo etude, eighth notes", "target_bpm": TARGET_BPM, "mode": "normal",
        }, token=token)
        session_id = session["id"]
        print(f"demo: practice session {session_id} of student {student_id} created",
              file=sys.stderr)
        stream = [args.mpt, "stream", args.file, "--target-bpm", str(TARGET_BPM),
                  "--grid-start", "0.5", "--subdivision", "2", "--speed", "4",
                  "--server", args.engine, "--session-id", session_id, "--token", token,
                  "--data-dir", args.data_dir, *args.stream_args]
        if subprocess.run(stream, check=False).returncode != 0:
            raise DemoError("mpt stream failed")
        deadline = time.monotonic() + WAIT_FOR_SUMMARY_S
        counted: dict[str, Any] | None = None
        while counted is None:
            points = call(args.api, "GET", f"/api/v1/students/{student_id}/points", token=token)
            counted = next((s for s in points["sessions"]
                            if s["session_id"] == session_id and s["source"] == "stream"), None)
            if counted is None:
                if time.monotonic() > deadline:
                    raise DemoError(f"the stream's summary did not reach the API within "
                                    f"{WAIT_FOR_SUMMARY_S:.0f} s")
                time.sleep(0.5)
        streak = call(args.api, "GET", f"/api/v1/students/{student_id}/streak", token=token)
        heatmap = call(args.api, "GET", f"/api/v1/students/{student_id}/timing-heatmap?days=1",
                       token=token)
        advice = call(args.api, "GET", f"/api/v1/students/{student_id}/recommendations",
                      token=token)
    except DemoError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    accuracy = counted["accuracy_pct"]
    print("\nThe API now holds the stream's numbers for the session (source: stream):")
    print(f"  analysed {counted['minutes']:.2f} min, accuracy "
          f"{'n/a' if accuracy is None else f'{accuracy:.0f} %'}, points {counted['points']} "
          f"(of {points['total_points']} in all)")
    print(f"  streak: {streak['current_days']} day(s), longest {streak['longest_days']}")
    beats = ", ".join(f"beat {b['beat']} {b['mean_dev_ms']:+.0f} ms"
                      for b in heatmap.get("beats", []))
    print(f"  timing per beat of the bar (mean deviation, + = late): {beats or 'n/a'}")
    for item in advice.get("items", []):
        print(f"  recommendation: {item['title']} — {item['reason']}")
    print(f"  charts: {args.api}/api/v1/students/{student_id}/charts/minutes.svg"
          "?access_token=<token>")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
