"""A missing peer stops the benchmark with a message naming it (never a skip)."""

from __future__ import annotations

import sys

import pytest

from benchmarks.peers import PEERS, PeerMissingError, require_peers


def test_missing_peers_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PEERS:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    with pytest.raises(PeerMissingError) as info:
        require_peers()
    for name in PEERS:
        assert name in str(info.value)
    assert "pip install" in str(info.value)
