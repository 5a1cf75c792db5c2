"""Tests of benchmarks/stream_sweep.py: the overrides it accepts and its paired figures."""

from __future__ import annotations

import math

import pytest

from benchmarks.stream_sweep import main, moved_takes, parse_overrides, summarise


def test_overrides_are_stream_constants_of_their_own_type() -> None:
    assert parse_overrides(["TATUM_MEMORY=0.97", "SWITCH_UPDATES=6"]) == {
        "TATUM_MEMORY": 0.97,
        "SWITCH_UPDATES": 6,
    }
    assert parse_overrides(["TATUM_MEMORY=1"]) == {"TATUM_MEMORY": 1.0}  # an int for a float


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("TATUM_MEMORY", "expected NAME=VALUE"),
        ("NO_SUCH_THING=1", "has no constant 'NO_SUCH_THING'"),
        ("StreamAnalyzer=1", "has no constant 'StreamAnalyzer'"),
        ("TATUM_MEMORY=x", "is not a JSON literal"),
        ("SWITCH_UPDATES=2.5", "SWITCH_UPDATES is a int"),
    ],
)
def test_a_bad_override_is_refused_with_its_reason(item: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_overrides([item])


def test_the_command_exits_with_a_usage_error_before_running_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--set", "NO_SUCH_THING=1"])
    assert exc.value.code == 2
    assert "has no constant 'NO_SUCH_THING'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_summary_pairs_the_takes() -> None:
    base = [
        {"beat_f_offline": 0.9, "beat_f_stream": 0.5, "tempo_truth": 100.0,
         "tempo_offline": 100.0, "tempo_stream": 50.0},
        {"beat_f_offline": 1.0, "beat_f_stream": 0.9, "tempo_truth": 120.0,
         "tempo_offline": 120.0, "tempo_stream": 121.0},
        {"beat_f_offline": 0.8, "beat_f_stream": 0.8, "tempo_truth": None,
         "tempo_offline": 90.0, "tempo_stream": 90.0},
        {"tempo_truth": None},  # no beats annotated: not paired
    ]
    changed = [
        dict(base[0], beat_f_stream=0.9, tempo_stream=100.5),
        dict(base[1], beat_f_stream=0.85),
        dict(base[2]),
        dict(base[3]),
    ]
    s = summarise("x", base, changed)
    assert s.n_takes == 3
    assert s.beat_f_base == pytest.approx((0.5 + 0.9 + 0.8) / 3)
    assert s.beat_f_changed == pytest.approx((0.9 + 0.85 + 0.8) / 3)
    assert s.diff_mean == pytest.approx((0.4 - 0.05 + 0.0) / 3)
    assert s.diff_se == pytest.approx(
        math.sqrt(sum((d - s.diff_mean) ** 2 for d in (0.4, -0.05, 0.0)) / 2) / math.sqrt(3)
    )
    assert (s.better, s.worse) == (1, 1)
    assert (s.agree_base, s.agree_changed, s.n_tempo) == (1, 2, 2)
    assert "stream 0.733 -> 0.850 (paired +0.1167" in s.line()


def test_moved_takes_lists_the_takes_whose_stream_beat_f_moved() -> None:
    base = [
        {"clip": "a", "beat_f_offline": 0.9, "beat_f_stream": 0.5, "tempo_offline": 100.0,
         "tempo_stream": 50.0},
        {"clip": "b", "beat_f_offline": 1.0, "beat_f_stream": 0.9, "tempo_offline": 120.0,
         "tempo_stream": None},
        {"clip": "c"},  # no beats annotated
    ]
    changed = [dict(base[0], beat_f_stream=0.95, tempo_stream=100.2),
               dict(base[1], beat_f_stream=0.905), dict(base[2])]
    lines = moved_takes("fresh", base, changed)
    assert len(lines) == 1  # b moved by 0.005 only
    assert lines[0].split() == ["fresh", "a", "beat", "F", "0.500", "->", "0.950", "(offline",
                                "0.900);", "tempo", "50.0", "->", "100.2", "(offline", "100.0)"]
    assert moved_takes("fresh", base, changed, by=0.001)[1].split()[10:13] == ["-", "->", "-"]
