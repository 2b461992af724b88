"""The terminal channel: a check-in at a prompt (``rapport chat``).

With a TTY it is interactive. Piped, it reads one line per answer from stdin and prints every bot
message to stdout; the end of input leaves the check-in open, to resume later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

from bot.engine.people import People
from bot.engine.ports import Inbound, Outbound
from bot.engine.service import CheckinService

NAME = "terminal"


def format_outbound(message: Outbound) -> str:
    if message.choices:
        return f"{message.text}\n  [{' '.join(c.label for c in message.choices)}]"
    return message.text


class TerminalChat:
    def __init__(
        self,
        *,
        service: CheckinService,
        person: str,
        program: str,
        clock: Callable[[], dt.datetime],
        write: Callable[[str], None],
        bot_prefix: str = "",
        people: People | None = None,
    ) -> None:
        self.service = service
        self.people = people or People(service=service)
        self.person = person
        self.program = program
        self.clock = clock
        self.write = write
        self.bot_prefix = bot_prefix
        self.checkin_id: int | None = None

    def _show(self, messages: list[Outbound]) -> None:
        for m in messages:
            self.write(self.bot_prefix + format_outbound(m))

    def start(self) -> bool:
        """Open or resume the check-in. False if there is nothing to do."""
        started = self.service.start(
            person_ref=self.person, program=self.program, now=self.clock(), channel=NAME, markup="plain"
        )
        self.checkin_id = started.checkin_id
        self._show(started.messages)
        return True

    def answer(self, line: str) -> None:
        inbound = Inbound(
            channel=NAME, sender=self.person, kind="text", text=line, received_at=self.clock(),
            checkin_id=self.checkin_id,
        )  # fmt: skip
        self._show(self.service.handle(inbound, markup="plain"))

    def is_open(self) -> bool:
        return self.people.checkin_open(self.checkin_id)

    def run(self, lines: Iterator[str]) -> bool:
        """Feed answers until the check-in closes or input ends. True if it closed."""
        self.start()
        if not self.is_open():
            return True
        for line in lines:
            self.answer(line.rstrip("\r\n"))
            if not self.is_open():
                return True
        return False
