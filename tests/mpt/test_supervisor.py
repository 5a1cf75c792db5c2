"""Tests of mpt/supervisor.py with real child processes (small ``python -c`` programs), and of
``mpt up`` as a process: banner, a killed engine restarted, Ctrl-C stopping every process.

Every wait is bounded: the supervisor runs under a watchdog that asks it to stop, children
sleep for at most a minute, and the ``mpt up`` process is killed if it overstays.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from mpt.cli import main
from mpt.supervisor import ChildSpec, ReadyFile, ReadyInfo, RestartPolicy, Supervisor, TcpPort
from tests.mpt._support.processes import Child, child_env
from tests.mpt._support.supervised import (
    alive,
    group_members,
    read_until,
    stop_gracefully,
    wait_gone,
)

FAST = RestartPolicy(max_crashes=3, window_s=60.0, backoff_initial_s=0.05, backoff_max_s=0.2)
WATCHDOG_S = 20.0


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


class Run:
    """A supervisor run in this (main) thread with captured output and a watchdog."""

    def __init__(self, specs: Sequence[ChildSpec], **kw: Any) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        self.ready: list[dict[str, ReadyInfo]] = []
        self.pids: dict[str, int] = {}
        self.on_ready: Callable[[Supervisor], None] = lambda sup: sup.request_stop()
        self.supervisor = Supervisor(
            specs, out=self.out, err=self.err, on_ready=self._ready, label="sup", **kw
        )

    def _ready(self, infos: dict[str, ReadyInfo]) -> None:
        self.ready.append(infos)
        self.pids = self.supervisor.pids()
        self.on_ready(self.supervisor)

    def __call__(self) -> int:
        watchdog = threading.Timer(WATCHDOG_S, self.supervisor.request_stop)
        watchdog.start()
        try:
            started = time.monotonic()
            code = self.supervisor.run()
            assert time.monotonic() - started < WATCHDOG_S, "stopped by the watchdog"
            return code
        finally:
            watchdog.cancel()


def ready_file_child(ready: Path, *, before: str = "", info: str = "{'port': 1234}") -> list[str]:
    """A child that runs ``before``, writes ``info`` as JSON to ``ready`` and sleeps."""
    return python(
        f"""
        import json, os, signal, subprocess, sys, time
        from pathlib import Path
        {before}
        tmp = Path({str(ready)!r} + '.tmp')
        tmp.write_text(json.dumps({info}))
        tmp.replace({str(ready)!r})
        time.sleep(60)
        """
    )


# --------------------------------------------------------------------------------------------
# The supervisor


def test_ready_file_child_is_announced_and_stopped_on_request(tmp_path: Path) -> None:
    ready = tmp_path / "web.json"
    spec = ChildSpec(
        "web",
        ready_file_child(ready),
        ready=ReadyFile(ready),
        describe=lambda info: f"port {info['port']}",
    )
    run = Run([spec], policy=FAST, grace_s=5.0)

    assert run() == 0

    assert run.ready == [{"web": {"port": 1234}}]
    pid = run.pids["web"]
    assert f"web      port 1234 (pid {pid})" in run.out.getvalue()
    assert "sup: stopping web" in run.err.getvalue()
    assert "sup: stopped" in run.err.getvalue()
    assert not alive(pid)


def test_tcp_readiness_waits_for_the_port(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = f"""
        import socket, time
        time.sleep(0.3)
        s = socket.socket()
        s.bind(('127.0.0.1', {port}))
        s.listen()
        time.sleep(60)
        """
    spec = ChildSpec("tcp", python(code), ready=TcpPort("127.0.0.1", port), ready_timeout_s=10)
    run = Run([spec], policy=FAST, grace_s=5.0)
    started = time.monotonic()

    assert run() == 0

    assert run.ready == [{"tcp": {"host": "127.0.0.1", "port": port}}]
    assert time.monotonic() - started >= 0.3
    assert not alive(run.pids["tcp"])


def test_a_crashed_child_is_reported_and_restarted(tmp_path: Path) -> None:
    ready, marker = tmp_path / "flaky.json", tmp_path / "crashed-once"
    before = f"""
        marker = Path({str(marker)!r})
        if not marker.exists():
            marker.touch()
            sys.exit(3)
        """
    spec = ChildSpec("flaky", ready_file_child(ready, before=before), ready=ReadyFile(ready))
    run = Run([spec], policy=FAST, grace_s=5.0)

    assert run() == 0

    err = run.err.getvalue()
    assert "sup: flaky exited with code 3; restarting in 0.05 s (crash 1 of at most 3" in err
    assert f"(pid {run.pids['flaky']}, restarted)" in run.out.getvalue()


def test_a_child_killed_after_it_was_ready_is_restarted(tmp_path: Path) -> None:
    ready = tmp_path / "victim.json"
    spec = ChildSpec("victim", ready_file_child(ready), ready=ReadyFile(ready))
    run = Run([spec], policy=FAST, grace_s=5.0)
    first: list[int] = []

    def kill_then_stop(sup: Supervisor) -> None:
        first.append(sup.pids()["victim"])
        os.kill(first[0], signal.SIGKILL)
        # stop once the restarted child is ready (checked by a helper thread, bounded)

        def stop_when_back() -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                pid = sup.pids().get("victim")
                if pid not in (None, first[0]) and "restarted" in run.out.getvalue():
                    break
                time.sleep(0.02)
            sup.request_stop()

        threading.Thread(target=stop_when_back, daemon=True).start()

    run.on_ready = kill_then_stop

    assert run() == 0

    assert "sup: victim was killed by SIGKILL; restarting" in run.err.getvalue()
    assert "restarted)" in run.out.getvalue()


def test_gives_up_after_repeated_crashes(tmp_path: Path) -> None:
    never = ReadyFile(tmp_path / "never.json")
    spec = ChildSpec("crasher", python("import sys; sys.exit(3)"), ready=never)
    run = Run([spec], policy=FAST, grace_s=5.0)

    assert run() == 1

    err = run.err.getvalue()
    assert err.count("crasher exited with code 3") == 3
    assert "it crashed 3 times within 60 s, giving up" in err
    assert run.ready == []


def test_a_child_that_never_gets_ready_counts_as_crashed(tmp_path: Path) -> None:
    spec = ChildSpec(
        "slow",
        python("import time; time.sleep(60)"),
        ready=ReadyFile(tmp_path / "never.json"),
        ready_timeout_s=0.3,
    )
    policy = RestartPolicy(max_crashes=2, backoff_initial_s=0.05)
    run = Run([spec], policy=policy, grace_s=5.0)

    assert run() == 1

    assert run.err.getvalue().count("slow did not become ready within 0.3 s") == 2


def test_the_rest_of_a_crashed_childs_process_group_is_killed(tmp_path: Path) -> None:
    grandchild = tmp_path / "grandchild.pid"
    code = f"""
        import subprocess, sys, time
        from pathlib import Path
        p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
        Path({str(grandchild)!r}).write_text(str(p.pid))
        sys.exit(4)
        """
    spec = ChildSpec("parent", python(code), ready=ReadyFile(tmp_path / "never.json"))
    run = Run([spec], policy=RestartPolicy(max_crashes=1))

    assert run() == 1

    assert "parent exited with code 4" in run.err.getvalue()
    wait_gone([int(grandchild.read_text())])


def test_stop_reaches_grandchildren_and_kills_a_child_ignoring_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "stubborn.json"
    before = """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
        """
    spec = ChildSpec(
        "stubborn",
        ready_file_child(ready, before=before, info="{'helper': helper.pid}"),
        ready=ReadyFile(ready),
    )
    run = Run([spec], policy=FAST, grace_s=0.5)
    started = time.monotonic()

    assert run() == 0

    assert time.monotonic() - started < 10
    assert "sup: stubborn did not stop in time; killing it" in run.err.getvalue()
    wait_gone([run.pids["stubborn"], int(run.ready[0]["stubborn"]["helper"])])


def test_sigterm_to_the_supervisor_stops_it_and_restores_the_handlers(tmp_path: Path) -> None:
    ready = tmp_path / "svc.json"
    spec = ChildSpec("svc", ready_file_child(ready), ready=ReadyFile(ready))
    run = Run([spec], policy=FAST, grace_s=5.0)
    run.on_ready = lambda sup: os.kill(os.getpid(), signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    assert run() == 0

    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert not alive(run.pids["svc"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    ready = tmp_path / "orphan.json"
    script = f"""
        import sys
        from pathlib import Path
        from mpt.supervisor import ChildSpec, ReadyFile, Supervisor
        spec = ChildSpec("orphan", {ready_file_child(ready, info="{'pid': os.getpid()}")!r},
                         ready=ReadyFile(Path({str(ready)!r})))
        sys.exit(Supervisor([spec]).run())
        """
    supervisor = Child(["-c", textwrap.dedent(script)], env=child_env({}), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert supervisor.proc.poll() is None, supervisor.stderr()
            assert time.monotonic() < deadline, "the child never got ready"
            time.sleep(0.02)
        pid = json.loads(ready.read_text())["pid"]
        supervisor.kill()
        wait_gone([pid])
    finally:
        supervisor.close()


def test_a_command_that_cannot_run_is_an_error() -> None:
    from mpt.errors import SupervisorError

    spec = ChildSpec("ghost", ["/nonexistent/ghost-binary"])
    with pytest.raises(SupervisorError, match="cannot start ghost"):
        Supervisor([spec], out=io.StringIO(), err=io.StringIO()).run()


def test_backoff_doubles_up_to_the_maximum() -> None:
    policy = RestartPolicy(backoff_initial_s=0.5, backoff_max_s=3.0)
    assert [policy.backoff_s(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


# --------------------------------------------------------------------------------------------
# `mpt up`


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[Child, Path]]:
    data_dir = tmp_path / "data"
    child = Child(
        ["-m", "mpt.cli", "up", "--port", "0", "--metrics-port", "0", "--workers", "2",
         "--api-port", "0", "--data-dir", str(data_dir)],
        env=child_env({"MPT_ENGINE__SHUTDOWN_GRACE_S": "3"}),
        cwd=tmp_path,
    )  # fmt: skip
    try:
        yield child, data_dir
    finally:
        stop_gracefully(child)


ENGINE_LINE = (
    r"^engine\s+gRPC 127\.0\.0\.1:(\d+), metrics http://127\.0\.0\.1:(\d+)/metrics "
    r"\(pid (\d+)(, restarted)?\)$"
)


def test_mpt_up_restarts_a_killed_engine_and_ctrl_c_stops_every_process(
    up: tuple[Child, Path],
) -> None:
    child, data_dir = up
    first = read_until(child, ENGINE_LINE)
    engine_pid = int(first.group(3))
    hint = read_until(child, r"^\s+mpt stream FILE.*").group(0)
    assert f"--server 127.0.0.1:{first.group(1)}" in hint
    assert f"--data-dir {data_dir}" in hint
    assert (data_dir / "keys" / "jwt_ed25519.pem").is_file()
    workers = [p for p in group_members(engine_pid) if p != engine_pid]
    assert workers, "the engine's worker processes run in its process group"

    os.kill(engine_pid, signal.SIGKILL)  # a crash: the engine and (by the supervisor) its workers
    again = read_until(child, ENGINE_LINE)
    assert again.group(4) == ", restarted"
    wait_gone([engine_pid, *workers])
    new_pid = int(again.group(3))
    new_group = group_members(new_pid)

    child.proc.send_signal(signal.SIGINT)
    assert child.finish(timeout_s=30) == 0
    wait_gone(new_group)
    assert not group_members(new_pid)
    assert "mpt up: engine was killed by SIGKILL; restarting" in child.stderr()


def test_mpt_up_refuses_a_remote_host_without_allow_remote(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["up", "--host", "0.0.0.0", "--port", "0"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("mpt: error: --host 0.0.0.0 is not a loopback address")
    assert "--allow-remote" in err and "token" in err
    assert len(err.splitlines()) == 1


def test_mpt_up_reports_a_taken_port(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["up", "--port", str(port), "--no-api", "--data-dir", str(tmp_path / "d")])
    _, err = capsys.readouterr()
    assert code == 1
    assert f"mpt: error: cannot listen on 127.0.0.1:{port}" in err
    assert len(err.splitlines()) == 1


def test_engine_line_from_the_ready_file() -> None:
    """What `mpt up` prints from the engine's ready file (``--ready-file`` JSON)."""
    from mpt.cli import _describe_engine

    assert _describe_engine({"host": "127.0.0.1", "port": 5, "metrics_port": None}) == (
        "gRPC 127.0.0.1:5"
    )
    assert _describe_engine({"host": "0.0.0.0", "port": 5, "metrics_port": 6}) == (
        "gRPC 0.0.0.0:5, metrics http://127.0.0.1:6/metrics"
    )
