"""People's words are data, never markup: every sink escapes them."""

from __future__ import annotations

import datetime as dt

import pytest
from jinja2 import meta

import prompts

WHEN = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
NASTY = '<b>bold</b> *star* _u_ <!channel> <@U123> <https://evil.example|click> & =HYPERLINK("x")'


def followup(markup: prompts.Markup) -> str:
    return prompts.render("person/followup", markup, reason="drift", when=WHEN, quote=NASTY, current="")


def test_plain_keeps_words_as_typed() -> None:
    assert NASTY in followup("plain")


def test_telegram_html_escapes_tags() -> None:
    text = followup("telegram_html")
    assert "<b>" not in text
    assert "&lt;b&gt;bold&lt;/b&gt;" in text
    assert "&amp;" in text


def test_slack_mrkdwn_cannot_ping_or_link() -> None:
    text = followup("slack_mrkdwn")
    assert "<!channel>" not in text
    assert "<@U123>" not in text
    assert "&lt;!channel&gt;" in text
    assert "<https://" not in text


def test_html_escapes_quotes_too() -> None:
    text = followup("html")
    assert "<b>" not in text
    assert "&quot;x&quot;" in text


def test_markdown_escapes_emphasis() -> None:
    text = followup("markdown")
    assert "\\*star\\*" in text
    assert "<b>" not in text


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)"])
def test_spreadsheet_formulas_are_neutralised(value: str) -> None:
    assert prompts.neutralise_formula(value).startswith("'")
    assert prompts.neutralise_formula("fine") == "fine"


def test_every_person_template_renders() -> None:
    """Each template renders with values for every name it uses (dates for *_at/when/due)."""
    env = prompts.environment("plain")
    for path in sorted((prompts.TEMPLATES / "person").glob("*.j2")):
        source = path.read_text()
        names = meta.find_undeclared_variables(env.parse(source))
        params = {n: WHEN if (n.endswith("_at") or n in ("when", "due")) else 3 for n in names}
        params.update({k: v for k, v in {"name": "Ann", "quote": "q", "reason": "drift"}.items() if k in names})
        if "items" in names:  # a list of answers ("my data")
            params["items"] = [{"id": 3, "label": "Why?", "rating": 7, "text": "t", "skipped": False, "followups": []}]
        if "outcomes" in names:  # verdicts on promises ("my data")
            params["outcomes"] = [{"ref": "p3", "promise": "call back", "verdict": "kept", "comment": "c"}]
        text = prompts.render(f"person/{path.stem}", "plain", **params)
        assert text.strip(), path.name
