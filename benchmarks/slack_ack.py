"""How fast Rapport acknowledges Slack, whether the answer is stored by then, and how long until
the replies are out.

    .venv/bin/python benchmarks/slack_ack.py [people]

Slack wants an answer within 3 seconds, and retries otherwise. The Slack channel stores a person's
answer (the engine, with the real sentence model, in a worker thread) before it acknowledges, for
at most 2 s, and posts the replies after. This runs the real ``SlackChannel`` (Bolt ``AsyncApp`` +
slack-sdk client) against the loopback Web API fake on a temporary SQLite database, sends each
person's signed rating click and signed free-text DM over real HTTP, and prints JSON: the
acknowledgement times (HTTP round trip of the signed request), how many answers were already
committed when the acknowledgement arrived, and the time until the replies were posted.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bot.app import build  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.web import make_web_app  # noqa: E402
from memory.models import Answer  # noqa: E402
from tests.channels.slack_kit import Clock, SlackRig, make_channel  # noqa: E402
from tests.fakes.slack_api import FakeSlackAPI  # noqa: E402

TEXT = "Support answers quickly, but the new billing page confuses our finance team every month."


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def main(people: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        app = build(load_config(ROOT / "config.yaml"), database_url=f"sqlite:///{tmp}/bench.db", migrate=True)
        app.embedder.encode(["warm up"])
        async with FakeSlackAPI() as api:
            clock = Clock()
            channel = make_channel(app, api, clock)
            async with TestClient(TestServer(make_web_app(routes=channel.routes()))) as http:
                await channel.start()
                rig = SlackRig(api=api, app=app, channel=channel, http=http, clock=clock)
                users = [f"U0P{i:04d}" for i in range(people)]
                for i, user in enumerate(users):
                    await rig.roster(f"p{i:04d}", slack_user=user)
                    await rig.invite(f"p{i:04d}", user=user)
                acks: dict[str, list[float]] = {"rating_click": [], "text_dm": []}
                stored_at_ack = {"rating_click": 0, "text_dm": 0}
                # DMs not stored within the 2 s bound: answered 503, so that Slack delivers them again.
                left_for_retry = 0
                done: list[float] = []

                def answers() -> int:
                    with app.sessions() as s:
                        return int(s.scalar(select(func.count()).select_from(Answer)) or 0)

                for user in users:
                    for kind, send in (
                        ("rating_click", lambda u=user: rig.click(u, value=7)),
                        ("text_dm", lambda u=user: rig.dm(u, TEXT)),
                    ):
                        before = answers()
                        started = time.perf_counter()
                        # Measure the acknowledgement alone: post without waiting for the work.
                        drain, channel.drain = channel.drain, _no_wait  # type: ignore[method-assign]
                        try:
                            resp = await send()
                        finally:
                            channel.drain = drain  # type: ignore[method-assign]
                        acks[kind].append(time.perf_counter() - started)
                        if kind == "text_dm" and resp.status == 503:
                            left_for_retry += 1
                        else:
                            assert resp.status == 200
                            stored_at_ack[kind] += answers() > before
                        await channel.drain()
                        done.append(time.perf_counter() - started)
                await channel.stop()
        app.close()
    return {
        "benchmark": "slack_ack",
        "people": people,
        "ack_rating_click": summary(acks["rating_click"]),
        "ack_text_dm": summary(acks["text_dm"]),
        "stored_when_acknowledged": {k: f"{v}/{people}" for k, v in stored_at_ack.items()},
        "dms_left_for_slacks_retry": left_for_retry,
        "until_replies_posted": summary(done),
        "slack_deadline_ms": 3000,
    }


async def _no_wait() -> None:
    return None


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)), indent=2))
