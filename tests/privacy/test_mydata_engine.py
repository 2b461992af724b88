""" "My data" in the engine: asking, deleting and correcting one's own answers (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from bot.app import App
from bot.engine import mydata_requests
from bot.engine.mydata_requests import Correct, Delete, Show
from bot.engine.mydata_view import LIMITS, entries_of, render_summary
from bot.engine.ports import Inbound
from memory import audit, erasure
from memory.db import transaction
from memory.embeddings import from_bytes
from memory.models import Answer, FollowUp, Outcome, Person
from prompts.split import units
from tests.helpers import T0, Conversation, seed
from tests.history_builder import History, months
from tests.privacy.test_erasure import file_bytes, table_text
from tests.privacy.world import ANN_MARK, BOB_MARK, build_world

NOW = T0 + dt.timedelta(days=30)
#: Ann's latest reason and its follow-up reply (build_world): unique to that one answer.
LATE = f"{ANN_MARK} late: support never answered my tickets"
FOLLOW = f"{ANN_MARK} follow-up: they moved my account manager"


def say(app: App, text: str, person: str = "ann", now: dt.datetime = NOW, **kw: object) -> str:
    replies = app.service.handle(
        Inbound(channel="terminal", sender=person, kind="text", text=text, received_at=now, **kw)  # type: ignore[arg-type]
    )
    return "\n".join(m.text for m in replies)


def answer_id(app: App, person: str, contains: str) -> int:
    with transaction(app.sessions) as s:
        pid = s.scalar(select(Person.id).where(Person.key == person))
        return next(
            a.id for a in s.scalars(select(Answer).where(Answer.person_id == pid)) if contains in (a.text or "")
        )


# Reading the requests (pure) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answering", "expected"),
    [
        ("my data", False, Show()),
        ("  My Data? ", True, Show()),
        ("/mydata", True, Show()),
        ("/mydata@RapportBot", False, Show()),
        ("What did I tell you?", False, Show()),
        ("delete 12", False, Delete(12, confirmed=False)),
        ("Delete #12 yes", False, Delete(12, confirmed=True)),
        ("/delete@RapportBot 12 confirm", True, Delete(12, confirmed=True)),
        ("delete 12", True, None),  # while a question waits for words, that is an answer
        ("correct 12 the new words\nover two lines", False, Correct(12, "the new words\nover two lines")),
        ("/correct 7: 8 - better now", True, Correct(7, "8 - better now")),
        ("correct 12", False, None),
        ("delete everything", False, None),
        ("my data is safe with you", False, None),
        ("8", False, None),
    ],
)
def test_requests_are_read_as_commands_only_when_unambiguous(text: str, answering: bool, expected: object) -> None:
    assert mydata_requests.parse(text, answering_text=answering) == expected


# Seeing ------------------------------------------------------------------------------------------


def test_a_person_sees_their_own_words_with_numbers_and_nobody_elses(make_app: Callable[..., App]) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    conv.say("8 - pretty <b>good</b>")
    conv.say("Support answered *within* an hour.")
    bob = Conversation(app, person="bob")
    bob.start()
    bob.say("3 - bob's own rating")
    shown = say(app, "my data")
    rating, reason = answer_id(app, "ann", "pretty"), answer_id(app, "ann", "Support")
    assert f"#{rating} How likely are you to recommend us to a colleague?: 8 — pretty <b>good</b>" in shown
    assert f"#{reason} What is the main reason for your score?: Support answered *within* an hour." in shown
    assert "2 March 2026" in shown
    assert "bob's own" not in shown
    # Asked in the middle of a text question, "my data" is still the command and the question waits.
    assert "bob's own" in say(app, "my data", person="bob")
    assert "bob's own" in say(app, "/mydata", person="bob")
    with transaction(app.sessions) as s:
        assert len(s.scalars(select(Answer)).all()) == 3, "asking stored nothing"
    bob.say("Nobody called me back.")
    with transaction(app.sessions) as s:
        assert "Nobody called me back." in s.scalars(select(Answer.text)).all()


def test_anonymous_programs_are_the_persons_own_data_too(make_app: Callable[..., App]) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app, person="bob", program="employees")
    conv.start()
    conv.say("6 - the pulse")
    shown = say(app, "my data", person="bob")
    assert "6 — the pulse" in shown
    assert "anonymous" in shown
    assert "only you see this" in shown


def test_a_long_history_is_cut_into_messages_each_channel_accepts(make_app: Callable[..., App]) -> None:
    app = make_app()
    seed(app)
    with transaction(app.sessions) as s:
        h = History(s)
        ann = h.person_by_key("ann")
        for i in range(30):
            words = f"round {i:02d} <b>&amp;</b> " + "a long reason with many words " * 20 + "🙂" * 40
            h.checkin(ann, "customers", T0 - months(i), rating=i % 11, text=words)
    with transaction(app.sessions) as s:
        entries = entries_of(s, s.scalar(select(Person).where(Person.key == "ann")), app.service.scripts)
    for markup in ("telegram_html", "slack_mrkdwn", "plain"):
        parts = [m.text for m in render_summary(entries, markup, cmd="")]
        assert len(parts) > 3
        assert all(units(p) <= LIMITS[markup] for p in parts), markup
        joined = "\n".join(parts)
        for i in range(30):
            assert f"round {i:02d}" in joined, (markup, i)
    telegram = "\n".join(m.text for m in render_summary(entries, "telegram_html", cmd="/"))
    assert "<b>" not in telegram
    assert "&lt;b&gt;&amp;amp;&lt;/b&gt;" in telegram
    # The newest check-in comes first.
    assert telegram.index("round 00") < telegram.index("round 29")


# Deleting ----------------------------------------------------------------------------------------


@pytest.fixture
def world(make_app: Callable[..., App], tmp_path: Path) -> tuple[App, Path]:
    app = make_app()
    folder = tmp_path / "digests"
    build_world(app, folder)
    app.service.own.digest_folder = folder
    return app, folder


def test_deleting_one_answer_leaves_its_words_nowhere(world: tuple[App, Path]) -> None:
    app, folder = world
    target = answer_id(app, "ann", LATE)
    assert LATE in table_text(app)
    assert FOLLOW in table_text(app)
    asked = say(app, f"delete {target}")
    assert f"Delete #{target}" in asked
    assert f'"delete {target} yes"' in asked
    assert "What changed" in asked
    assert LATE in table_text(app), "nothing goes before the person confirms"

    done = say(app, f"delete {target} yes")
    assert f"#{target} is deleted" in done
    everything = table_text(app)
    for gone in (LATE, FOLLOW):
        assert gone not in everything
        for path in folder.iterdir():
            assert gone not in path.read_text(encoding="utf-8"), path.name
    if app.engine.dialect.name == "sqlite":
        raw = file_bytes(app)
        assert LATE.encode() not in raw
        assert FOLLOW.encode() not in raw
    # Ann's other answer, and Bob, are untouched; the digests keep their other lines.
    assert f"{ANN_MARK} early" in everything
    assert f"{BOB_MARK} late: support never answered my tickets" in everything
    for path in folder.iterdir():
        body = path.read_text(encoding="utf-8")
        assert BOB_MARK in body
        assert erasure.REDACTED in body
    with transaction(app.sessions) as s:
        assert s.get(Answer, target) is None
        assert not s.scalars(select(FollowUp).where(FollowUp.answer_id == target)).all()
        (entry,) = [e for e in audit.entries(s) if e.action == "answer.delete"]
        assert (entry.actor, entry.detail["answer"], entry.detail["via"]) == ("person", target, "chat")
        assert entry.person_id == s.scalar(select(Person.id).where(Person.key == "ann"))
        assert ANN_MARK not in json.dumps(entry.detail)
        assert "support" not in json.dumps(entry.detail)
    # Asked again (a second delivery, a second click): nothing more happens.
    assert "There is no answer" in say(app, f"delete {target} yes")


def test_nobody_deletes_or_corrects_someone_elses_answer(world: tuple[App, Path]) -> None:
    app, _ = world
    bobs = answer_id(app, "bob", "late:")
    for text in (f"delete {bobs} yes", f"correct {bobs} not mine"):
        assert "There is no answer" in say(app, text)
    with transaction(app.sessions) as s:
        assert s.get(Answer, bobs).text == f"{BOB_MARK} late: support never answered my tickets"  # type: ignore[union-attr]
        assert not [e for e in audit.entries(s) if e.action.startswith("answer.")]


def test_opted_out_people_still_see_and_delete_their_answers(world: tuple[App, Path]) -> None:
    app, _ = world
    with transaction(app.sessions) as s:
        s.scalar(select(Person).where(Person.key == "ann")).opted_out_at = T0  # type: ignore[union-attr]
    assert LATE in say(app, "my data")
    target = answer_id(app, "ann", LATE)
    assert "is deleted" in say(app, f"delete {target} yes")
    with transaction(app.sessions) as s:
        assert s.get(Answer, target) is None
        assert s.scalar(select(Person.opted_out_at).where(Person.key == "ann")) is not None


# Correcting --------------------------------------------------------------------------------------


@pytest.mark.model
def test_correcting_replaces_the_words_and_re_embeds_them(make_app: Callable[..., App], tmp_path: Path) -> None:
    app = make_app(real_model=True)
    folder = tmp_path / "digests"
    build_world(app, folder)
    app.service.own.digest_folder = folder
    target = answer_id(app, "ann", LATE)
    new = "Support now answers within a day; my tickets get closed."
    assert f"#{target} now reads" in say(app, f"correct {target} {new}")
    with transaction(app.sessions) as s:
        answer = s.get(Answer, target)
        assert answer is not None
        assert answer.text == new
        assert answer.edited_at == NOW
        assert answer.embedding_model == app.embedder.model_id
        expected = app.embedder.encode([new])[0]
        assert np.allclose(from_bytes(answer.embedding), expected, atol=1e-5)  # type: ignore[arg-type]
        # The follow-up asked about it stays: it is a reply of its own.
        assert s.scalars(select(FollowUp.answer_text).where(FollowUp.answer_id == target)).all()
        (entry,) = [e for e in audit.entries(s) if e.action == "answer.correct"]
        assert "Support" not in json.dumps(entry.detail)
    assert LATE not in table_text(app)
    assert all(LATE not in p.read_text(encoding="utf-8") for p in folder.iterdir())


def test_a_rating_is_corrected_with_a_number_from_its_scale(make_app: Callable[..., App]) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    conv.say("8 - fine")
    rating = answer_id(app, "ann", "fine")
    # The reason question waits for words, so the command needs its slash here.
    assert "I couldn't use that correction" in say(app, f"/correct {rating} eleven out of ten")
    assert "I couldn't use that correction" in say(app, f"/correct {rating} 14")
    assert "now reads" in say(app, f"/correct {rating} 5 - worse than I said")
    with transaction(app.sessions) as s:
        answer = s.get(Answer, rating)
        assert answer is not None
        assert (answer.rating, answer.text) == (5, "worse than I said")
    # The open check-in carries on where it was.
    assert "everything" in conv.texts(conv.say("Support was slow."))


# Comments on promises ----------------------------------------------------------------------------

#: Ann's comment on her promise (build_world): unique to that one outcome.
COMMENT = f"{ANN_MARK} outcome: only half of it"


def outcome_id(app: App, mark: str) -> int:
    with transaction(app.sessions) as s:
        return next(o.id for o in s.scalars(select(Outcome)) if mark in (o.comment or ""))


def test_comments_on_promises_are_read_as_their_own_numbers() -> None:
    assert mydata_requests.parse("delete p12", answering_text=False) == Delete(12, confirmed=False, outcome=True)
    assert mydata_requests.parse("/delete P12 yes", answering_text=True) == Delete(12, confirmed=True, outcome=True)
    assert mydata_requests.parse("correct #p7 new words", answering_text=False) == Correct(7, "new words", outcome=True)
    assert mydata_requests.parse("delete p12", answering_text=True) is None


def test_the_summary_shows_the_persons_verdicts_on_promises(world: tuple[App, Path]) -> None:
    app, _ = world
    target = outcome_id(app, ANN_MARK)
    shown = say(app, "my data")
    assert (f'#p{target} About "{ANN_MARK} promise: a named contact by April": you said partly kept — {COMMENT}'
            in shown)  # fmt: skip
    assert BOB_MARK not in shown
    with transaction(app.sessions) as s:
        ann = s.scalar(select(Person).where(Person.key == "ann"))
        s.get(Outcome, target).comment = "<b>half</b> *done* <!channel>"  # type: ignore[union-attr]
        s.flush()
        entries = entries_of(s, ann, app.service.scripts)  # type: ignore[arg-type]
    telegram = "\n".join(m.text for m in render_summary(entries, "telegram_html", cmd="/"))
    assert "&lt;b&gt;half&lt;/b&gt;" in telegram
    assert "<b>" not in telegram
    slack = "\n".join(m.text for m in render_summary(entries, "slack_mrkdwn", cmd=""))
    assert "&lt;!channel&gt;" in slack
    assert "<!channel>" not in slack


def test_deleting_a_comment_leaves_its_words_nowhere_and_keeps_the_verdict(world: tuple[App, Path]) -> None:
    app, folder = world
    target = outcome_id(app, ANN_MARK)
    assert COMMENT in table_text(app)
    asked = say(app, f"delete p{target}")
    assert f'"delete p{target} yes"' in asked
    assert COMMENT in table_text(app), "nothing goes before the person confirms"
    assert f"#p{target} is deleted" in say(app, f"delete p{target} yes")
    everything = table_text(app)
    assert COMMENT not in everything
    assert all(COMMENT not in p.read_text(encoding="utf-8") for p in folder.iterdir())
    if app.engine.dialect.name == "sqlite":
        assert COMMENT.encode() not in file_bytes(app)
    assert f"{BOB_MARK} outcome: only half of it" in everything
    assert LATE in everything, "her answers stay"
    with transaction(app.sessions) as s:
        outcome = s.get(Outcome, target)
        assert outcome is not None
        assert (outcome.verdict, outcome.comment, outcome.promise.status) == ("partly", None, "open")
        (entry,) = [e for e in audit.entries(s) if e.action == "outcome.delete"]
        assert (entry.actor, entry.detail["outcome"], entry.detail["via"]) == ("person", target, "chat")
        assert ANN_MARK not in json.dumps(entry.detail)
    assert "you said partly kept" in say(app, "my data")


def test_correcting_a_comment_replaces_its_words(world: tuple[App, Path]) -> None:
    app, folder = world
    target = outcome_id(app, ANN_MARK)
    assert f"#p{target} now reads" in say(app, f"correct p{target} they did call me in the end")
    assert "I couldn't use that correction" in say(app, f"correct p{target} " + "x" * 20_001)
    with transaction(app.sessions) as s:
        assert s.get(Outcome, target).comment == "they did call me in the end"  # type: ignore[union-attr]
        assert [e.action for e in audit.entries(s) if e.action.startswith("outcome.")] == ["outcome.correct"]
    assert COMMENT not in table_text(app)
    assert all(COMMENT not in p.read_text(encoding="utf-8") for p in folder.iterdir())
    assert "you said partly kept — they did call me in the end" in say(app, "my data")


def test_nobody_deletes_or_corrects_someone_elses_comment(world: tuple[App, Path]) -> None:
    app, _ = world
    bobs = outcome_id(app, BOB_MARK)
    unknown = say(app, "delete p999999 yes")
    for text in (f"delete p{bobs} yes", f"delete p{bobs}", f"correct p{bobs} not mine"):
        assert say(app, text) == unknown.replace("p999999", f"p{bobs}")
    with transaction(app.sessions) as s:
        assert s.get(Outcome, bobs).comment == f"{BOB_MARK} outcome: only half of it"  # type: ignore[union-attr]
        assert not [e for e in audit.entries(s) if e.action.startswith("outcome.")]
