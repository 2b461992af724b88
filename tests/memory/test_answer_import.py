"""The answers import in length-sorted chunks: the same rows go in, whatever the order of work."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import func, select, update

from bot.cli.people import import_people_text
from memory import crypto, rekey
from memory.db import transaction
from memory.embeddings import from_bytes
from memory.importing import import_answers
from memory.models import Answer, Checkin, Enrollment, Person
from tests.fakes.embedder import HashingEmbedder

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
ROSTER = """id,name,email,timezone,owner,programs
ann,Ann,ann@example.com,UTC,lead@example.com,customers
bob,Bob,bob@example.com,UTC,lead@example.com,customers
"""
HEADER = "person,program,question,answered_at,rating,text\n"


class CountingEmbedder(HashingEmbedder):
    """Records every text it embeds; fails on the call numbered ``fail_on`` (1 is the first)."""

    def __init__(self, fail_on: int | None = None) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.fail_on = fail_on

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if self.fail_on is not None and self.calls + 1 == self.fail_on:
            self.calls += 1
            raise RuntimeError("the model went away")
        self.texts += texts
        return super().encode(texts)


def _run(app, text: str, embedder=None, **kwargs):
    questions = {
        name: {q.key: (q.kind, q.min, q.max) for q in program.questions}
        for name, program in app.config.programs.items()
    }
    return import_answers(app.sessions, text, questions=questions, embedder=embedder or app.embedder, now=NOW, **kwargs)


def _history(app) -> list[tuple[str, str, list[tuple[str, int | None, str | None]]]]:
    """Every imported check-in as (person, started_at, [(question, rating, text)]) in time order."""
    with transaction(app.sessions) as s:
        out = []
        for checkin in s.scalars(select(Checkin).order_by(Checkin.person_id, Checkin.started_at)):
            assert checkin.source == "import"
            assert checkin.status == "completed"
            answers = [(a.question, a.rating, a.text) for a in checkin.answers]
            out.append((checkin.person.key, checkin.started_at.isoformat(), answers))
        return out


def _rows(n: int) -> str:
    """``n`` check-ins of a rating and a reason each, reasons of very different lengths."""
    lines = []
    for i in range(n):
        when = (dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=i)).isoformat()
        who = "ann" if i % 2 else "bob"
        lines.append(f"{who},customers,recommend,{when},{i % 11},")
        lines.append(f"{who},customers,reason,{when},,{'very ' * ((i * 7) % 13)}good support {i}")
    return HEADER + "\n".join(lines) + "\n"


def test_length_sorted_chunks_keep_each_checkins_answers_in_file_order(make_app) -> None:
    app = make_app()
    import_people_text(app, ROSTER, NOW)
    seen: list[tuple[int, int]] = []
    report = _run(app, _rows(40), batch=3, window=25, progress=lambda done, total: seen.append((done, total)))
    assert (report.created, report.updated, report.unchanged, report.problems) == (80, 0, 0, [])
    history = _history(app)
    assert len(history) == 40
    for _, _, answers in history:
        assert [q for q, _, _ in answers] == ["recommend", "reason"], "a rating stays before its reason"
    assert seen[-1] == (80, 80)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen), "progress only moves forward"
    one_pass = make_app()
    import_people_text(one_pass, ROSTER, NOW)
    _run(one_pass, _rows(40), batch=10_000)
    assert _history(one_pass) == history


def test_each_text_is_embedded_once_and_stored_with_its_vector(make_app) -> None:
    app = make_app()
    import_people_text(app, ROSTER, NOW)
    embedder = CountingEmbedder()
    text = HEADER + (
        "ann,customers,reason,2025-01-01,,Same words.\n"
        "bob,customers,reason,2025-01-01,,Same words.\n"
        "ann,customers,reason,2025-02-01,,Other words.\n"
    )
    assert _run(app, text, embedder, batch=1).created == 3
    assert sorted(embedder.texts) == ["Other words.", "Same words."]
    with transaction(app.sessions) as s:
        for answer in s.scalars(select(Answer)):
            assert answer.embedding is not None
            assert answer.embedding_model == HashingEmbedder.model_id
            assert np.allclose(from_bytes(answer.embedding), HashingEmbedder().encode([answer.text or ""])[0])


def test_an_import_interrupted_midway_can_be_run_again_without_duplicates(make_app) -> None:
    app = make_app()
    import_people_text(app, ROSTER, NOW)
    text = _rows(30)
    with pytest.raises(RuntimeError, match="the model went away"):
        _run(app, text, CountingEmbedder(fail_on=3), batch=4)
    with transaction(app.sessions) as s:
        written = s.scalar(select(func.count()).select_from(Answer))
        reasons = s.scalar(select(func.count()).select_from(Answer).where(Answer.text.is_not(None)))
    assert 0 < written < 60, "the chunks before the fault were committed"
    again = CountingEmbedder()
    report = _run(app, text, again, batch=4)
    assert (report.created, report.updated, report.unchanged, report.problems) == (60 - written, 0, written, [])
    assert len(again.texts) == 30 - reasons, "what went in before is not embedded again"
    with transaction(app.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Checkin)) == 30
        assert s.scalar(select(func.count()).select_from(Answer)) == 60
    assert all([q for q, _, _ in answers] == ["recommend", "reason"] for *_, answers in _history(app))


def test_a_changed_text_is_updated_and_embedded_again_and_the_rest_is_left_alone(make_app) -> None:
    app = make_app()
    import_people_text(app, ROSTER, NOW)
    first = HEADER + "ann,customers,recommend,2025-01-01,8,\nann,customers,reason,2025-01-01,,Fast support.\n"
    _run(app, first)
    embedder = CountingEmbedder()
    changed = first.replace("Fast support.", "Slow support.").replace(",8,", ",3,")
    report = _run(app, changed + "ann,customers,reason,2025-02-01,,New words.\n", embedder)
    assert (report.created, report.updated, report.unchanged) == (1, 2, 0)
    assert sorted(embedder.texts) == ["New words.", "Slow support."]
    assert _history(app)[0][2] == [("recommend", 3, None), ("reason", None, "Slow support.")]
    with transaction(app.sessions) as s:
        answer = s.scalars(select(Answer).where(Answer.question == "reason").order_by(Answer.id)).first()
        assert answer is not None
        assert answer.embedding is not None
        assert np.allclose(from_bytes(answer.embedding), HashingEmbedder().encode(["Slow support."])[0])


def test_an_answer_whose_words_are_gone_keeps_no_vector_made_from_them(make_app) -> None:
    app = make_app()
    import_people_text(app, ROSTER, NOW)
    _run(app, HEADER + "ann,customers,recommend,2025-01-01,8,pretty good\n")
    report = _run(app, HEADER + "ann,customers,recommend,2025-01-01,8,\n")
    assert report.updated == 1
    with transaction(app.sessions) as s:
        answer = s.scalars(select(Answer).where(Answer.question == "recommend")).one()
        assert (answer.rating, answer.text, answer.embedding, answer.embedding_model) == (8, None, None, None)


def test_people_by_email_unknown_people_and_a_lapsed_enrolment(make_app) -> None:
    app = make_app()
    import_people_text(app, ROSTER, NOW)
    with transaction(app.sessions) as s:
        bob = s.scalars(select(Person).where(Person.key == "bob")).one()
        s.execute(update(Enrollment).where(Enrollment.person_id == bob.id).values(active=False))
    text = HEADER + (
        "ANN@example.com,customers,reason,2025-01-01,,By e-mail.\n"
        "zed,customers,reason,2025-01-01,,Nobody.\n"
        "bob,customers,recommend,2025-01-01,9,\n"
        "zed,customers,recommend,2025-01-01,9,\n"
    )
    report = _run(app, text, batch=1)
    assert report.created == 2
    assert [(p.line, p.message) for p in report.problems] == [
        (3, "unknown person 'zed' (import people first)"),
        (5, "unknown person 'zed' (import people first)"),
    ]
    assert [who for who, _, _ in _history(app)] == ["ann", "bob"]
    with transaction(app.sessions) as s:
        assert s.scalars(select(Enrollment.active).where(Enrollment.person_id == bob.id)).all() == [True]


def test_a_checkin_split_across_windows_is_one_checkin(make_app) -> None:
    app = make_app()
    import_people_text(app, ROSTER, NOW)
    text = HEADER + (
        "ann,customers,recommend,2025-01-01T10:00:00+02:00,7,\n"
        "bob,customers,recommend,2025-01-01,5,\n"
        "ann,customers,reason,2025-01-01T08:00:00Z,,The same check-in in UTC.\n"
    )
    assert _run(app, text, window=1).created == 3
    history = _history(app)
    assert history[0] == (
        "ann",
        "2025-01-01T08:00:00+00:00",
        [("recommend", 7, None), ("reason", None, "The same check-in in UTC.")],
    )


def test_with_a_key_imported_words_and_vectors_are_stored_encrypted(make_app, monkeypatch) -> None:
    from cryptography.fernet import Fernet

    monkeypatch.setenv(crypto.ENV, Fernet.generate_key().decode())
    crypto.load()
    try:
        app = make_app()
        import_people_text(app, ROSTER, NOW)
        _run(app, HEADER + "ann,customers,reason,2025-01-01,,Qvzimportmark5512 was slow.\n")
        with transaction(app.sessions) as s:
            raw_text = s.scalars(select(rekey.raw_column(Answer.__table__.c.text))).one()
            raw_vector = s.scalars(select(rekey.raw_column(Answer.__table__.c.embedding))).one()
            state = s.scalars(select(rekey.raw_column(Checkin.__table__.c.state))).one()
            assert s.scalars(select(Answer.text)).one() == "Qvzimportmark5512 was slow."
        assert raw_text.startswith(crypto.MARK)
        assert "Qvzimportmark5512" not in raw_text
        assert bytes(raw_vector).startswith(crypto.MARK.encode())
        assert "enc:fernet:" in str(state)
        again = _run(app, HEADER + "ann,customers,reason,2025-01-01,,Qvzimportmark5512 was slow.\n")
        assert again.unchanged == 1, "stored words are read back decrypted to tell an unchanged row"
    finally:
        monkeypatch.delenv(crypto.ENV)
        crypto.reset()
