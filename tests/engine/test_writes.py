"""``bot.engine.writes``: on SQLite, writes that queue while another runs commit together; a
failing write of a group fails alone; PostgreSQL writes each on its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.engine.writes import Writes
from memory import store
from memory.db import make_engine, make_sessionmaker, migrate
from memory.models import ProcessedEvent
from tests.helpers import T0


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    migrate(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def sqlite_sessions(tmp_path) -> Iterator[sessionmaker[Session]]:
    """Grouping is SQLite's: these tests need it whatever RAPPORT_TEST_DATABASE_URL says."""
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    migrate(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def commits_of(sessions: sessionmaker[Session]) -> list[int]:
    counted: list[int] = []
    event.listen(sessions.kw["bind"], "commit", lambda _conn: counted.append(1))
    return counted


def keys(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as s:
        return sorted(s.scalars(select(ProcessedEvent.key)))


def claim(key: str, *, fail: bool = False, log: list[str] | None = None):
    def work(s: Session, after: list) -> str:
        store.claim_event(s, key, T0)
        if fail:
            raise ValueError(f"{key} failed")
        if log is not None:
            after.append(lambda: log.append(f"after {key}"))
        return key

    return work


def test_a_lone_write_commits_and_then_runs_what_comes_after(sessions) -> None:
    log: list[str] = []
    writes = Writes.for_sessions(sessions)
    assert writes.run(claim("a", log=log)) == "a"
    assert keys(sessions) == ["a"]
    assert log == ["after a"]


def test_a_failing_write_alone_raises_and_keeps_nothing(sessions) -> None:
    writes = Writes.for_sessions(sessions)
    with pytest.raises(ValueError, match="x failed"):
        writes.run(claim("x", fail=True))
    assert keys(sessions) == []


def queue_behind_a_running_write(writes: Writes, works: dict[str, object]) -> dict[str, object]:
    """Start a write that holds the writer's turn, queue ``works`` from threads behind it, then let
    it finish. Returns each work's result or error."""
    release, started = threading.Event(), threading.Event()

    def first(s: Session, after: list) -> str:
        store.claim_event(s, "first", T0)
        started.set()
        release.wait(10)
        return "first"

    results: dict[str, object] = {}

    def call(name: str, work) -> None:
        try:
            results[name] = writes.run(work)
        except Exception as exc:
            results[name] = exc

    threads = [threading.Thread(target=call, args=("first", first))]
    threads[0].start()
    assert started.wait(10)
    for name, work in works.items():
        threads.append(threading.Thread(target=call, args=(name, work)))
        threads[-1].start()
    deadline = time.monotonic() + 10
    while len(writes._queue) < len(works) and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for t in threads:
        t.join(10)
    return results


def test_on_sqlite_writes_that_queued_together_commit_together(sqlite_sessions) -> None:
    sessions = sqlite_sessions
    writes = Writes.for_sessions(sessions)
    assert writes.group
    commits = commits_of(sessions)
    log: list[str] = []
    results = queue_behind_a_running_write(writes, {k: claim(k, log=log) for k in "bcde"})
    assert results == {"first": "first", "b": "b", "c": "c", "d": "d", "e": "e"}
    assert keys(sessions) == ["b", "c", "d", "e", "first"]
    assert len(commits) == 2, "the first write, then the four that queued behind it in one transaction"
    assert sorted(log) == ["after b", "after c", "after d", "after e"]


def test_a_failing_write_of_a_group_fails_alone_and_the_others_commit(sqlite_sessions) -> None:
    sessions = sqlite_sessions
    writes = Writes.for_sessions(sessions)
    log: list[str] = []
    works = {"b": claim("b", log=log), "bad": claim("bad", fail=True, log=log), "d": claim("d", log=log)}
    results = queue_behind_a_running_write(writes, works)
    assert isinstance(results["bad"], ValueError)
    assert (results["b"], results["d"]) == ("b", "d")
    assert keys(sessions) == ["b", "d", "first"], "nothing of the failing write, the others once each"
    assert sorted(log) == ["after b", "after d"], "what comes after runs once, for committed writes only"


def test_the_same_event_twice_in_one_group_is_claimed_once(sqlite_sessions) -> None:
    sessions = sqlite_sessions
    writes = Writes.for_sessions(sessions)

    def claimed(key: str):
        return lambda s, after: store.claim_event(s, key, T0)

    results = queue_behind_a_running_write(writes, {"one": claimed("same"), "two": claimed("same")})
    assert sorted([results["one"], results["two"]]) == [False, True]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.key == "same")) == 1


def test_without_grouping_each_write_is_its_own_transaction(sessions) -> None:
    writes = Writes(sessions, group=False)  # PostgreSQL's way: in parallel, each on its own
    commits = commits_of(sessions)
    results = [writes.run(claim(k)) for k in "abc"]
    assert results == ["a", "b", "c"]
    assert len(commits) == 3
    with pytest.raises(ValueError, match="z failed"):
        writes.run(claim("z", fail=True))
    assert keys(sessions) == ["a", "b", "c"]
