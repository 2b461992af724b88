"""What a feature plugs into ``rapport run``: outbox handlers per row kind, and periodic jobs.

The runner (:mod:`bot.runner`) wires each feature explicitly; these are the shapes it takes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from scheduler.dispatch import Handler


@dataclass(frozen=True, kw_only=True)
class PeriodicJob:
    """Work the service runs every ``seconds``; ``run(now)`` may be sync (runs in a thread) or async.

    ``leader_only`` jobs run only in the process that holds the scheduling lock (planning work,
    e.g. writing digest rows to the outbox); the others run in every process.
    """

    name: str
    seconds: float
    run: Callable[[dt.datetime], Awaitable[None] | None]
    leader_only: bool = True


@dataclass(frozen=True, kw_only=True)
class RunnerExtension:
    """What a feature plugs into the service: handlers per outbox kind, and periodic jobs."""

    handlers: Mapping[str, Handler] = field(default_factory=dict)
    jobs: Sequence[PeriodicJob] = ()
