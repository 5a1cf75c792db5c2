"""The API load benchmark's locust command: users ramped in, statistics reset, logins spread."""

from __future__ import annotations

from pathlib import Path

from benchmarks.api.run_api_load import locust_command


def _arg(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_ramped_users_are_measured_once_all_have_arrived() -> None:
    cmd, env = locust_command("locust", "http://127.0.0.1:1", Path("/tmp/x"), users=50,
                              duration_s=45.0, ramp_s=5.0)
    assert _arg(cmd, "-u") == "50"
    assert _arg(cmd, "-r") == "10"  # 50 users over 5 s
    assert "--reset-stats" in cmd
    assert _arg(cmd, "-t") == "50s"  # the ramp, then the 45 s measured
    assert env == {"MPT_BENCH_LOGIN_AFTER_S": "5", "MPT_BENCH_LOGIN_WITHIN_S": "40"}


def test_without_a_ramp_everyone_arrives_and_logs_in_at_once() -> None:
    cmd, env = locust_command("locust", "http://127.0.0.1:1", Path("/tmp/x"), users=32,
                              duration_s=45.0, ramp_s=0.0)
    assert _arg(cmd, "-r") == "32"
    assert "--reset-stats" not in cmd
    assert _arg(cmd, "-t") == "45s"
    assert env == {"MPT_BENCH_LOGIN_AFTER_S": "0", "MPT_BENCH_LOGIN_WITHIN_S": "0"}
