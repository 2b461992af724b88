"""Two waves, six months apart, in one Slack DM, with the real sentence model: the second answer
gets a "what changed?" follow-up that quotes the person's earlier words, escaped for mrkdwn."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import App
from bot.web import make_web_app
from memory.db import transaction
from memory.models import Checkin, FollowUp
from tests.channels.slack_kit import NOW, Clock, SlackRig, make_channel
from tests.fakes.slack_api import FakeSlackAPI

ADA = "U0ADA"
ADA_DM = "D0ADA"


@pytest.mark.model
async def test_two_waves_in_a_dm_ask_what_changed(make_app: Callable[..., App]) -> None:
    async with FakeSlackAPI() as api:
        app = make_app(real_model=True)
        clock = Clock(now=NOW - dt.timedelta(days=182))
        channel = make_channel(app, api, clock)
        async with TestClient(TestServer(make_web_app(routes=channel.routes()))) as http:
            await channel.start()
            rig = SlackRig(api=api, app=app, channel=channel, http=http, clock=clock)
            await rig.roster("ada", slack_user=ADA)

            # Wave 1, six months ago.
            await rig.invite("ada")
            await rig.click(ADA, value=9)
            # A mention the person picked (Slack's markup), and a typed "&" (escaped by Slack).
            words = "<@U0BOSS> onboarding was fast &amp; support answered every ticket within the hour"
            await rig.dm(ADA, words, markup=True)

            # Wave 2, today.
            clock.now = NOW
            await rig.invite("ada")
            await rig.click(ADA, value=3)
            await rig.dm(ADA, "Support has become slow: tickets wait a week and nobody replies to us anymore")
            followup = rig.posted_texts(ADA_DM)[-1]
            assert "What changed?" in followup
            # The earlier words are quoted back as typed: escaped, so the mention cannot ping.
            assert "&lt;@U0BOSS&gt; onboarding was fast &amp; support" in followup
            assert all("<@U0BOSS>" not in text for text in rig.posted_texts())

            await rig.dm(ADA, "We moved to a new support team in the summer")
            with transaction(app.sessions) as s:
                answered = s.scalar(select(FollowUp.answer_text))
                statuses = list(s.scalars(select(Checkin.status).order_by(Checkin.id)))
            assert answered == "We moved to a new support team in the summer"
            assert statuses == ["completed", "completed"]
            await channel.stop()
