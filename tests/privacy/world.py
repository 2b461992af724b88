"""A small world for privacy tests: two people of one owner, each with unique words everywhere.

Ann's words carry ``ANN_MARK`` and Bob's ``BOB_MARK``: in answers, follow-ups, a promise and its
outcome, a check-in's conversation state, an outbox row and its stored contents, and in an owner
digest (stored contents and the Markdown/HTML files the file channel writes).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bot.app import App
from bot.digests import render_digest
from memory import audit
from memory.db import transaction
from memory.digests import build_digest
from memory.models import ChannelIdentity, OutboxMessage, Outcome, Promise
from memory.models_channels import ChannelMark
from memory.models_scheduler import OutboxContent
from tests.history_builder import History, months

ANN_MARK = "Zqxannmark7731"
BOB_MARK = "Vwybobmark5519"
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def build_world(app: App, digest_folder: Path) -> None:
    with transaction(app.sessions) as s:
        h = History(s)
        for key, mark, old, new in (("ann", ANN_MARK, 9, 3), ("bob", BOB_MARK, 8, 2)):
            p = h.person(key)
            h.checkin(p, "customers", T0 - months(6), rating=old, text=f"{mark} early: the onboarding was smooth")
            c = h.checkin(p, "customers", T0, rating=new, text=f"{mark} late: support never answered my tickets",
                          followup=f"{mark} follow-up: they moved my account manager")  # fmt: skip
            c.state = {"last_text": f"{mark} in the conversation state"}
            for a in c.answers:
                a.embedding = b"\x00\x01" * 192
                a.embedding_model = "test"
            promise = Promise(person_id=p.id, owner_id=p.owner_id, program_id=c.program_id,
                              text=f"{mark} promise: a named contact by April", made_at=T0, status="open",
                              source="cli", created_at=T0)  # fmt: skip
            s.add(promise)
            s.flush()
            s.add(Outcome(promise_id=promise.id, checkin_id=c.id, verdict="partly",
                          comment=f"{mark} outcome: only half of it", recorded_at=T0))  # fmt: skip
            row = OutboxMessage(key=f"invitation:{key}", kind="invitation", person_id=p.id, program_id=c.program_id,
                                channel="terminal", payload={"note": f"{mark} payload"}, status="sent",
                                not_before=T0, created_at=T0)  # fmt: skip
            s.add(row)
            s.flush()
            s.add(OutboxContent(outbox_id=row.id, channel="terminal",
                                body={"messages": [f"Last time you said: {mark} late"]}, prepared_at=T0))  # fmt: skip
            s.add(ChannelIdentity(person_id=p.id, channel="slack", workspace="T1", external_id=f"U{key.upper()}",
                                  address=f"D{key.upper()}", created_at=T0))  # fmt: skip
            s.add(ChannelMark(key=f"slack:clicked:D{key.upper()}:1700.1", value="1", expires_at=T0, updated_at=T0))
            audit.record(s, actor="lead", action="story.view", now=T0, person_id=p.id, detail={"person": p.id})
        digest = build_digest(s, owner="lead", since=T0 - dt.timedelta(days=7), until=T0 + dt.timedelta(days=1),
                              threshold=2, quote_chars=160, encode=app.embedder.encode)  # fmt: skip
        files = {"digest-1-20260303T1000.md": render_digest(digest, "markdown").body + "\n",
                 "digest-1-20260303T1000.html": render_digest(digest, "html").body + "\n"}  # fmt: skip
        owner_id = h.person_by_key("ann").owner_id
        row = OutboxMessage(key="digest:lead:1", kind="digest", owner_id=owner_id, channel="file",
                            payload={"owner": "lead"}, status="sent", not_before=T0, created_at=T0)  # fmt: skip
        s.add(row)
        s.flush()
        s.add(OutboxContent(outbox_id=row.id, channel="file", body={"files": files, "channel": "file"},
                            prepared_at=T0))  # fmt: skip
    digest_folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (digest_folder / name).write_text(text, encoding="utf-8")
    for name, text in files.items():
        assert ANN_MARK in text, f"the digest {name} must quote Ann"
        assert BOB_MARK in text, f"the digest {name} must quote Bob"
