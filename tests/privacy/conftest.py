"""Fixtures the consent tests share with the channel and scheduler tests: the loopback chat
fakes, the scheduler's small app, and the web page's app and client."""

from __future__ import annotations

from tests.channels.slack_kit import slack_rig
from tests.channels.test_web import client, web_app
from tests.fakes.telegram_api import telegram_api
from tests.scheduler.conftest import scheduled_app

__all__ = ["client", "scheduled_app", "slack_rig", "telegram_api", "web_app"]
