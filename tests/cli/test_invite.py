"""``rapport invite``: prints a deep link whose token links that person's chat."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from bot.cli import app
from bot.invites import derive_key, read_token
from tests.conftest import ROOT
from tests.helpers import seed

runner = CliRunner()
LINK = re.compile(r"^https://t\.me/RapportBot\?start=([A-Za-z0-9_-]{1,64})$")


def cli(db_url: str, *args: str):
    return runner.invoke(app, ["--config", str(ROOT / "config.yaml"), "--database", db_url, "invite", *args])


def test_invite_prints_a_signed_one_time_link(make_app, db_url, monkeypatch) -> None:
    seed(make_app())
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:abc")
    monkeypatch.setenv("RAPPORT_INVITE_SECRET", "invite-secret")
    result = cli(db_url, "ann", "--channel", "telegram", "--bot-username", "@RapportBot")
    assert result.exit_code == 0, result.output
    match = LINK.match(result.stdout.strip())
    assert match, result.stdout
    from bot.cli._app import utcnow

    invite = read_token(match.group(1), key=derive_key(invite_secret="invite-secret", bot_token="other"), now=utcnow())
    assert invite.person_id >= 1
    assert "works once" in result.stderr


def test_invite_refuses_other_channels_unknown_people_and_missing_secrets(make_app, db_url, monkeypatch) -> None:
    seed(make_app())
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:abc")
    assert cli(db_url, "ann", "--channel", "slack").exit_code == 2
    assert cli(db_url, "ann", "--bot-username", "not a name!").exit_code == 2
    unknown = cli(db_url, "nobody", "--bot-username", "RapportBot")
    assert unknown.exit_code != 0
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    monkeypatch.delenv("RAPPORT_INVITE_SECRET", raising=False)
    missing = cli(db_url, "ann", "--bot-username", "RapportBot")
    assert missing.exit_code == 2
    assert "TELEGRAM_BOT_TOKEN" in missing.stderr
