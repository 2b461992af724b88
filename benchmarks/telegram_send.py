"""Measure the Telegram channel's outbound pacing against the loopback fake Bot API; print JSON.

    .venv/bin/python benchmarks/telegram_send.py

Figures:

* ``overall_msgs_per_s``: 90 one-message sends to 90 different chats, 30 at a time, through
  ``TelegramChannel.send`` (the shared pacer, ``bot.channels.pacing``). Telegram's limit is about 30/s.
* ``one_chat_msgs_per_s``: 8 messages to one private chat (the per-chat limiter, about 1/s after a
  burst of three).
* ``inbound_ms_per_update``: wall time per text update through ``process_update`` (translate, the
  check-in service on SQLite with the hashing embedder, and the reply), 50 updates.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import build  # noqa: E402
from bot.channels.base import Address, Outbound  # noqa: E402
from bot.channels.pacing import Pacer  # noqa: E402
from bot.channels.telegram import TelegramChannel, TelegramSettings  # noqa: E402
from bot.channels.telegram.transport import OVERALL_RATE  # noqa: E402
from bot.config import load_config  # noqa: E402
from tests.channels.telegram_kit import add_person, text_update  # noqa: E402
from tests.fakes.embedder import HashingEmbedder  # noqa: E402
from tests.fakes.telegram_api import FakeTelegramAPI  # noqa: E402


async def main() -> dict[str, float]:
    config = load_config(ROOT / "config.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        app = build(config, embedder=HashingEmbedder(), database_url=f"sqlite:///{tmp}/bench.db", migrate=True)
        async with FakeTelegramAPI() as api:
            settings = TelegramSettings(
                token=api.token, invite_key=b"k" * 32, mode="webhook", api_base_url=api.base_url,
                webhook_url="https://bench/telegram/webhook", secret_token="s",
            )  # fmt: skip
            channel = TelegramChannel(settings=settings, service=app.service)
            await channel.start()
            try:
                sem = asyncio.Semaphore(30)

                async def one(chat: int) -> None:
                    async with sem:
                        await channel.send(Address(channel="telegram", external_id=str(chat)), [Outbound(text="hi")])

                # Warm up (connections) before timing.
                await asyncio.gather(*(one(10_000 + i) for i in range(5)))
                await asyncio.sleep(1.1)
                start = time.perf_counter()
                await asyncio.gather(*(one(20_000 + i) for i in range(90)))
                overall = 90 / (time.perf_counter() - start)

                start = time.perf_counter()
                await channel.send(Address(channel="telegram", external_id="777"), [Outbound(text="m")] * 8)
                one_chat = 8 / (time.perf_counter() - start)

                channel.transport.pacer = Pacer(per_conversation=0, overall=OVERALL_RATE)
                add_person(app, "bench", chat_id=555)
                app.service.start(person_ref="bench", program="customers", now=channel.clock(), channel="telegram")
                start = time.perf_counter()
                for i in range(50):
                    await channel.process_update(text_update("8" if i == 0 else f"answer {i}", chat_id=555))
                inbound = (time.perf_counter() - start) / 50 * 1000
            finally:
                await channel.stop()
        app.close()
    return {
        "overall_msgs_per_s": round(overall, 1),
        "one_chat_msgs_per_s": round(one_chat, 2),
        "inbound_ms_per_update": round(inbound, 1),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
