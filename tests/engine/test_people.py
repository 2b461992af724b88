"""The people rules channels reach through the engine (``bot.engine.people``), the owner commands
for forms (``bot.engine.owners.OwnerCommands``) and the shared channel marks
(``bot.engine.marks``), on a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.engine import flow
from bot.engine.marks import Marks
from bot.engine.owners import OwnerCommands, link_owner
from bot.engine.people import People
from bot.engine.ports import Inbound
from bot.invites import make_token
from memory import store
from memory.db import transaction
from memory.models import ChannelIdentity, Checkin, Person
from tests.helpers import T0, Conversation, seed

KEY = b"k" * 32
HOUR = dt.timedelta(hours=1)


def link(app, key: str, channel: str, external_id: str, workspace: str = "") -> None:
    with transaction(app.sessions) as s:
        person = store.find_person(s, key)
        store.link_identity(s, person=person, channel=channel, external_id=external_id, workspace=workspace, now=T0)


def identity(app, channel: str, external_id: str) -> ChannelIdentity | None:
    with transaction(app.sessions) as s:
        found = store.find_identity(s, channel=channel, external_id=external_id)
        if found is not None:
            s.expunge(found)
        return found


def person_id(app, key: str) -> int:
    with transaction(app.sessions) as s:
        found = store.find_person(s, key)
        assert found is not None
        return found.id


# Opting out ------------------------------------------------------------------------------------


def test_a_stop_outside_the_conversation_closes_the_checkin_in_its_flow_state_too(make_app) -> None:
    app = make_app()
    seed(app)
    link(app, "ann", "slack", "U0ANN")
    conv = Conversation(app, channel="slack")
    conv.start()
    people = People(service=app.service)

    assert people.opt_out("slack", "U0ANN", "", T0 + HOUR)
    with transaction(app.sessions) as s:
        checkin = s.get(Checkin, conv.checkin_id)
        person = s.get(Person, checkin.person_id)
        assert person.opted_out_at is not None
        assert checkin.status == "opted_out"
        # The state agrees with the status (it used to stay "invited").
        assert flow.State.from_dict(checkin.state).stage == "opted_out"

    # Resuming starts nothing stale: the closed check-in stays closed.
    start = Inbound(channel="slack", sender="U0ANN", kind="command", command="start", received_at=T0 + 2 * HOUR)
    replies = app.service.handle(start)
    assert replies[0].text == "Welcome back! You will receive check-ins again."
    with transaction(app.sessions) as s:
        assert store.open_checkins(s, person_id(app, "ann")) == []


def test_a_stop_from_a_stranger_changes_nothing(make_app) -> None:
    app = make_app()
    seed(app)
    assert not People(service=app.service).opt_out("slack", "U0NOBODY", "", T0)
    with transaction(app.sessions) as s:
        assert all(p.opted_out_at is None for p in s.query(Person))


# Linking ---------------------------------------------------------------------------------------


def test_linking_by_email_never_moves_an_existing_link(make_app) -> None:
    app = make_app()
    seed(app)
    people = People(service=app.service)
    assert ("ann", "ann@example.com") in people.to_link("slack")
    assert people.link_by_email("slack", "Ann@Example.com", "U0ANN", "", T0)
    assert ("ann", "ann@example.com") not in people.to_link("slack")
    assert not people.link_by_email("slack", "ann@example.com", "U0OTHER", "", T0)
    assert identity(app, "slack", "U0OTHER") is None
    assert not people.link_by_email("slack", "nobody@example.com", "U0X", "", T0)
    assert people.person_key("slack", "U0ANN") == "ann"
    assert people.link_by_key("slack", "bob", "U0BOB", "", T0)
    assert not people.link_by_key("slack", "nobody", "U0NO", "", T0)


def test_an_invite_links_once_and_only_for_its_person(make_app) -> None:
    app = make_app()
    seed(app)
    people = People(service=app.service)
    token = make_token(person_id=person_id(app, "ann"), key=KEY, now=T0, ttl=dt.timedelta(days=3))

    def use(chat: str, *, event: str, key: bytes = KEY, token: str = token, now: dt.datetime = T0) -> str:
        out = people.link_from_invite(
            channel="telegram", external_id=chat, token=token, key=key, event_key=event, now=now, markup="plain"
        )
        return "\n".join(m.text for m in out)

    assert "Ann" in use("100", event="1")
    found = identity(app, "telegram", "100")
    assert found is not None
    assert found.person_id == person_id(app, "ann")
    assert use("100", event="1") == "", "the same update delivered twice is processed once"
    assert "Ann" in use("100", event="2"), "the same person tapping their own link again is greeted"
    assert "already been used" in use("200", event="3")
    assert identity(app, "telegram", "200") is None
    assert "expired" in use("300", event="5", now=T0 + dt.timedelta(days=4))
    assert "expired" not in use("300", event="6", key=b"x" * 32)
    assert identity(app, "telegram", "300") is None


def test_an_invite_resumes_the_open_checkin(make_app) -> None:
    app = make_app()
    seed(app)
    Conversation(app, channel="telegram").start()
    token = make_token(person_id=person_id(app, "ann"), key=KEY, now=T0, ttl=dt.timedelta(days=3))
    out = People(service=app.service).link_from_invite(
        channel="telegram", external_id="100", token=token, key=KEY, event_key="1", now=T0, markup="plain"
    )
    assert len(out) >= 2
    assert out[-1].choices, "the pending rating question follows the greeting"


def test_the_dm_address_is_remembered(make_app) -> None:
    app = make_app()
    seed(app)
    link(app, "ann", "slack", "U0ANN")
    People(service=app.service).remember_address("slack", "U0ANN", "", "D0ANN")
    found = identity(app, "slack", "U0ANN")
    assert found is not None
    assert found.address == "D0ANN"


# Reachability ----------------------------------------------------------------------------------


def test_blocking_and_unblocking_each_count_once(make_app) -> None:
    app = make_app()
    seed(app)
    link(app, "ann", "telegram", "100")
    people = People(service=app.service)
    people.membership("telegram", "100", reachable=False, event_key="7", now=T0)
    found = identity(app, "telegram", "100")
    assert found is not None
    assert (found.reachable, found.unreachable_reason) == (False, "blocked")
    people.membership("telegram", "100", reachable=True, event_key="7", now=T0)
    assert identity(app, "telegram", "100").reachable is False, "the same update again is ignored"
    people.membership("telegram", "100", reachable=True, event_key="8", now=T0)
    assert identity(app, "telegram", "100").reachable is True
    people.mark_unreachable("telegram", "100", "", "deactivated", T0)
    assert identity(app, "telegram", "100").unreachable_reason == "deactivated"
    people.membership("telegram", "999", reachable=False, event_key="9", now=T0)  # a stranger: nothing


# The person's own history ----------------------------------------------------------------------


def test_history_is_the_persons_own_newest_first(make_app) -> None:
    app = make_app()
    seed(app)
    link(app, "ann", "slack", "U0ANN")
    conv = Conversation(app, channel="slack")
    conv.start()
    app.service.handle(Inbound(channel="slack", sender="U0ANN", kind="text", text="8 - fine", received_at=T0))
    people = People(service=app.service)
    history = people.history("slack", "U0ANN")
    assert history is not None
    assert history.opted_out is False
    (entry,) = history.entries
    assert [(i.rating, i.text) for i in entry.items] == [(8, "fine")]
    assert people.history("slack", "U0NOBODY") is None
    assert people.checkin_open(conv.checkin_id)
    assert not people.checkin_open(None)


# Owner commands --------------------------------------------------------------------------------


def test_a_promise_form_is_recorded_once_and_only_for_owners(make_app) -> None:
    app = make_app()
    seed(app)
    link(app, "ann", "slack", "U0ANN")
    with transaction(app.sessions) as s:
        owner = store.get_or_create_owner(s, "lead@example.com", T0)
        link_owner(s, owner=owner, channel="slack", external_id="U0LEAD", now=T0)
        store.require_person(s, "ann").owner_id = owner.id  # owners act only on their own people
    owners = OwnerCommands(sessions=app.sessions)
    assert owners.promise_prefill(channel="slack", sender="U0ANN", workspace="", author=None, now=T0) is None
    assert owners.promise_prefill(channel="slack", sender="U0LEAD", workspace="", author="U0ANN", now=T0) == "ann"
    assert owners.promise_prefill(channel="slack", sender="U0LEAD", workspace="", author="U0X", now=T0) == ""

    def record(sender: str, person: str = "ann", text: str = "A fix by Friday", key: str = "V1") -> str:
        outcome, _ = owners.record_promise(
            channel="slack", sender=sender, workspace="", person=person, text=text, due=None, key=key, now=T0
        )
        return outcome

    assert record("U0ANN") == "not_owner"
    assert record("U0LEAD", person="nobody") == "unknown_person"
    assert record("U0LEAD", text=" ") == "usage"
    assert record("U0LEAD") == "recorded"
    assert record("U0LEAD") == "duplicate"


# Channel marks ---------------------------------------------------------------------------------


def test_marks_are_claimed_once_until_they_expire(make_app) -> None:
    app = make_app()
    marks, other = Marks(app.sessions), Marks(app.sessions)
    assert marks.claim("k", now=T0, ttl=HOUR)
    assert not other.claim("k", now=T0 + dt.timedelta(minutes=59), ttl=HOUR)
    assert other.claim("k", now=T0 + HOUR, ttl=HOUR), "an expired mark is free again"
    marks.put("kb", "12", now=T0, ttl=HOUR)
    marks.put("kb", "13", now=T0, ttl=HOUR)
    assert other.get("kb", now=T0) == "13"
    marks.drop("kb", value="12")
    assert other.get("kb", now=T0) == "13", "dropping another value leaves it"
    assert other.pop("kb", now=T0) == "13"
    assert marks.pop("kb", now=T0) is None
    marks.put("old", "1", now=T0, ttl=HOUR)
    assert marks.get("old", now=T0 + 2 * HOUR) is None


@pytest.mark.parametrize("length", [299, 300, 5000])
def test_long_mark_keys_are_cut_to_the_column(make_app, length: int) -> None:
    app = make_app()
    marks = Marks(app.sessions)
    key = "x" * length
    assert marks.claim(key, now=T0, ttl=HOUR, value="v" * 1000)
    assert marks.get(key, now=T0) == "v" * 300
