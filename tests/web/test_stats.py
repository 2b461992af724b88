"""NPS and its margin of error, and the charts' text alternatives."""

from __future__ import annotations

import pytest

from bot.dashboard import charts
from bot.dashboard.stats import nps, nps_from_distribution


def test_nps_and_its_95_percent_margin() -> None:
    result = nps([10] * 6 + [0] * 4)
    assert result is not None
    assert result.score == 20.0
    # 1.96 * sqrt((0.6 + 0.4 - 0.2^2) / 10) * 100
    assert result.margin == pytest.approx(60.7, abs=0.1)
    assert nps_from_distribution({10: 6, 0: 4}) == result


def test_no_margin_for_a_handful_and_nothing_for_nobody() -> None:
    few = nps([9, 3])
    assert few is not None
    assert few.margin is None
    assert nps([]) is None


def test_all_promoters_have_no_spread() -> None:
    result = nps([9, 10] * 10)
    assert result is not None
    assert (result.score, result.margin) == (100.0, 0.0)


def test_charts_are_labelled_svg_without_script() -> None:
    svg = str(charts.sparkline([8, 6, 3]))
    assert svg.startswith("<svg")
    assert 'aria-label="ratings 8 → 6 → 3"' in svg
    assert "<script" not in svg
    line = str(charts.line("t", ["<b>w</b>"], {"x": [1.0]}, low=0, high=10, label="a <b> label"))
    assert "<b>" not in line
    assert "&lt;b&gt;" in line
    assert str(charts.sparkline([])) == ""
