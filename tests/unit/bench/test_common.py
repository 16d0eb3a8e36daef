"""The benchmark figures: goals are judged on the worst run, and the README table is rendered from JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import common, report
from bench.common import measured


def test_a_higher_is_better_goal_holds_only_if_the_minimum_meets_it() -> None:
    figure = measured("fan-out", "speed-up", [4.0, 3.5, 2.9, 5.0, 4.2], "x", at_least=3.0)
    assert figure.value == 4.0  # the median
    assert (figure.minimum, figure.maximum) == (2.9, 5.0)
    assert figure.passed is False
    assert measured("fan-out", "speed-up", [3.0, 3.1], "x", at_least=3.0).passed is True


def test_a_lower_is_better_goal_holds_only_if_the_maximum_meets_it() -> None:
    assert measured("memory", "growth", [1.0, 9.9], "%", at_most=10.0).passed is True
    assert measured("memory", "growth", [1.0, 10.5, 2.0], "%", at_most=10.0).passed is False


def test_a_figure_without_a_goal_is_informative_and_needs_runs() -> None:
    assert measured("publish", "rate", [1.0], "/s").passed is None
    with pytest.raises(ValueError, match="no runs"):
        measured("publish", "rate", [], "/s")


def test_results_carry_every_run_and_the_machine_and_render_as_markdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    figures = [
        measured("fan-out", "speed-up at 0 ms", [3.2, 3.4, 3.1], "x", at_least=3.0),
        measured("fan-out", "app | rate", [5000.0], "msg/s"),
    ]
    results = json.loads(common.write_results(figures).read_text())
    assert results["machine"]["cpus"] >= 1
    assert results["figures"][0]["runs"] == [3.2, 3.4, 3.1]
    assert results["figures"][0]["minimum"] == 3.1
    table = report.markdown(results).splitlines()
    assert table[4] == "| fan-out | speed-up at 0 ms | 3 | 3.2x | 3.1x | 3.4x | >= 3.0x | PASS |"
    assert table[5].startswith("|  | app \\| rate | 1 | 5,000 msg/s |")
