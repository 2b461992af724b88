"""Encryption at rest: with a key, people's words are nowhere in clear, and the product works.

Runs on SQLite and, with ``RAPPORT_TEST_DATABASE_URL``, on PostgreSQL. The words are found by
reading every text, JSON and binary column of every table (and, on SQLite, the file's bytes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from bot.app import App
from bot.digests import render_digest
from memory import crypto, erasure, rekey
from memory.db import transaction
from memory.digests import build_digest
from memory.errors import EncryptedValueUnreadable, EncryptionKeyMissing, NotFound
from memory.export import export_person
from memory.models import Answer, OutboxMessage, Owner, Person
from memory.models_scheduler import OutboxContent
from memory.promises import add_promise
from tests.helpers import Conversation, seed
from tests.privacy.test_erasure import file_bytes, table_text
from tests.privacy.world import ANN_MARK, BOB_MARK, T0, build_world

MARCH = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
SEPTEMBER = MARCH + dt.timedelta(days=182)
EARLY = "Qvzearlymark4411"
FOLLOW = "Qvzfollowmark8812"
PROMISE = "Qvzpromisemark2290"
KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``keys("A", "B")`` puts those keys in the environment (newest first) and reads them."""
    named = {"A": KEY_A, "B": KEY_B}

    def use(*names: str) -> None:
        if names:
            monkeypatch.setenv(crypto.ENV, ",".join(named.get(n, n) for n in names))
        else:
            monkeypatch.delenv(crypto.ENV, raising=False)
        crypto.load()

    yield use
    crypto.reset()


def words_in_clear(app: App, *words: str) -> list[str]:
    """Which of ``words`` a reader of the database (any table, or the SQLite file) would see."""
    text = table_text(app)
    raw = file_bytes(app).decode("utf-8", "replace") if app.engine.dialect.name == "sqlite" else ""
    return [w for w in words if w in text or w in raw]


def all_exports(app: App) -> dict[str, dict[str, object]]:
    with transaction(app.sessions) as s:
        keys = list(s.scalars(select(Person.key).order_by(Person.key)))
        found = {k: export_person(s, k, now=T0) for k in keys}
    for data in found.values():
        data.pop("exported_at")
    return found


def plain_world(app: App, folder: Path) -> None:
    """The privacy world, without the test-only words it puts in an outbox payload (real payloads
    hold program, wave, owner and dates only: no words)."""
    build_world(app, folder)
    sqlite = app.engine.dialect.name == "sqlite"
    with transaction(app.sessions) as s:
        if sqlite:
            s.connection().exec_driver_sql("PRAGMA secure_delete=ON")
        s.execute(update(OutboxMessage).where(OutboxMessage.kind == "invitation").values(payload={}))
    if sqlite:
        erasure.scrub_sqlite(app.sessions)


@pytest.mark.model
def test_with_a_key_the_words_are_nowhere_in_clear_and_everything_works(
    make_app: Callable[..., App], keys: Callable[..., None]
) -> None:
    keys("A")
    app = make_app(real_model=True)
    seed(app)
    conv = Conversation(app)
    conv.start(MARCH)
    conv.say("8", MARCH)
    conv.say(f"Support is fast, {EARLY}", MARCH)
    conv.start(SEPTEMBER)
    conv.say("8", SEPTEMBER)
    replies = conv.say("Support is slow", SEPTEMBER)
    (followup,) = [m.text for m in replies if m.kind == "followup"]
    assert "In March 2026 you said “Support is fast" in followup, "earlier words are read back, decrypted"
    conv.say(f"{FOLLOW}: they cut the support team", SEPTEMBER)
    with transaction(app.sessions) as s:
        ann = s.scalars(select(Person).where(Person.key == "ann")).one()
        owner = s.get(Owner, ann.owner_id)
        assert owner is not None
        add_promise(s, person=ann, owner=owner, text=f"{PROMISE}: a named contact by April", now=SEPTEMBER)
        digest = build_digest(s, owner=owner.key, since=SEPTEMBER - dt.timedelta(days=7),
                              until=SEPTEMBER + dt.timedelta(days=1), encode=app.embedder.encode)  # fmt: skip
        markdown = render_digest(digest, "markdown").body
        row = OutboxMessage(key="digest:1", kind="digest", owner_id=owner.id, channel="file", status="sent",
                            payload={"owner": owner.key}, not_before=SEPTEMBER, created_at=SEPTEMBER)  # fmt: skip
        s.add(row)
        s.flush()
        body = {"files": {"d.md": markdown}}
        s.add(OutboxContent(outbox_id=row.id, channel="file", body=body, prepared_at=SEPTEMBER))
    assert "Support is slow" in markdown, "the digest reads the words (and filters reasons in SQL) as before"

    assert words_in_clear(app, EARLY, FOLLOW, PROMISE, "Support is slow", "Support is fast") == []
    assert crypto.MARK in table_text(app)
    with transaction(app.sessions) as s:
        stored_vectors = select(rekey.raw_column(Answer.__table__.c.embedding)).where(Answer.kind == "text")
        raw = s.scalars(stored_vectors).all()
        assert raw
        assert all(bytes(r).startswith(crypto.MARK.encode()) for r in raw)
        vectors = s.scalars(select(Answer.embedding).where(Answer.kind == "text")).all()
        assert all(v is not None and len(v) == 384 * 4 for v in vectors)
        data = export_person(s, "ann", now=SEPTEMBER)
        stored = s.scalars(select(OutboxContent.body)).one()
    texts = [a["text"] for a in data["answers"] if a["text"]]
    assert any(EARLY in t for t in texts)
    assert any("Support is slow" == t for t in texts)
    assert FOLLOW in data["followups"][0]["answer_text"]
    assert "Support is fast" in data["followups"][0]["question"]
    assert PROMISE in data["promises"][0]["text"]
    assert "Support is slow" in stored["files"]["d.md"]

    report = erasure.forget(app.sessions, "ann", actor="cli:dpo", now=SEPTEMBER)
    assert report.counts["answers"] == 4
    assert report.counts["stored_digests"] == 1
    with transaction(app.sessions) as s:
        with pytest.raises(NotFound):
            export_person(s, "ann", now=SEPTEMBER)
        assert "Support is slow" not in s.scalars(select(OutboxContent.body)).one()["files"]["d.md"]


