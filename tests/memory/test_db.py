"""Storage: migrations, UTC round-trips and the invariants the database itself enforces."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from sqlalchemy import exc, select

from memory import db
from memory.embeddings import EmbeddingModelUnavailable, SentenceTransformerEmbedder
from memory.models import Checkin, Owner
from tests.helpers import T0, seed


def test_migrations_reach_every_head(make_app) -> None:
    app = make_app()
    assert db.current_revisions(app.engine) == db.head_revisions(app.engine)
    db.migrate(app.engine)  # idempotent
    assert db.current_revisions(app.engine) == db.head_revisions(app.engine)


def test_times_round_trip_as_aware_utc(make_app) -> None:
    app = make_app()
    berlin = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with db.transaction(app.sessions) as s:
        s.add(Owner(key="o", created_at=berlin))
    with db.transaction(app.sessions) as s:
        owner = s.scalar(select(Owner).where(Owner.key == "o"))
        assert owner is not None
        assert owner.created_at == berlin
        assert owner.created_at.tzinfo is not None
        assert owner.created_at.utcoffset() == dt.timedelta(0)


def test_naive_datetimes_are_refused(make_app) -> None:
    app = make_app()
    with pytest.raises(exc.StatementError), db.transaction(app.sessions) as s:
        s.add(Owner(key="naive", created_at=dt.datetime(2026, 1, 1)))


def test_the_database_allows_one_open_checkin_per_person_and_program(make_app) -> None:
    app = make_app()
    seed(app)
    app.service.start(person_ref="ann", program="customers", now=T0, channel="terminal")
    with db.transaction(app.sessions) as s:
        first = s.scalar(select(Checkin))
        assert first is not None
        second = Checkin(person_id=first.person_id, program_id=first.program_id, status="invited", state={},
                         started_at=T0, updated_at=T0)  # fmt: skip
    with pytest.raises(exc.IntegrityError), db.transaction(app.sessions) as s:
        s.add(second)


def test_an_unknown_model_fails_fast_without_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # A hub lookup would retry for over a minute here; it must not even be tried.
    def no_network(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the embedder reached for the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(EmbeddingModelUnavailable):
        SentenceTransformerEmbedder(model="sentence-transformers/not-here").encode(["hello"])


def test_postgres_urls_get_the_psycopg_driver() -> None:
    assert db.normalise_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalise_url("sqlite:///x.db") == "sqlite:///x.db"
