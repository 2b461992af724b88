"""Telegram polling under a burst: a fetched batch is handed to the engine at once, each chat's
updates still in order, every update processed once and confirmed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from bot.channels.base import use_engine_threads
from memory.batching import BatchingEmbedder
from memory.db import transaction
from memory.models import Answer, ChannelIdentity
from tests.channels.telegram_kit import T0, add_person, make_channel, text_update
from tests.fakes.embedder import HashingEmbedder

CHATS = 40


class Slow(HashingEmbedder):
    """Encodes like the model does: slowly, so answers arriving together pile up behind a call."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        with self.lock:
            self.sizes.append(len(texts))
        threading.Event().wait(0.05)
        return super().encode(texts)


async def test_a_polled_burst_keeps_each_chats_order_and_shares_encode_calls(make_app, telegram_api) -> None:
    app = make_app()
    inner = Slow()
    app.detector.embedder = BatchingEmbedder(inner, max_wait=0.005)
    use_engine_threads(asyncio.get_running_loop(), 64)
    for i in range(CHATS):
        add_person(app, f"p{i}", chat_id=1000 + i)
        app.service.start(person_ref=f"p{i}", program="customers", now=T0, channel="telegram",
                          markup="telegram_html")  # fmt: skip
    # Each person's rating, then their reason; everyone's in one getUpdates batch. Out of order,
    # the reason would be read as a rating ("please answer with a number").
    last = 0
    for i in range(CHATS):
        telegram_api.push_update(text_update("9", chat_id=1000 + i))
        last = telegram_api.push_update(text_update(f"Reason {i}: the support team", chat_id=1000 + i))
    channel = make_channel(app, telegram_api)
    await channel.start()
    try:
        await telegram_api.wait_confirmed(last, timeout=60)
    finally:
        await channel.stop()

    with transaction(app.sessions) as s:
        chats = {c.person_id: int(c.external_id) for c in s.scalars(select(ChannelIdentity))}
        rows = s.execute(select(Answer.person_id, Answer.question, Answer.rating, Answer.text).order_by(Answer.id))
        by_chat: dict[int, list[tuple[str, int | None, str | None]]] = {}
        for person_id, question, rating, text in rows:
            by_chat.setdefault(chats[person_id], []).append((question, rating, text))
    assert len(by_chat) == CHATS
    for chat_id, answers in by_chat.items():
        assert answers == [("recommend", 9, None), ("reason", None, f"Reason {chat_id - 1000}: the support team")]
    assert sum(inner.sizes) == CHATS, "each reason encoded once"
    assert max(inner.sizes) > 1, "reasons of different chats shared an encode call"
