"""Digest rendering for every format: people's words containing <script>, <!channel>, *bold*
and =HYPERLINK(...) stay inert in each sink."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from html.parser import HTMLParser

import pytest

from bot.digests import FORMATS, SLACK_MAX_CHANGES, TELEGRAM_LIMIT, email_message, render_digest, slack_payload
from memory.anonymity import AggregateView
from memory.digests import Digest, PersonChange, PromiseItem, Silent
from memory.themes import Theme

T = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
EVIL = '<script>alert(1)</script> <!channel> *bold* =HYPERLINK("http://evil","x")'


def _change(i: int = 0, **kw: object) -> PersonChange:
    base: dict[str, object] = dict(
        person=f"p{i}", name=f"Dana {EVIL}", program="customers", at=T, old_rating=9, new_rating=4,
        old_reason=EVIL, new_reason=EVIL, followup_answer=EVIL, view_changed=True, reasons=("rating fell",),
        themes_appeared=(EVIL,), themes_disappeared=("fast answers",), trajectory="declining", importance=9.5,
    )  # fmt: skip
    base.update(kw)
    return PersonChange(**base)  # type: ignore[arg-type]


def evil_digest(n_changes: int = 1) -> Digest:
    promise = PromiseItem(person="p0", name=f"Dana {EVIL}", text=EVIL, made_at=T, due_at=T, status="partly",
                          verdict="partly", comment=EVIL)  # fmt: skip
    due = PromiseItem(person="p1", name="Ben", text=EVIL, made_at=T, due_at=T, status="open", overdue=True)
    silent = Silent(person="p2", name=EVIL, program="customers", status="expired", invited_at=T)
    theme = Theme(label=EVIL, words=("x",), size=6, share=1.0, quotes=(EVIL,))
    view = AggregateView(program="employees", wave="Q1", slice="owner:o", k=5, suppressed=False, respondents=6,
                         distribution={7: 6}, mean=7.0, enps=0.0, themes=(theme,), comments=(EVIL,))  # fmt: skip
    return Digest(owner="o", owner_name=f"Owen {EVIL}", since=T - dt.timedelta(days=7), until=T,
                  summary="1 person changed (1 down).", changes=tuple(_change(i) for i in range(n_changes)),
                  outcomes=(promise,), due=(due,), silent=(silent,), aggregates=(view,))  # fmt: skip


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.add(tag)


def _tags(markup: str) -> set[str]:
    parser = _Tags()
    parser.feed(markup)
    return parser.tags


def test_html_escapes_every_word() -> None:
    body = render_digest(evil_digest(), "html").body
    assert "<script>" not in body
    assert "<!channel>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "script" not in _tags(body)
    assert _tags(body) <= {"html", "head", "meta", "title", "body", "h1", "h2", "h3", "small", "p", "strong", "ul",
                           "li"}  # fmt: skip


def test_email_has_a_text_alternative_and_an_escaped_html_part() -> None:
    rendered = render_digest(evil_digest(), "email")
    assert rendered.html is not None
    assert "<script>" not in rendered.html
    assert EVIL in rendered.body  # plain text shows the words exactly as typed
    msg = email_message(rendered, sender="rapport@example.com", to="owner@example.com")
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert "\n" not in str(msg["Subject"])


def test_telegram_html_allows_only_our_tags() -> None:
    body = render_digest(evil_digest(), "telegram").body
    assert "<script>" not in body
    assert "<!channel>" not in body
    assert "&lt;script&gt;" in body
    assert "&lt;!channel&gt;" in body
    assert _tags(body) <= {"b", "i"}
    assert len(body) <= TELEGRAM_LIMIT


def test_telegram_stays_under_its_limit_with_many_people() -> None:
    body = render_digest(evil_digest(n_changes=60), "telegram").body
    assert len(body) <= TELEGRAM_LIMIT
    assert "more" in body
    assert _tags(body) <= {"b", "i"}


def test_markdown_escapes_formatting_and_html() -> None:
    body = render_digest(evil_digest(), "markdown").body
    assert "<script>" not in body
    assert "<!channel>" not in body
    assert "*bold*" not in body
    assert r"\*bold\*" in body
    assert "&lt;script&gt;alert" in body
    assert "\\&gt;" not in body
    # Not Markdown syntax, so shown as typed: a formula is only a formula in a spreadsheet.
    assert '=HYPERLINK("http://evil","x")' in body


def test_markdown_escapes_only_what_markdown_needs() -> None:
    change = _change(name="Alex", person="alex@example.com", old_reason="Fine - mostly. 3.5 out of 5 (ok)",
                     new_reason="Two lines\n# not a heading\n- not a list\n1. not a list either")  # fmt: skip
    d = Digest(owner="o", owner_name="owner.one@example.com", since=T, until=T, summary="x", changes=(change,))
    body = render_digest(d, "markdown").body
    assert "owner.one@example.com" in body
    assert "(-5)" in body
    assert "“Fine - mostly. 3.5 out of 5 (ok)”" in body
    # A person's new line cannot open a heading or a list in the owner's file.
    assert "\n\\# not a heading" in body
    assert "\n\\- not a list" in body
    assert "\n1\\. not a list either" in body


@pytest.mark.parametrize("fmt", ["markdown", "text", "html", "telegram"])
def test_every_readable_format_says_why_someone_was_flagged(fmt: str) -> None:
    body = render_digest(evil_digest(), fmt).body  # type: ignore[arg-type]
    assert "Why flagged: rating fell" in body


def test_slack_block_kit_is_valid_json_and_people_s_words_are_plain_text() -> None:
    payload = json.loads(render_digest(evil_digest(), "slack").body)
    assert payload == slack_payload(evil_digest())
    texts = [b["text"] for b in payload["blocks"] if "text" in b]
    mrkdwn = [t["text"] for t in texts if t["type"] == "mrkdwn"] + [payload["text"]]
    plain = [t for t in texts if t["type"] == "plain_text"]
    # Words from people (and the roster) only ever travel as plain_text, which Slack never parses.
    assert any(EVIL in t["text"] for t in plain)
    assert all(t.get("emoji") is False for t in plain)
    for text in mrkdwn:
        assert "<" not in text.replace("&lt;", "")
        assert "HYPERLINK" not in text
        assert "script" not in text
        assert "Dana" not in text
    assert len(payload["blocks"]) <= 50


def test_slack_caps_blocks() -> None:
    payload = slack_payload(evil_digest(n_changes=SLACK_MAX_CHANGES + 12))
    assert len(payload["blocks"]) <= 50
    assert "12 more" in payload["blocks"][2 + SLACK_MAX_CHANGES + 1]["elements"][0]["text"]


def test_csv_neutralises_formulas() -> None:
    body = render_digest(evil_digest(), "csv").body
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][0] == "person"
    for row in rows[1:]:
        for cell in row:
            assert not re.match(r"^[=+@]", cell), cell
            assert not re.match(r"^-(?!\d+$)", cell), cell
    formula = _change(old_reason='=HYPERLINK("http://evil","x")')
    evil = render_digest(Digest(owner="o", owner_name="o", since=T, until=T, summary="x", changes=(formula,)), "csv")
    assert "'=HYPERLINK" in evil.body


def test_csv_numbers_stay_numbers_and_lines_end_cleanly() -> None:
    change = _change(old_reason="-4 is what I'd give", new_reason="fine")
    body = render_digest(
        Digest(owner="o", owner_name="o", since=T, until=T, summary="x", changes=(change,)), "csv"
    ).body
    assert "\r" not in body
    assert "\ufffd" not in body
    header, row = list(csv.DictReader(io.StringIO(body)).fieldnames or []), next(csv.DictReader(io.StringIO(body)))
    assert header[-1] == "themes_disappeared"
    assert (row["old_rating"], row["new_rating"], row["delta"]) == ("9", "4", "-5")
    assert float(row["delta"]) == -5  # a spreadsheet sorts it as a number
    assert row["old_reason"] == "'-4 is what I'd give"  # text that starts like a formula is neutralised


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_an_empty_digest(fmt: str) -> None:
    d = Digest(owner="o", owner_name="Owen", since=T - dt.timedelta(days=7), until=T, summary="No changes.")
    rendered = render_digest(d, fmt)  # type: ignore[arg-type]
    assert rendered.body
    if fmt not in ("csv",):
        assert "No changes" in rendered.body
