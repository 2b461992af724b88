"""Hostile input from people and from the network has a defined, calm outcome on every backend:
NUL and other control characters, deep JSON, bidi overrides, Slack formatting and long digests.

Channel behaviour is tested over HTTP (the webhook) and through the command line, not through
adapter internals.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.channels import safe_json
from bot.cli import app as cli_app
from bot.engine.ports import Inbound
from memory.text import clean_text
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
