"""How people type ratings, as a table."""

from __future__ import annotations

import pytest

from bot.engine.ratings import parse_rating


@pytest.mark.parametrize(
    ("text", "value", "comment", "problem"),
    [
        ("8", 8, None, None),
        (" 8 ", 8, None, None),
        ("8/10", 8, None, None),
        ("8 / 10", 8, None, None),
        ("8 out of 10", 8, None, None),
        ("eight", 8, None, None),
        ("Eight!", 8, None, None),
        ("8 - pretty good", 8, "pretty good", None),
        ("8, pretty good", 8, "pretty good", None),
        ("8: support is great", 8, "support is great", None),
        ("ten, no doubt", 10, "no doubt", None),
        ("0", 0, None, None),
        ("10", 10, None, None),
        ("7.0", 7, None, None),
        ("", None, None, "empty"),
        ("   ", None, None, "empty"),
        ("11", 11, None, "out_of_range"),
        ("-3", -3, None, "out_of_range"),
        ("eleven", 11, None, "out_of_range"),
        ("8/5", None, None, "out_of_range"),
        ("7.5", None, None, "not_whole"),
        ("abc", None, None, "not_a_number"),
        ("👍", None, None, "not_a_number"),
        ("ممتاز", None, None, "not_a_number"),
        ("8-9", None, None, "not_a_number"),
        ("great product", None, None, "not_a_number"),
    ],
)
def test_parse_rating(text: str, value: int | None, comment: str | None, problem: str | None) -> None:
    parsed = parse_rating(text, low=0, high=10)
    assert parsed.problem == problem
    assert parsed.value == value
    assert parsed.comment == comment


def test_other_scales() -> None:
    assert parse_rating("3", low=1, high=5).value == 3
    assert parse_rating("0", low=1, high=5).problem == "out_of_range"
    assert parse_rating("4/5", low=1, high=5).value == 4


def test_digits_of_other_scripts_are_numbers() -> None:
    # Arabic-Indic eight: people type ratings with the digits their keyboard has.
    assert parse_rating("٨").value == 8
