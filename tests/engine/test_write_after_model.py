"""The model runs before the write transaction, and the write re-checks what it was computed from.

On SQLite the proof is direct: while the model embeds, another connection can take the write
lock. If the check-in moved meanwhile (another event of the same person committed first), the
service computes again from the new state instead of saving an answer computed from the old one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import select, update

from memory.db import transaction
from memory.models import Answer, Checkin
from tests.fakes.embedder import HashingEmbedder
from tests.helpers import Conversation, seed


class Probe(HashingEmbedder):
    """Embeds like the hashing embedder, and runs ``hook`` on every call first."""

    def __init__(self, hook: Callable[[], None]) -> None:
        super().__init__()
        self.hook = hook

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.hook()
        return super().encode(texts)


def install(app, probe: Probe) -> None:
    app.detector.embedder = probe


def test_no_write_lock_is_held_while_the_model_runs(make_app, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the write lock is SQLite's")
    app = make_app()
    seed(app)
    path = db_url.split(":///", 1)[1]
    locked: list[bool] = []

    def try_to_write() -> None:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            locked.append(False)
        except sqlite3.OperationalError:
            locked.append(True)
        finally:
            other.close()

    install(app, Probe(try_to_write))
    conv = Conversation(app)
    conv.start()
    conv.say("8")
    conv.say("Support answered within an hour.", event_key="e-text", ref="m-1")
    with transaction(app.sessions) as s:  # still open (as while a follow-up is pending), so edits apply
        s.execute(update(Checkin).where(Checkin.id == conv.checkin_id).values(status="in_progress"))
    conv.say("Support answers within a minute now.", kind="edit", ref="m-1", event_key="e-edit")
    assert len(locked) == 2  # the answer and its edit were embedded
    assert not any(locked)  # and each time another writer could write
    with transaction(app.sessions) as s:
        answer = s.scalars(select(Answer).where(Answer.source_ref == "m-1")).one()
        assert answer.text == "Support answers within a minute now."
        assert answer.embedding is not None


def test_an_answer_whose_checkin_moved_while_the_model_ran_is_computed_again(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    conv.say("8")
    other = Conversation(app)
    other.checkin_id = conv.checkin_id
    moved: list[str] = []

    def meanwhile() -> None:
        # The same person skips the question from another device while the model embeds.
        if not moved:
            moved.append("skip")
            other.say("skip", event_key="e-skip")

    probe = Probe(meanwhile)
    install(app, probe)
    replies = conv.say("Support answered within an hour.", event_key="e-text")
    # Recomputed against the new state: the check-in is complete, nothing stale is saved.
    assert "already complete" in conv.texts(replies)
    with transaction(app.sessions) as s:
        reason = s.scalars(
            select(Answer).where(Answer.checkin_id == conv.checkin_id, Answer.question == "reason")
        ).one()
        assert (reason.skipped, reason.text, reason.embedding) == (True, None, None)
    # The redelivered event is a duplicate now: no second reply.
    assert conv.say("Support answered within an hour.", event_key="e-text") == []
