"""Duplicates when Telegram answers slowly: 200 chats, one invitation each, with 20% of
``sendMessage`` calls delivered at once but answered 15 s late (as under load); print JSON.

    .venv/bin/python benchmarks/telegram_timeouts.py

Figures:

* ``delivered_twice``: chats that received the message more than once from the channel itself
  (a send that gave up on a slow answer and tried again in place);
* ``handed_back_after_delivery``: sends that reached the chat but came back to the caller as an
  error, so the outbox would send them again later (another duplicate);
* ``unknown``: sends handed back as ``DeliveryUnknown`` (a late answer; maybe delivered);
* ``seconds``: wall time for the 200 sends, 30 at a time.

It runs against whichever Rapport is on ``sys.path`` (so the same file measures the code before
a change too), on the loopback fake Bot API.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import build  # noqa: E402
from bot.channels.base import Address, Outbound  # noqa: E402
from bot.config import load_config  # noqa: E402
from memory.errors import DeliveryError  # noqa: E402
from tests.fakes.embedder import HashingEmbedder  # noqa: E402
from tests.fakes.telegram_api import FakeTelegramAPI  # noqa: E402

CHATS = 200
SLOW_SHARE = 0.2
SLOW_SECONDS = 15.0


class SlowTelegramAPI(FakeTelegramAPI):
    """The fake Bot API, answering a share of sendMessage calls late (after delivering them)."""

    async def _dispatch(self, request: web.Request) -> web.Response:
        response = await super()._dispatch(request)
        if request.match_info["method"] == "sendMessage" and self.rng.random() < SLOW_SHARE:
            await asyncio.sleep(SLOW_SECONDS)
        return response

    rng = random.Random(7)


def make_channel(app: Any, api: FakeTelegramAPI, config: Any) -> Any:
    from bot.channels import telegram

    if hasattr(telegram, "TelegramSettings"):  # channels as folders, typed settings
        settings = telegram.TelegramSettings(
            token=api.token, invite_key=b"k" * 32, mode="webhook", api_base_url=api.base_url,
            webhook_url="https://bench/telegram/webhook", secret_token="s", per_chat_rate=0,
        )  # fmt: skip
        return telegram.TelegramChannel(settings=settings, service=app.service)
    update = {"api_base_url": api.base_url, "mode": "webhook", "webhook_url": "https://bench/telegram/webhook"}
    channel = telegram.TelegramChannel(
        config=config.channels.telegram.model_copy(update=update), service=app.service, sessions=app.sessions,
        token=api.token, invite_secret=b"k" * 32, secret_token="s",
    )  # fmt: skip
    channel.per_chat_rate = 0
    return channel


async def main() -> dict[str, Any]:
    config = load_config(ROOT / "config.yaml")
    outcomes: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        app = build(config, embedder=HashingEmbedder(), database_url=f"sqlite:///{tmp}/bench.db", migrate=True)
        async with SlowTelegramAPI() as api:
            channel = make_channel(app, api, config)
            await channel.start()
            try:
                sem = asyncio.Semaphore(30)

                async def one(chat: int) -> None:
                    async with sem:
                        try:
                            await channel.send(
                                Address(channel="telegram", external_id=str(chat)), [Outbound(text="hi")]
                            )
                            outcomes["sent"] += 1
                        except DeliveryError as exc:
                            outcomes[type(exc).__name__] += 1
                            outcomes["handed_back_after_delivery"] += int(
                                any(c.get("chat_id") == chat for c in api.calls_to("sendMessage"))
                            )

                start = time.perf_counter()
                await asyncio.gather(*(one(10_000 + i) for i in range(CHATS)))
                seconds = time.perf_counter() - start
            finally:
                await channel.stop()
            per_chat = Counter(c.get("chat_id") for c in api.calls_to("sendMessage"))
        app.close()
    return {
        "chats": CHATS,
        "slow_share": SLOW_SHARE,
        "slow_seconds": SLOW_SECONDS,
        "delivered_twice": sum(1 for n in per_chat.values() if n > 1),
        "handed_back_after_delivery": outcomes.pop("handed_back_after_delivery", 0),
        "unknown": outcomes.get("DeliveryUnknown", 0),
        "outcomes": dict(outcomes),
        "seconds": round(seconds, 1),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
