"""Helpers for the supervisor and ``mpt up``/``mpt stream`` tests: process liveness read from
/proc (a zombie counts as gone), bounded waits, and a graceful stop of ``mpt up``."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.mpt._support.processes import Child

__all__ = ["alive", "group_members", "read_until", "stop_gracefully", "wait_gone"]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, waiting for a parent to reap it, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: Sequence[int], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if alive(p)]}"
        time.sleep(0.05)


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop_gracefully(child: Child) -> None:
    """SIGTERM `mpt up` (so it stops its engine) and reap it; kill it if it overstays."""
    if child.proc.poll() is None:
        child.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout=20)
    child.close()


def read_until(child: Child, pattern: str, *, timeout_s: float = 60.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        line = child.read_line(timeout_s=max(0.1, deadline - time.monotonic()))
        found = re.search(pattern, line)
        if found:
            return found
