"""The results file keeps its hand-written block when the benchmark rewrites it."""

from __future__ import annotations

from benchmarks.report import HAND_END, HAND_START, hand_section


def test_hand_section_is_carried_over() -> None:
    block = f"{HAND_START}\nengine misses the pickup on `gtzan_country.00000`\n{HAND_END}"
    previous = f"# old results\n\n## Where the engine still loses\n\n{block}\n\n## Appendix\n"
    assert hand_section(previous) == block


def test_placeholder_when_there_is_none() -> None:
    for previous in (None, "", "# results without the block\n"):
        text = hand_section(previous)
        assert text.startswith(HAND_START)
        assert text.endswith(HAND_END)
