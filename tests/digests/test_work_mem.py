"""On PostgreSQL a digest pass raises ``work_mem`` for its own transaction alone (SET LOCAL), so
its sorts and hashes of every owner's check-ins stay in memory, and turns JIT off for it; the
digests are the same, the pool's connections keep the server's settings, and SQLite ignores
both. The option is validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from bot.config import DigestsConfig
from bot.digests import FORMATS, render_digest
from memory import db
from memory.digests import build_digest, build_digests
from tests.digests import digest_reference
from tests.digests.test_one_pass import OWNERS, SINCE, UNTIL, _world


def _work_mem(s) -> str | None:
    if s.get_bind().dialect.name != "postgresql":
        return None
    return str(s.scalar(text("SHOW work_mem")))


def _jit(s) -> str | None:
    return None if s.get_bind().dialect.name != "postgresql" else str(s.scalar(text("SHOW jit")))


def test_a_pass_with_more_work_mem_gives_the_same_digests_and_keeps_it_to_its_transaction(make_app) -> None:
    app = make_app()
    _world(app)
    with db.transaction(app.sessions) as s:
        server, jit = _work_mem(s), _jit(s)
    assert server != "64MB"  # the server's own (4MB by default), or None on SQLite
    with db.transaction(app.sessions) as s:
        raised = build_digests(s, since=SINCE, until=UNTIL, work_mem="64MB")
        inside, jit_inside = _work_mem(s), _jit(s)
        for owner in OWNERS:
            before = digest_reference.build_digest(s, owner=owner, since=SINCE, until=UNTIL)
            assert raised[owner] == before
            assert build_digest(s, owner=owner, since=SINCE, until=UNTIL, work_mem="64MB") == before
            for fmt in FORMATS:
                assert render_digest(raised[owner], fmt) == render_digest(before, fmt), (owner, fmt)
    assert inside == (None if server is None else "64MB")
    assert jit_inside == (None if server is None else "off")  # no compiling for a pass of probes
    # The next transaction, whichever pooled connection it gets, has the server's setting again.
    for _ in range(3):
        with db.transaction(app.sessions) as s:
            assert (_work_mem(s), _jit(s)) == (server, jit)
    with db.transaction(app.sessions) as s:
        build_digests(s, since=SINCE, until=UNTIL, work_mem=None)
        assert _work_mem(s) == server


@pytest.mark.parametrize("value", ["64MB", "512kB", "1GB", None])
def test_the_work_mem_option_takes_a_postgresql_size(value) -> None:
    assert DigestsConfig(work_mem=value).work_mem == value


@pytest.mark.parametrize("value", ["64", "64 MB", "64mb", "0MB", "-1MB", "64MB; DROP TABLE people", ""])
def test_the_work_mem_option_refuses_anything_else(value) -> None:
    with pytest.raises(ValidationError):
        DigestsConfig(work_mem=value)


def test_the_default_is_64mb() -> None:
    assert DigestsConfig().work_mem == "64MB"
