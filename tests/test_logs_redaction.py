"""Neither secrets nor people's words reach a log line, at DEBUG, on every channel.

A full check-in on the terminal (``rapport chat``, piped), on Telegram (webhook, against the fake
Bot API) and on Slack (signed requests, against the fake Web API), plus forged and stale Slack
requests whose bodies hold words and an e-mail address. What is checked is both what pytest
captured (``caplog``) and what the real handler wrote (``bot.logs.setup``'s stream).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import logs, redaction
from bot.cli import app as cli_app
from tests.channels.slack_kit import SIGNING_SECRET, SlackRig, sign, slack_rig
from tests.channels.telegram_kit import SECRET, T0, add_person, answers, make_channel, text_update, webhook_client
from tests.conftest import ROOT
from tests.fakes.telegram_api import telegram_api

__all__ = ["slack_rig", "telegram_api"]  # fixtures, used by name below

WORDS = "zanzibar-quokka answer"
EMAIL = "quokka.person@example.org"
# Long enough to look like what Telegram issues; the fake accepts any token.
TG_TOKEN = "7012345678:AAF0quokkaSecretTokenValueForTests_x1"


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """The real logging set-up at DEBUG, writing to a buffer; pytest's capture kept beside it."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    logs.setup("DEBUG", "text")
    root.handlers.extend(h for h in saved[0] if h not in root.handlers)  # caplog's handler
    caplog.set_level(logging.DEBUG)
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    redaction.uninstall()


def everything(stream: io.StringIO, caplog: pytest.LogCaptureFixture) -> str:
    # Every field a handler could print (exc_info is the live exception: handlers print exc_text).
    # aiohttp.access records come from the fakes' own servers (Rapport's has no access log); their
    # raw fields hold the fake's request line, and their printed lines are checked in ``stream``.
    ours = [r for r in caplog.records if r.name != "aiohttp.access"]
    fields = [{k: v for k, v in vars(r).items() if k != "exc_info"} for r in ours]
    records = "\n".join(f"{r.getMessage()} {f}" for r, f in zip(ours, fields, strict=True))
    return f"{stream.getvalue()}\n{caplog.text}\n{records}"


def assert_clean(text: str, *secrets: str) -> None:
    assert text.strip(), "something was logged (the test would be empty otherwise)"
    for secret in secrets:
        assert secret not in text
    assert "zanzibar" not in text
    assert EMAIL not in text


# The pure rule -------------------------------------------------------------------------------


def test_redact_removes_configured_secrets_and_token_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "hunter22-smtp")
    monkeypatch.setenv("MY_SERVICE_API_KEY", "key-0123456789")
    line = (
        "POST https://api.telegram.org/bot7012345678:AAF0abcdefghijklmnopqrstuvwxyz012/sendMessage "
        "xoxb-1234-5678-abcdefgh xapp-1-A111-222-abc "
        "v0=" + "a" * 64 + " Authorization: Bearer abc.def.ghi-jkl "
        "postgresql://rapport:pg-pass-word@db/rapport hunter22-smtp key-0123456789"
    )
    clean = redaction.redact(line)
    for leaked in ("AAF0abc", "xoxb-1234", "xapp-1", "a" * 64, "abc.def", "pg-pass-word", "hunter22", "key-0123"):
        assert leaked not in clean
    assert "api.telegram.org/bot[redacted]/sendMessage" in clean
    assert "postgresql://rapport:[redacted]@db/rapport" in clean


def test_short_secrets_are_not_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "abc")
    assert redaction.redact("abc def") == "abc def"


def test_any_record_is_cleaned_message_args_and_traceback(logged: io.StringIO, caplog, monkeypatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TG_TOKEN)
    log = logging.getLogger("some.library")
    log.info("calling %s", f"https://example/bot{TG_TOKEN}/getMe")
    try:
        raise RuntimeError(f"failed with token {TG_TOKEN}")
    except RuntimeError:
        log.exception("it broke")
    logging.getLogger("httpx").info("HTTP Request: POST https://x/bot%s/sendMessage", TG_TOKEN)
    assert_clean(everything(logged, caplog), TG_TOKEN)
    assert "it broke" in logged.getvalue()
    assert "RuntimeError: failed with token [redacted]" in logged.getvalue()


