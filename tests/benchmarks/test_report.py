"""The results file keeps its hand-written block when the benchmark rewrites it."""

from __future__ import annotations

from benchmarks.report import HAND_END, HAND_START, hand_section, other_sections


def test_hand_section_is_carried_over() -> None:
    block = f"{HAND_START}\nengine misses the pickup on `gtzan_country.00000`\n{HAND_END}"
    previous = f"# old results\n\n## Where the engine still loses\n\n{block}\n\n## Appendix\n"
    assert hand_section(previous) == block


def test_placeholder_when_there_is_none() -> None:
    for previous in (None, "", "# results without the block\n"):
        text = hand_section(previous)
        assert text.startswith(HAND_START)
        assert text.endswith(HAND_END)


def test_other_benchmarks_sections_are_kept() -> None:
    """run_api_load and the floor write their own marked sections into the same file; the
    accuracy report keeps them (it once dropped them on every rewrite)."""
    load = "<!-- api-load:start -->\n## API load\n| a | b |\n<!-- api-load:end -->"
    floor = "<!-- api-floor:start -->\n## floor\n<!-- api-floor:end -->"
    hand = f"{HAND_START}\nnotes\n{HAND_END}"
    previous = f"# results\n\n{hand}\n\n## Appendix\n\n{load}\n\ntext\n\n{floor}\n"
    assert other_sections(previous) == [load, floor]
    assert other_sections(None) == [] and other_sections("# none\n") == []
