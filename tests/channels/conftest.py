"""Fixtures for channel tests: loopback fakes of the chat APIs."""

from __future__ import annotations

from tests.fakes.telegram_api import telegram_api

__all__ = ["telegram_api"]
