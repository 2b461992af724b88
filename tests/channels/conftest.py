"""Fixtures for channel tests: loopback fakes of the chat APIs."""

from __future__ import annotations

from tests.channels.slack_kit import slack_rig
from tests.fakes.telegram_api import telegram_api

__all__ = ["slack_rig", "telegram_api"]
