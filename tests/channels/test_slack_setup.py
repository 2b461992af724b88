"""Setting the Slack channel up: from config (or a clear reason why not), the manifest, and the
roster's optional ``slack_user`` column."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot.app import App, build_channels
from bot.channels.slack import SlackChannel
from bot.channels.slack.install import BOT_SCOPES
from bot.config import Config
from memory.db import transaction
from memory.importing import import_people
from memory.models import ChannelIdentity

ROOT = Path(__file__).resolve().parents[2]


def with_slack(app: App, **slack: Any) -> App:
    data = app.config.model_dump()
    data["channels"]["slack"].update(slack)
    return dataclasses.replace(app, config=Config.model_validate(data))


@pytest.fixture
def app(make_app: Callable[..., App], monkeypatch: pytest.MonkeyPatch) -> App:
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    return make_app()


def slack_of(app: App) -> SlackChannel | None:
    channel = build_channels(app)[0].get("slack")
    assert channel is None or isinstance(channel, SlackChannel)
    return channel


def test_off_without_a_bot_token_says_which_variable(app: App) -> None:
    channels, notes = build_channels(app)
    assert "slack" not in channels
    assert "slack: off — set SLACK_BOT_TOKEN" in notes


def test_off_when_disabled(app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    channels, notes = build_channels(with_slack(app, enabled=False))
    assert "slack" not in channels
    assert "slack: off (disabled in config: channels.slack.enabled)" in notes


def test_socket_mode_needs_the_app_token(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    assert slack_of(app) is None
    assert "SLACK_APP_TOKEN" in caplog.text
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    channel = slack_of(app)
    assert channel is not None
    assert channel.mode == "socket"
    assert channel.routes() == []  # nothing public to serve
    assert "xoxb-1" not in caplog.text


def test_http_mode_needs_the_signing_secret(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    http = with_slack(app, mode="http")
    assert slack_of(http) is None
    assert "SLACK_SIGNING_SECRET" in caplog.text
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    channel = slack_of(http)
    assert channel is not None
    assert [r.path for r in channel.routes()] == ["/slack/events"]  # type: ignore[attr-defined]


def test_install_flow_when_client_credentials_are_set(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    monkeypatch.setenv("SLACK_CLIENT_ID", "111.222")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "shh")
    multi = with_slack(app, mode="http", client_id="${SLACK_CLIENT_ID}", client_secret="${SLACK_CLIENT_SECRET}")
    channel = slack_of(multi)
    assert channel is not None
    assert channel.multi_workspace
    paths = sorted(r.path for r in channel.routes())  # type: ignore[attr-defined]
    assert paths == ["/slack/events", "/slack/install", "/slack/oauth_redirect"]


def test_manifest_asks_for_what_the_channel_uses() -> None:
    manifest = yaml.safe_load((ROOT / "slack-manifest.yaml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == set(BOT_SCOPES)
    settings = manifest["settings"]
    assert set(settings["event_subscriptions"]["bot_events"]) >= {"app_home_opened", "message.im"}
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True


def test_roster_slack_user_column(make_app: Callable[..., App]) -> None:
    app = make_app()
    csv = (
        "id,name,email,programs,slack_user\n"
        "ada,Ada,,customers,U0ADA\n"
        "bob,Bob,,customers,T0OTHER:W0BOB\n"
        "cy,Cy,,customers,\n"
        "dee,Dee,,customers,@dee\n"
        "eve,Eve,,customers,<!channel>\n"
    )
    report = import_people(app.sessions, csv, known_programs=app.config.programs, now=app_now())
    assert report.created == 3
    assert [p.line for p in report.problems] == [5, 6]
    assert "Slack user id" in report.problems[0].message
    with transaction(app.sessions) as s:
        rows = s.execute(
            select(ChannelIdentity.channel, ChannelIdentity.workspace, ChannelIdentity.external_id).order_by(
                ChannelIdentity.external_id
            )
        ).all()
    assert rows == [("slack", "", "U0ADA"), ("slack", "T0OTHER", "W0BOB")]
    # Re-importing the same file changes nothing and duplicates nothing.
    again = import_people(app.sessions, csv, known_programs=app.config.programs, now=app_now())
    assert again.created == 0
    with transaction(app.sessions) as s:
        assert len(s.scalars(select(ChannelIdentity)).all()) == 2


def app_now() -> Any:
    import datetime as dt

    return dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)


def test_bolts_own_client_id_variables_are_not_picked_up_silently(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    monkeypatch.setenv("SLACK_CLIENT_ID", "111.222")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "shh")
    assert slack_of(app) is None
    assert "channels.slack.client_id" in caplog.text


def test_install_flow_in_socket_mode_needs_no_signing_secret(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    monkeypatch.setenv("SLACK_CLIENT_ID", "111.222")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "shh")
    multi = with_slack(app, client_id="${SLACK_CLIENT_ID}", client_secret="${SLACK_CLIENT_SECRET}")
    channel = slack_of(multi)
    assert channel is not None
    assert channel.mode == "socket"
    paths = sorted(r.path for r in channel.routes())  # type: ignore[attr-defined]
    assert paths == ["/slack/install", "/slack/oauth_redirect"]
