"""How ``rapport run`` sends owner digests: an outbox handler and a planning job.

``bot.runner.Runner`` wires it in explicitly (:func:`digests_extension`): digests are planned
into the outbox by the leader every ``PLAN_SECONDS`` (``scheduler.digests.plan_digests``) and
sent by any process's dispatcher (:class:`bot.digests.DigestDelivery`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.digests import DigestDelivery, digest_schedule
from bot.extensions import PeriodicJob, RunnerExtension
from memory.db import transaction
from scheduler.digests import plan_digests

if TYPE_CHECKING:
    from bot.app import App


#: How often the leader looks for digests that have come due (a cron minute is the finest grain).
PLAN_SECONDS = 60.0


def digests_extension(app: App, channels: Mapping[str, Any]) -> RunnerExtension:
    deliver = DigestDelivery(sessions=app.sessions, config=app.config, channels=channels, encode=app.embedder.encode)
    if not app.config.digests.enabled:
        return RunnerExtension(handlers={"digest": deliver})
    schedule = digest_schedule(app.config)

    def plan(now: dt.datetime) -> None:
        # plan_digests logs "digests planned" itself; saying it here too doubled the line.
        with transaction(app.sessions) as s:
            plan_digests(s, schedule=schedule, now=now)

    job = PeriodicJob(name="digests", seconds=PLAN_SECONDS, run=plan, leader_only=True)
    return RunnerExtension(handlers={"digest": deliver}, jobs=[job])
