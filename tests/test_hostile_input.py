"""Hostile input from people and from the network has a defined, calm outcome on every backend:
NUL and other control characters, deep JSON, bidi overrides, Slack formatting and long digests.

Channel behaviour is tested over HTTP (the webhook) and through the command line, not through
adapter internals.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import prompts
from bot.channels import safe_json
from bot.cli import app as cli_app
from bot.digests import render_digest
from bot.engine.ports import Inbound
from memory import store
from memory.db import transaction
from memory.digests import Digest, PersonChange, Silent
from memory.text import clean_text
from prompts.split import TELEGRAM_LIMIT, fit_html, split_html, units
from tests.channels.telegram_kit import CHAT, SECRET, T0, add_person, answers, make_channel, text_update, webhook_client
from tests.conftest import ROOT
from tests.fakes.telegram_api import telegram_api

__all__ = ["telegram_api"]  # the fixture, used by name below

runner = CliRunner()
HOSTILE = "Slow\x00 support\x1b[2J\x07 and \u202etxt.exe"


# The rule: text from people, at the boundary ---------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("plain words", "plain words"),
        ("nul\x00byte", "nulbyte"),
        ("esc\x1b[31mred\x1b[0m bell\x07", "esc[31mred[0m bell"),
        ("two\r\nlines\rthree", "two\nlines\nthree"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("c1 \x9b31m", "c1 31m"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("e\u0301t\u0301e\u0301", "\u00e9t\u0301\u00e9"),
        ("right-to-left \u202eoverride kept", "right-to-left \u202eoverride kept"),
    ],
)
def test_clean_text_table(given: str, kept: str) -> None:
    assert clean_text(given) == kept
    clean_text(given).encode("utf-8")  # always storable


def test_inbound_carries_clean_text_from_every_channel() -> None:
    inbound = Inbound(channel="any", sender="s", kind="text", text="a\x00b\x1bc", received_at=T0)
    assert inbound.text == "abc"
    assert Inbound(channel="any", sender="s", kind="choice", value=3, received_at=T0).text is None


# NUL and friends through the Telegram webhook and the terminal -------------------------------


async def _webhook_checkin(make_app, telegram_api, first: str, second: str):
    app = make_app()
    add_person(app)
    channel = make_channel(app, telegram_api, mode="webhook")
    await channel.start()
    client = await webhook_client(channel)
    started = app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram",
                                markup="telegram_html")  # fmt: skip
    assert started.checkin_id
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    statuses = []
    for i, text in enumerate((first, second), start=1):
        response = await client.post("/telegram/webhook", json=text_update(text, update_id=100 + i), headers=headers)
        statuses.append(response.status)
    await client.close()
    await channel.stop()
    return app, statuses


async def test_nul_in_a_telegram_answer_is_stored_clean_and_answered(make_app, telegram_api) -> None:
    app, statuses = await _webhook_checkin(make_app, telegram_api, "8\x00", HOSTILE)
    assert statuses == [200, 200], "no 500, so Telegram does not redeliver forever"
    assert answers(app) == [("recommend", 8, None), ("reason", None, clean_text(HOSTILE))]
    assert len(telegram_api.sent_texts(CHAT)) >= 2, "the person hears back"


async def test_deeply_nested_json_with_a_valid_secret_is_a_400(make_app, telegram_api) -> None:
    app = make_app()
    channel = make_channel(app, telegram_api, mode="webhook")
    await channel.start()
    client = await webhook_client(channel)
    try:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
        for body in ("[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000, '{"update_id": 1, "x": ' + "[" * 65):
            response = await client.post("/telegram/webhook", data=body, headers=headers)
            assert response.status == 400
        fine = {"update_id": 7, "message": {"text": "[[[[" * 100}}
        response = await client.post("/telegram/webhook", data=json.dumps(fine), headers=headers)
        assert response.status == 200, "brackets inside strings are not nesting"
    finally:
        await client.close()
        await channel.stop()


def test_safe_json_measures_nesting_outside_strings() -> None:
    assert safe_json.nesting_depth('{"a": [1, {"b": "]]]{{{"}]}') == 3
    assert safe_json.loads('{"a": "\\"[["}') == {"a": '"[['}
    with pytest.raises(ValueError, match="deeper than"):
        safe_json.loads("[" * 100_000)


def test_piped_chat_with_control_characters_answers_and_stores_clean_words(db_url: str, tmp_path: Path) -> None:
    roster = tmp_path / "people.csv"
    roster.write_text("id,name,email,timezone,owner,programs\nann,Ann,ann@example.com,UTC,,customers\n")
    base = ["--config", str(ROOT / "config.yaml"), "--database", db_url]
    assert runner.invoke(cli_app, [*base, "people", "import", str(roster)]).exit_code == 0
    result = runner.invoke(cli_app, [*base, "chat", "ann", "--at", "2026-03-02T10:00:00Z"], input=f"7\x00\n{HOSTILE}\n")
    assert result.exit_code == 0, result.output
    assert result.exception is None
    data = json.loads(runner.invoke(cli_app, [*base, "history", "ann", "--json"]).stdout)
    assert [a["text"] for a in data["checkins"][0]["answers"]] == [None, clean_text(HOSTILE)]
    assert "\x00" not in result.output
    assert "\x1b" not in result.output


# Sinks: what acts instead of showing is inert everywhere -------------------------------------

SPOOF = "Ann \u202eexe.png\u202c \x1b[2J\x07ring"
WS = "\\s\u200b"


def _formats(marker: str) -> re.Pattern[str]:
    """Slack's rule for a formatting span, as a model: the marker opens after a boundary and
    before a non-space, and closes after a non-space and before a boundary (U+200B is a space)."""
    m = re.escape(marker)
    return re.compile(rf"(?:^|(?<=[{WS}\W])){m}(?=[^{WS}{m}]).*?(?<=[^{WS}{m}]){m}(?=$|[{WS}\W])")


@pytest.mark.parametrize("marker", ["*", "_", "~", "`"])
def test_slack_words_cannot_format(marker: str) -> None:
    words = f"{marker}loud{marker} and {marker}{marker}{marker}block{marker}{marker}{marker}"
    assert _formats(marker).search(words), "the model recognises live formatting"
    followup = prompts.render("person/followup", "slack_mrkdwn", reason="drift", when=T0, quote=words, current="")
    assert not _formats(marker).search(followup)
    assert not _formats(marker).search(prompts.escape_slack(words))
    assert prompts.escape_slack(words).replace(prompts.ZWSP, "") == words, "every character still shows"


@pytest.mark.parametrize("markup", ["telegram_html", "slack_mrkdwn", "html", "markdown"])
def test_markup_sinks_drop_controls_and_bidi_overrides(markup: prompts.Markup) -> None:
    text = prompts.render("person/followup", markup, reason="drift", when=T0, quote=SPOOF, current="")
    for char in ("\u202e", "\u202c", "\x1b", "\x07"):
        assert char not in text
    assert "png" in text


def test_plain_and_terminal_show_controls_as_visible_escapes() -> None:
    text = prompts.render("person/followup", "plain", reason="drift", when=T0, quote=SPOOF, current="")
    assert "\\u202e" in text
    assert "\\x1b[2J" in text
    assert all(ch.isprintable() or ch == "\n" for ch in text)
    assert prompts.escape_terminal("tab\tnew\nline") == "tab\tnew\nline"


def test_digests_never_carry_an_override_in_any_format() -> None:
    change = PersonChange(person="p", name=SPOOF, program="customers", at=T0, old_rating=9, new_rating=4,
                          old_reason=SPOOF, new_reason=SPOOF, followup_answer=SPOOF, view_changed=True,
                          reasons=("rating fell",), themes_appeared=(), themes_disappeared=(), trajectory="declining",
                          importance=9.0)  # fmt: skip
    d = _digest(changes=(change,), silent=())
    for fmt in ("markdown", "html", "telegram", "email", "text"):
        rendered = render_digest(d, fmt)
        for body in (rendered.body, rendered.html or ""):
            assert "\u202e" not in body, fmt
            assert "\x1b" not in body, fmt


def test_csv_cells_drop_overrides_and_still_neutralise_formulas() -> None:
    assert prompts.neutralise_formula("\u202e=1+1") == "'=1+1"
    assert prompts.neutralise_formula("Ann \u202eexe.png\x1b") == "Ann exe.png"


def test_history_prints_names_and_answers_inert(make_app, db_url: str) -> None:
    app = make_app()
    with transaction(app.sessions) as s:
        programs = [store.program_by_name(s, "customers")]
        store.upsert_person(s, key="ann", name=SPOOF, email=None, timezone="UTC", owner_key=None, programs=programs,
                            now=T0)  # fmt: skip
    result = runner.invoke(cli_app, ["--config", str(ROOT / "config.yaml"), "--database", db_url, "history", "ann"])
    assert result.exit_code == 0, result.output
    for char in ("\u202e", "\x1b", "\x07"):
        assert char not in result.output
    assert "\\u202e" in result.output


# Telegram digests: cut where Telegram accepts, and say what was left out ----------------------


def _digest(*, changes: tuple[PersonChange, ...] = (), silent: tuple[Silent, ...] = ()) -> Digest:
    return Digest(owner="o", owner_name="Owen", since=T0 - dt.timedelta(days=7), until=T0, summary="Digest.",
                  changes=changes, outcomes=(), due=(), silent=silent, aggregates=())  # fmt: skip


def _well_formed(body: str) -> None:
    """What Telegram's HTML parser needs: every & starts an entity, every tag is closed in order."""
    assert not re.search(r"&(?!(?:amp|lt|gt|quot|#\d+);)", body), "a cut entity"
    stack: list[str] = []
    for closing, name in re.findall(r"<(/?)(\w+)[^>]*>", body):
        if closing:
            assert stack, f"</{name}> without its opening"
            assert stack.pop() == name
        else:
            stack.append(name)
    assert not stack, f"unclosed {stack}"


