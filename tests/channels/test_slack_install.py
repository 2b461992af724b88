"""Several workspaces: the OAuth install flow, installations in Rapport's database (slack-sdk's
SQLAlchemy stores on the tables of migration 0002_slack), and uninstalls."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import MetaData, inspect, select

from bot.app import App
from bot.channels.base import Address, Outbound
from bot.channels.slack import SlackChannel, SlackOAuth
from bot.web import make_web_app
from memory.db import transaction
from memory.errors import PermanentFailure
from memory.importing import import_people
from memory.models import Answer
from tests.channels.slack_kit import Clock, make_channel, sign
from tests.fakes.slack_api import FakeSlackAPI

CLIENT_ID = "111.222"


@dataclass
class Installed:
    api: FakeSlackAPI
    app: App
    channel: SlackChannel
    http: TestClient[Any, Any]


@pytest.fixture
async def multi(make_app: Callable[..., App]) -> AsyncIterator[Installed]:
    async with FakeSlackAPI() as api:
        app = make_app()
        oauth = SlackOAuth(client_id=CLIENT_ID, client_secret="client-secret", engine=app.engine)
        channel = make_channel(app, api, Clock(), bot_token=None, oauth=oauth)
        async with TestClient(TestServer(make_web_app(routes=channel.routes()))) as http:
            await channel.start()
            yield Installed(api=api, app=app, channel=channel, http=http)
            await channel.stop()


async def install(rig: Installed) -> None:
    page = await rig.http.get("/slack/install")
    assert page.status == 200
    html = await page.text()
    state = re.search(r"state=([\w-]+)", html)
    assert state is not None
    assert "oauth/v2/authorize" in html
    cookie = page.headers["Set-Cookie"].split(";", 1)[0]
    done = await rig.http.get(
        "/slack/oauth_redirect", params={"code": "the-code", "state": state.group(1)}, headers={"Cookie": cookie}
    )
    assert done.status == 200, await done.text()


def test_migration_matches_the_stores_own_tables(make_app: Callable[..., App]) -> None:
    app = make_app()
    expected = MetaData()
    SQLAlchemyInstallationStore.build_installations_table(expected, "slack_installations")
    SQLAlchemyInstallationStore.build_bots_table(expected, "slack_bots")
    SQLAlchemyOAuthStateStore.build_oauth_states_table(expected, "slack_oauth_states")
    db = inspect(app.engine)
    for table in expected.sorted_tables:
        columns = {c["name"]: c for c in db.get_columns(table.name)}
        assert set(columns) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)


async def test_install_flow_stores_the_workspace_and_sends_with_its_token(multi: Installed) -> None:
    await install(multi)
    assert multi.api.calls_to("oauth.v2.access")[0]["code"] == "the-code"
    assert await multi.channel.installations.teams() == ["T222"]  # type: ignore[union-attr]
    await multi.channel.send(Address(channel="slack", external_id="U0ADA", workspace="T222"), [Outbound(text="hi")])
    post = next(c for c in multi.api.calls if c.method == "chat.postMessage")
    assert post.token == "xoxb-T222-installed"
    # A workspace that never installed Rapport cannot be written to.
    with pytest.raises(PermanentFailure):
        await multi.channel.send(Address(channel="slack", external_id="U1", workspace="T999"), [Outbound(text="x")])


async def test_a_forged_or_replayed_state_is_refused(multi: Installed) -> None:
    resp = await multi.http.get("/slack/oauth_redirect", params={"code": "c", "state": "forged"})
    assert resp.status >= 400
    assert multi.api.calls_to("oauth.v2.access") == []


async def test_checkin_in_an_installed_workspace_then_uninstall(multi: Installed) -> None:
    await install(multi)
    csv = "id,name,programs,slack_user\nada,Ada,customers,T222:U0ADA\n"
    import_people(multi.app.sessions, csv, known_programs=multi.app.config.programs, now=Clock()())
    started = multi.app.service.start(person_ref="ada", program="customers", now=Clock()(), channel="slack",
                                      markup="slack_mrkdwn")  # fmt: skip
    await multi.channel.send(Address(channel="slack", external_id="U0ADA", workspace="T222"), started.messages)

    async def event(payload: dict[str, Any]) -> int:
        body = json.dumps({"type": "event_callback", "team_id": "T222", "api_app_id": "A111", **payload})
        resp = await multi.http.post(
            "/slack/events", data=body, headers={"Content-Type": "application/json", **sign(body)}
        )
        await multi.channel.drain()
        return resp.status

    dm = {"type": "message", "user": "U0ADA", "text": "8", "ts": "5.1", "channel": "D0ADA", "channel_type": "im"}
    assert await event({"event_id": "EvA", "event": dm}) == 200
    with transaction(multi.app.sessions) as s:
        assert s.scalar(select(Answer.rating)) == 8
    assert await event({"event_id": "EvB", "event": {"type": "app_uninstalled"}}) == 200
    assert await multi.channel.installations.teams() == []  # type: ignore[union-attr]
    with pytest.raises(PermanentFailure):
        await multi.channel.send(Address(channel="slack", external_id="U0ADA", workspace="T222"), [Outbound(text="x")])


async def test_revoked_bot_token_disables_the_workspace(multi: Installed) -> None:
    await install(multi)
    body = json.dumps(
        {"type": "event_callback", "team_id": "T222", "event_id": "EvR",
         "event": {"type": "tokens_revoked", "tokens": {"oauth": ["U0INSTALLER"], "bot": ["UBOT2"]}}}
    )  # fmt: skip
    resp = await multi.http.post("/slack/events", data=body, headers={"Content-Type": "application/json", **sign(body)})
    assert resp.status == 200
    await multi.channel.drain()
    assert await multi.channel.installations.teams() == []  # type: ignore[union-attr]