def test_bolt_signature_failures_keep_the_event_and_drop_the_body(logged: io.StringIO, caplog) -> None:
    bolt = logging.getLogger("slack_bolt.AsyncRequestVerification")
    bolt.info(f"Invalid request signature detected (signature: v0=x, timestamp: 1, body: {WORDS} {EMAIL})")
    text = everything(logged, caplog)
    assert_clean(text)
    assert "Invalid request signature detected" in text


# Every channel at DEBUG ----------------------------------------------------------------------


def test_terminal_chat_at_debug_logs_no_words(db_url: str, tmp_path: Path, logged: io.StringIO, caplog) -> None:
    config = tmp_path / "config.yaml"
    config.write_text((ROOT / "config.yaml").read_text().replace("level: INFO", "level: DEBUG"))
    roster = tmp_path / "people.csv"
    roster.write_text(f"id,name,email,timezone,owner,programs\nann,Ann,{EMAIL},UTC,,customers\n")
    base = ["--config", str(config), "--database", db_url]
    runner = CliRunner()
    assert runner.invoke(cli_app, [*base, "people", "import", str(roster)]).exit_code == 0
    result = runner.invoke(cli_app, [*base, "chat", "ann", "--at", "2026-03-02T10:00:00Z"], input=f"7\n{WORDS}\n")
    assert result.exit_code == 0, result.output
    assert logging.getLogger().level == logging.DEBUG, "the command's own set-up ran at DEBUG"
    assert "zanzibar" not in result.stderr
    assert EMAIL not in result.stderr


async def test_telegram_checkin_at_debug_logs_no_token_and_no_words(
    make_app, telegram_api, logged: io.StringIO, caplog, monkeypatch
) -> None:
    telegram_api.token = TG_TOKEN
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TG_TOKEN)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", SECRET)
    app = make_app()
    add_person(app)
    channel = make_channel(app, telegram_api, mode="webhook")
    await channel.start()
    client = await webhook_client(channel)
    try:
        app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram", markup="telegram_html")
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        for i, text in enumerate(("7", WORDS, f"{WORDS} again {EMAIL}"), start=1):
            response = await client.post(
                "/telegram/webhook", json=text_update(text, update_id=900 + i), headers=headers
            )
            assert response.status == 200
        # A wrong secret carries words too: refused, and not logged.
        bad = await client.post("/telegram/webhook", json=text_update(WORDS), headers={
            "X-Telegram-Bot-Api-Secret-Token": "wrong"})  # fmt: skip
        assert bad.status == 403
    finally:
        await client.close()
        await channel.stop()
    assert ("reason", None, WORDS) in answers(app)
    assert_clean(everything(logged, caplog), TG_TOKEN, SECRET)


async def test_slack_checkin_and_forged_requests_at_debug_log_no_secret_and_no_words(
    slack_rig: SlackRig, logged: io.StringIO, caplog, monkeypatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack_rig.api.bot_token)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    await slack_rig.roster("ada", slack_user="U0ADA", email=EMAIL)
    await slack_rig.invite("ada")
    await slack_rig.click("U0ADA", value=6)
    await slack_rig.dm("U0ADA", WORDS)
    await slack_rig.post(slack_rig.envelope({"type": "app_home_opened", "user": "U0ADA", "tab": "home"}))

    event = {"type": "message", "user": "U0ADA", "text": f"{WORDS} {EMAIL}", "ts": "1.1", "channel": "D0ADA",
             "channel_type": "im"}  # fmt: skip
    body = json.dumps(slack_rig.envelope(event))
    forged = await slack_rig.post_raw(body, {"Content-Type": "application/json", **sign(body, secret="forged-x")})
    stale = await slack_rig.post_raw(body, {"Content-Type": "application/json",
                                            **sign(body, timestamp=int(time.time()) - 3600)})  # fmt: skip
    unsigned = await slack_rig.post_raw(body, {"Content-Type": "application/json"})
    assert (forged.status, stale.status, unsigned.status) == (401, 401, 401)

    text = everything(logged, caplog)
    assert_clean(text, slack_rig.api.bot_token, SIGNING_SECRET)
    assert "Invalid request signature detected" in text, "the refusal itself is still visible"