def test_rotation_from_a_to_b_then_without_a_reads_everything(
    make_app: Callable[..., App], keys: Callable[..., None], tmp_path: Path
) -> None:
    keys("A")
    app = make_app()
    plain_world(app, tmp_path / "digests")
    before = all_exports(app)
    assert words_in_clear(app, ANN_MARK, BOB_MARK) == []

    keys("B", "A")
    counted = rekey.status(app.sessions)
    assert counted.total("older") > 0
    assert counted.total("current") == 0
    assert counted.total("plain") == 0
    assert all_exports(app) == before, "a new key first in the list still reads the old values"

    # Interrupted after its first batch, then run again: it finishes the rest, changing each value once.
    class Stop(Exception):
        pass

    def stop(name: str, changed: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        rekey.rotate(app.sessions, batch=1, progress=stop)
    resumed = rekey.rotate(app.sessions, batch=2)
    assert resumed.total("current") <= 1, "the interrupted run kept its first batch"
    assert resumed.total("changed") + resumed.total("current") == counted.total("older")
    again = rekey.rotate(app.sessions)
    assert again.total("changed") == 0
    assert again.total("current") == counted.total("older")

    keys("B")
    after = rekey.status(app.sessions)
    assert after.total("current") == counted.total("older")
    assert after.total("older") == after.total("unreadable") == 0
    assert all_exports(app) == before
    assert words_in_clear(app, ANN_MARK, BOB_MARK) == []
    make_app()  # starts: the keys read what is stored

    keys("A")  # only the removed key: refused, in one line
    with pytest.raises(EncryptedValueUnreadable) as refused:
        make_app()
    assert "\n" not in str(refused.value)
    assert KEY_A not in str(refused.value)


def test_turning_it_on_over_a_plain_database(
    make_app: Callable[..., App], keys: Callable[..., None], tmp_path: Path
) -> None:
    keys()
    app = make_app()
    plain_world(app, tmp_path / "digests")
    before = all_exports(app)
    assert words_in_clear(app, ANN_MARK, BOB_MARK) == [ANN_MARK, BOB_MARK], "stored as before without a key"

    keys("A")
    app = make_app()
    seed(app, "id,name,email,timezone,owner,programs\ncy,Cy,cy@example.com,UTC,lead,customers\n")
    conv = Conversation(app, person="cy")
    conv.start(T0 + dt.timedelta(days=40))
    conv.say("7", T0 + dt.timedelta(days=40))
    conv.say(f"{FOLLOW} after encryption was turned on", T0 + dt.timedelta(days=40))
    mixed = rekey.status(app.sessions)
    assert mixed.total("plain") > 0
    assert mixed.total("current") > 0
    exports = all_exports(app)
    assert {k: exports[k] for k in before} == before, "plain rows still read as they are"
    assert any(FOLLOW in (a["text"] or "") for a in exports["cy"]["answers"])  # type: ignore[union-attr]
    assert words_in_clear(app, FOLLOW) == []

    report = rekey.rotate(app.sessions)
    assert report.total("changed") == mixed.total("plain")
    assert rekey.status(app.sessions).total("plain") == 0
    assert all_exports(app) == exports
    assert words_in_clear(app, ANN_MARK, BOB_MARK, FOLLOW) == [], "rotation encrypts the old plain values too"


def test_encryption_on_without_a_key_is_refused_in_one_line(
    make_app: Callable[..., App], keys: Callable[..., None], config
) -> None:
    keys()
    required = config.model_copy(update={"privacy": config.privacy.model_copy(update={"encryption": "on"})})
    with pytest.raises(EncryptionKeyMissing) as refused:
        make_app(config_override=required)
    assert str(refused.value).startswith("privacy.encryption is on but RAPPORT_ENCRYPTION_KEYS is not set")
    keys("A")
    make_app(config_override=required)


def test_encrypted_words_without_any_key_are_refused(make_app: Callable[..., App], keys: Callable[..., None]) -> None:
    keys("A")
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start(T0)
    conv.say("8", T0)
    conv.say("fine", T0)
    keys()
    with pytest.raises(EncryptedValueUnreadable, match="encrypted but RAPPORT_ENCRYPTION_KEYS is not set"):
        make_app()
    with pytest.raises(EncryptedValueUnreadable):
        with transaction(app.sessions) as s:
            s.scalars(select(Answer.text).where(Answer.kind == "text")).all()
