"""Small builders shared by tests: a roster, past answers, and a terminal-style conversation."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from bot.app import App
from bot.engine.ports import Inbound, Outbound
from memory.importing import import_answers, import_people

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)

ROSTER = """id,name,email,timezone,owner,programs
ann,Ann,ann@example.com,Europe/Berlin,owner@example.com,customers
bob,Bob,bob@example.com,America/New_York,owner@example.com,customers;employees
"""


def seed(app: App, roster: str = ROSTER, now: dt.datetime = T0) -> None:
    report = import_people(app.sessions, roster, known_programs=app.config.programs, now=now)
    assert not report.problems, report.problems


def seed_answers(app: App, csv_text: str, now: dt.datetime) -> Any:
    questions = {name: {q.key: (q.kind, q.min, q.max) for q in p.questions} for name, p in app.config.programs.items()}
    return import_answers(app.sessions, csv_text, questions=questions, embedder=app.embedder, now=now)


class Conversation:
    """Drives one person's check-in through the real service, as a channel would."""

    def __init__(self, app: App, person: str = "ann", program: str = "customers", channel: str = "terminal") -> None:
        self.app, self.person, self.program, self.channel = app, person, program, channel
        self.transcript: list[str] = []
        self.checkin_id: int | None = None

    def start(self, now: dt.datetime = T0) -> list[Outbound]:
        started = self.app.service.start(person_ref=self.person, program=self.program, now=now, channel=self.channel)
        self.checkin_id = started.checkin_id
        self.transcript += [m.text for m in started.messages]
        return started.messages

    def say(self, text: str, now: dt.datetime = T0, **kw: Any) -> list[Outbound]:
        inbound = Inbound(channel=self.channel, sender=self.person, kind=kw.pop("kind", "text"), text=text,
                          received_at=now, checkin_id=self.checkin_id, **kw)  # fmt: skip
        replies = self.app.service.handle(inbound)
        self.transcript += [m.text for m in replies]
        return replies

    def texts(self, replies: list[Outbound]) -> str:
        return "\n".join(m.text for m in replies)


def blocking_handle(app: App) -> tuple[threading.Event, threading.Event]:
    """Make the app's engine wait inside ``handle``, before storing, until released (as a process
    would when killed there, or an engine slower than a channel's deadline)."""
    entered, release = threading.Event(), threading.Event()
    original = app.service.handle

    def handle(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        return original(*args, **kwargs)

    app.service.handle = handle  # type: ignore[method-assign]
    return entered, release
