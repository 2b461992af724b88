"""`rapport owner set-password | admin | login-link`, and the memory functions behind the pages."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from bot.dashboard import auth
from memory import audit, promises
from memory.db import transaction
from memory.models import Promise
from memory.models_web import OwnerAccount
from tests.cli.test_cli import cli
from tests.helpers import seed
from tests.web.world import NOW


def test_set_password_admin_and_a_login_link(db_url: str, make_app, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    seed(app)
    monkeypatch.setenv("RAPPORT_OWNER_PASSWORD", "short")
    assert cli(db_url, "owner", "set-password", "owner@example.com").exit_code == 2
    monkeypatch.setenv("RAPPORT_OWNER_PASSWORD", "a long enough password")
    assert cli(db_url, "owner", "set-password", "ghost@example.com").exit_code == 2
    done = cli(db_url, "owner", "set-password", "owner@example.com", "--admin")
    assert done.exit_code == 0, done.output
    assert "admin: yes" in done.output
    with transaction(app.sessions) as s:
        found = auth.check_password(s, owner_key="owner@example.com", password="a long enough password", now=NOW)
        assert found is not None
        assert found.is_admin
        assert auth.check_password(s, owner_key="owner@example.com", password="wrong password!", now=NOW) is None
        account = s.get(OwnerAccount, found.owner_id)
        assert account.password_hash.startswith("$argon2id$")
    assert cli(db_url, "owner", "admin", "owner@example.com", "--revoke").exit_code == 0
    link = cli(db_url, "owner", "login-link", "owner@example.com")
    assert link.exit_code == 0, link.output
    match = re.search(r"http://127\.0\.0\.1:8080/dashboard/login/link\?token=([\w-]+)", link.stdout)
    assert match
    with transaction(app.sessions) as s:
        now = dt.datetime.now(dt.UTC)
        viewer = auth.use_login_token(s, token=match.group(1), now=now)
        assert viewer is not None
        assert not viewer.is_admin
        assert auth.use_login_token(s, token=match.group(1), now=now) is None  # one time


def test_set_password_without_a_terminal_or_variable_fails_clearly(db_url: str, make_app, monkeypatch) -> None:
    seed(make_app())
    monkeypatch.delenv("RAPPORT_OWNER_PASSWORD", raising=False)
    result = cli(db_url, "owner", "set-password", "owner@example.com")
    assert result.exit_code == 2
    assert "RAPPORT_OWNER_PASSWORD" in result.output


def test_edit_and_close_a_promise(make_app) -> None:
    app = make_app()
    seed(app)
    from memory import store

    with transaction(app.sessions) as s:
        ann = store.require_person(s, "ann")
        p = promises.add_promise(s, person=ann, owner=None, text="a call", now=NOW)
        promises.edit_promise(s, promise=p, text="  a   call back ", due_at=NOW + dt.timedelta(days=3))
        assert (p.text, p.due_at) == ("a call back", NOW + dt.timedelta(days=3))
        promises.edit_promise(s, promise=p, clear_due=True)
        assert p.due_at is None
        with pytest.raises(promises.EmptyPromise):
            promises.edit_promise(s, promise=p, text="  ")
        with pytest.raises(promises.UnknownStatus):
            promises.set_status(s, promise=p, status="done", now=NOW)
        promises.set_status(s, promise=p, status="kept", now=NOW)
        assert promises.get_promise(s, p.id).status == "kept"
        assert promises.get_promise(s, 999) is None
        assert s.get(Promise, p.id).text == "a call back"


def test_audit_entries_and_unknown_actions(make_app) -> None:
    app = make_app()
    seed(app)
    with transaction(app.sessions) as s:
        audit.record(s, actor="owner@example.com", action="story.view", now=NOW, person_id=None, detail={"n": 1})
        audit.record(s, actor="cli", action="promise.edit", now=NOW + dt.timedelta(seconds=1))
        with pytest.raises(ValueError, match="unknown audit action"):
            audit.record(s, actor="x", action="peek", now=NOW)
        assert [e.action for e in audit.entries(s)] == ["promise.edit", "story.view"]
        assert [e.actor for e in audit.entries(s, actor="cli")] == ["cli"]
