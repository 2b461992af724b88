"""Fixtures for scheduler and delivery tests: a small config, people with identities, a clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from bot.app import App
from bot.config import Config, parse_config
from memory import store
from memory.db import transaction

UTC = dt.UTC

QUESTIONS = [
    {"key": "score", "kind": "rating", "text": "How are we doing?", "min": 0, "max": 10},
    {"key": "why", "kind": "text", "text": "Why?"},
]


def make_config(
    *,
    cadence: dict[str, Any] | None = None,
    window: dict[str, Any] | None = None,
    channels: list[str] | None = None,
    scheduler: dict[str, Any] | None = None,
) -> Config:
    program: dict[str, Any] = {
        "title": "pulse",
        "questions": QUESTIONS,
        "cadence": cadence or {"every": "1 month", "open_for_days": 7, "reminders": 2},
        "window": window or {"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]},
        "channels": channels or ["telegram"],
    }
    data: dict[str, Any] = {"programs": {"pulse": program}, "database": {"migrate_on_start": True}}
    if scheduler:
        data["scheduler"] = scheduler
    return parse_config(data)


class Clock:
    """A settable clock; ``sleep`` advances it instead of waiting."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> dt.datetime:
        self.now += dt.timedelta(**kwargs)
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += dt.timedelta(seconds=seconds)


def add_people(
    app: App,
    n: int,
    *,
    now: dt.datetime,
    timezone: str = "UTC",
    channel: str | None = "telegram",
    prefix: str = "p",
    program: str = "pulse",
) -> list[str]:
    """``n`` people enrolled in ``program`` with a reachable identity on ``channel``."""
    keys = []
    with transaction(app.sessions) as s:
        row = store.program_by_name(s, program)
        for i in range(n):
            key = f"{prefix}{i:04d}"
            person, _ = store.upsert_person(
                s, key=key, name=f"Person {i}", email=None, timezone=timezone, owner_key=None, programs=[row], now=now
            )
            if channel:
                store.link_identity(s, person=person, channel=channel, external_id=f"chat-{key}", now=now)
            keys.append(key)
    return keys


@pytest.fixture
def scheduled_app(make_app: Callable[..., App]) -> Callable[..., App]:
    def factory(**kwargs: Any) -> App:
        return make_app(config_override=make_config(**kwargs))

    return factory