def test_a_long_telegram_digest_is_cut_safely_and_counts_who_was_left_out() -> None:
    silent = tuple(
        Silent(person=f"p{i}", name=f"Ann & Bob & Co {i}", program="customers", status="expired", invited_at=T0)
        for i in range(400)
    )  # fmt: skip
    body = render_digest(_digest(silent=silent), "telegram").body
    assert units(body) <= TELEGRAM_LIMIT
    _well_formed(body)
    shown = body.count("• Ann &amp; Bob")
    left = int(re.search(r"and (\d+) more lines", body).group(1))  # type: ignore[union-attr]
    assert 0 < shown < 400
    assert shown + left == 400, "everyone is either shown or counted"


@pytest.mark.parametrize("limit", [97, 500, 4096])
def test_split_html_parts_fit_and_are_well_formed(limit: int) -> None:
    text = "<b>Head</b>\n" + "\n".join(f"• <i>“a &amp; b {'x' * (i % 90)} 😀 &lt;{i}&gt;”</i> end" for i in range(300))
    parts = split_html(text, limit)
    assert all(units(p) <= limit for p in parts)
    for part in parts:
        _well_formed(part)
    joined = re.sub(r"<[^>]+>|\s", "", "".join(parts))
    assert joined == re.sub(r"<[^>]+>|\s", "", text), "nothing lost or repeated"


def test_split_html_leaves_short_messages_alone() -> None:
    assert split_html("<b>hi</b> &amp; bye") == ["<b>hi</b> &amp; bye"]
    assert fit_html("short", lambda n: f"{n} more") == "short"
