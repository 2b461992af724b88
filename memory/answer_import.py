"""Importing past answers from CSV (``rapport answers import``), at close to the embedder's own rate.

Columns ``person,program,question,answered_at,rating,text``. Rows of one person, program and
``answered_at`` form one completed check-in, so a rating and its reason stay together. Bad rows
are reported with their line numbers and skipped; re-importing the same file updates in place
and never duplicates, and an import interrupted midway can simply be run again.

How it stays fast (``benchmarks/throughput.py``):

* the texts of a window of rows (``window``, 16,384 by default: their vectors take 25 MB) are
  sorted by length and embedded in chunks of ``batch``, so the model pads as little as one
  length-sorted encode of the whole window would; file-order chunks of 512 real comments (three
  words to a page) would cost the model 1.4-1.7x the work;
* a check-in is written as soon as every text of it is embedded, in one transaction per chunk,
  while a worker thread embeds the next chunk (encoding releases the GIL);
* rows go in through bulk ``INSERT``s and ``UPDATE``s of the mapped tables (so the encrypted
  column types still apply), after a few set-based lookups per chunk: no query per row;
* texts already stored as they are (a re-run) are not embedded again.

A window's check-ins are written in the order their texts finish, not in file order; the answers
of one check-in always keep the file's order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from memory import store
from memory.db import transaction
from memory.embeddings import Embedder, encode_many, to_bytes
from memory.errors import ImportProblem
from memory.import_csv import AnswerRow, ImportReport, valid_answer_rows
from memory.models import Answer, Checkin, Enrollment, Person

#: Rows whose texts are length-sorted together (their vectors are held until written).
WINDOW = 16384
#: Values per ``IN (...)`` list: well under every database's limit on bound parameters.
_IN = 500

T = TypeVar("T")
Vector = Any  # a float32 row of the embedder's output
#: An imported check-in: person id, program id, when it was answered.
Key = tuple[int, int, dt.datetime]


@dataclass
class _Stored:
    """An imported check-in already in the database and its answers by question."""

    checkin: int
    answers: dict[str, _Answer] = field(default_factory=dict)


@dataclass
class _Answer:
    id: int | None  # None: inserted by this chunk
    rating: int | None
    text: str | None
    values: dict[str, Any] | None = None  # what this chunk writes


def _parts(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def import_answers(
    sessions: sessionmaker[Session],
    text: str,
    *,
    questions: Mapping[str, Mapping[str, tuple[str, int, int]]],
    embedder: Embedder,
    now: dt.datetime,
    batch: int = 512,
    window: int = WINDOW,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Past answers: ``person,program,question,answered_at,rating,text``.

    ``questions`` maps program -> question key -> (kind, min, max). ``batch`` texts are embedded
    at a time (and about as many rows written per transaction); ``progress(done, total)`` is
    called after each transaction with the rows handled so far.
    """
    report = ImportReport()
    rows, total = valid_answer_rows(text, questions, now, report)
    done = total - len(rows)
    importer = _Importer(sessions, questions, embedder, now, report, max(1, batch))
    # One worker embeds the next chunk while this thread writes the last one.
    with ThreadPoolExecutor(1, thread_name_prefix="import-encode") as pool:
        for part in _parts(rows, max(1, window)):
            for handled in importer.window(part, pool):
                done += handled
                if progress:
                    progress(done, total)
    report.problems.sort(key=lambda p: p.line)
    return report


@dataclass
class _Importer:
    sessions: sessionmaker[Session]
    questions: Mapping[str, Mapping[str, tuple[str, int, int]]]
    embedder: Embedder
    now: dt.datetime
    report: ImportReport
    batch: int

    def window(self, rows: Sequence[AnswerRow], pool: ThreadPoolExecutor) -> Iterator[int]:
        """Import ``rows``; yields the number of rows handled after each transaction."""
        with transaction(self.sessions) as s:
            people = _people(s, {r.person for r in rows})
            programs = {name: store.program_by_name(s, name).id for name in sorted({r.program for r in rows})}
            units: dict[Key, list[AnswerRow]] = {}
            unknown = 0
            for r in rows:
                person_id = people.get(r.person)
                if person_id is None:
                    self.report.problems.append(
                        ImportProblem(r.line, f"unknown person {r.person!r} (import people first)")
                    )
                    unknown += 1
                    continue
                units.setdefault((person_id, programs[r.program], r.when), []).append(r)
            stored = _stored(s, list(units))
        if unknown:
            yield unknown
        # Every text not already stored as it is, shortest first, in chunks of ``batch``.
        todo = sorted(
            {r.text for key, rs in units.items() for r in rs if r.text and not _same(stored.get(key), r)}, key=len
        )
        chunks = list(_parts(todo, self.batch))
        rank = {t: i // self.batch for i, t in enumerate(todo)}
        # A check-in is written once its last new text is embedded: ready[0] needs none (written
        # while the first chunk is embedded), ready[k + 1] waits for chunk k.
        ready: list[list[Key]] = [[] for _ in range(len(chunks) + 1)]
        for key, rs in units.items():
            ready[max((rank[r.text] + 1 for r in rs if r.text in rank), default=0)].append(key)
        vectors: dict[str, Vector] = {}
        pending: Future[dict[str, Vector]] | None = (
            pool.submit(encode_many, self.embedder, chunks[0]) if chunks else None
        )
        try:
            for k, keys in enumerate(ready):
                if k:
                    assert pending is not None
                    vectors.update(pending.result())
                    pending = pool.submit(encode_many, self.embedder, chunks[k]) if k < len(chunks) else None
                for part in _by_rows(keys, units, self.batch):
                    with transaction(self.sessions) as s:
                        self._write(s, {key: units[key] for key in part}, vectors)
                    yield sum(len(units[key]) for key in part)
        finally:
            if pending is not None:
                pending.cancel()

    def _write(self, s: Session, units: Mapping[Key, Sequence[AnswerRow]], vectors: dict[str, Vector]) -> None:
        """One transaction: enrolments, then new check-ins, then new and changed answers."""
        _enrol(s, {(person_id, program_id) for person_id, program_id, _ in units}, self.now)
        stored = _stored(s, list(units))
        new = [key for key in units if key not in stored]
        if new:
            ids = s.scalars(
                insert(Checkin).returning(Checkin.id, sort_by_parameter_order=True),
                [
                    {
                        "person_id": person_id,
                        "program_id": program_id,
                        "status": "completed",
                        "source": "import",
                        "state": {},
                        "started_at": when,
                        "updated_at": self.now,
                        "completed_at": when,
                    }
                    for person_id, program_id, when in new
                ],
            ).all()
            stored.update({key: _Stored(checkin) for key, checkin in zip(new, ids, strict=True)})
        # A text to write that was not embedded ahead: stored as it was when the window began,
        # changed since (by another import, say).
        missing = [
            r.text
            for key, rs in units.items()
            for r in rs
            if r.text and r.text not in vectors and not _same(stored[key], r)
        ]
        vectors.update(encode_many(self.embedder, missing))
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        model = self.embedder.model_id
        for key, rs in units.items():
            person_id, program_id, when = key
            here = stored[key]
            for r in rs:
                answer = here.answers.get(r.question)
                if answer is not None and answer.rating == r.rating and answer.text == r.text:
                    self.report.unchanged += 1
                    continue
                if answer is None:
                    values = {
                        "checkin_id": here.checkin,
                        "person_id": person_id,
                        "program_id": program_id,
                        "question": r.question,
                        "kind": self.questions[r.program][r.question][0],
                        "answered_at": when,
                        "skipped": False,
                        "embedding": None,
                        "embedding_model": None,
                    }
                    inserts.append(values)
                    answer = here.answers[r.question] = _Answer(None, None, None, values)
                    self.report.created += 1
                else:
                    if answer.values is None:
                        answer.values = {"id": answer.id}
                        updates.append(answer.values)
                    self.report.updated += 1
                answer.rating, answer.text = r.rating, r.text
                assert answer.values is not None
                answer.values.update(rating=r.rating, text=r.text)
                if r.text:
                    answer.values.update(embedding=to_bytes(vectors[r.text]), embedding_model=model)
                else:
                    # No words, no vector made from words that are gone.
                    answer.values.update(embedding=None, embedding_model=None)
        if inserts:
            s.execute(insert(Answer), inserts)
        for same_columns in _grouped(updates):
            s.execute(update(Answer), same_columns)


def _same(stored: _Stored | None, row: AnswerRow) -> bool:
    answer = stored.answers.get(row.question) if stored is not None else None
    return answer is not None and answer.rating == row.rating and answer.text == row.text


def _by_rows(keys: Sequence[Key], units: Mapping[Key, Sequence[AnswerRow]], size: int) -> Iterator[list[Key]]:
    """``keys`` in groups of about ``size`` rows (a check-in is never split)."""
    group: list[Key] = []
    rows = 0
    for key in keys:
        group.append(key)
        rows += len(units[key])
        if rows >= size:
            yield group
            group, rows = [], 0
    if group:
        yield group


def _grouped(updates: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Bulk updates by primary key need the same columns in every row of one statement."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for values in updates:
        groups.setdefault(tuple(sorted(values)), []).append(values)
    yield from groups.values()


def _people(s: Session, refs: Iterable[str]) -> dict[str, int]:
    """Person ids by roster id or, failing that, by e-mail address (as ``store.find_person``)."""
    refs = sorted(set(refs))
    found: dict[str, int] = {}
    for part in _parts(refs, _IN):
        found.update(
            (key, person_id) for key, person_id in s.execute(select(Person.key, Person.id).where(Person.key.in_(part)))
        )
    by_email = sorted({ref.lower() for ref in refs if ref not in found and "@" in ref})
    emails: dict[str, int] = {}
    for part in _parts(by_email, _IN):
        for email, person_id in s.execute(
            select(Person.email, Person.id).where(Person.email.in_(part)).order_by(Person.id.desc())
        ):
            if email is not None:
                emails[email] = person_id  # the lowest id last, as a scalar query would pick it
    found.update({ref: emails[ref.lower()] for ref in refs if ref not in found and ref.lower() in emails})
    return found


def _stored(s: Session, keys: Sequence[Key]) -> dict[Key, _Stored]:
    """The imported check-ins of ``keys`` already in the database, with their answers."""
    out: dict[Key, _Stored] = {}
    wanted = set(keys)
    for part in _parts(keys, _IN):
        query = (
            select(Checkin.id, Checkin.person_id, Checkin.program_id, Checkin.started_at)
            .where(
                Checkin.source == "import",
                Checkin.person_id.in_(sorted({k[0] for k in part})),
                Checkin.started_at.in_(sorted({k[2] for k in part})),
            )
            .order_by(Checkin.id.desc())
        )
        for checkin, person_id, program_id, when in s.execute(query):
            key = (person_id, program_id, when)
            if key in wanted:
                out[key] = _Stored(checkin)  # the lowest id last, as a scalar query would pick it
    by_id = {stored.checkin: stored for stored in out.values()}
    for ids in _parts(sorted(by_id), _IN):
        answers = select(Answer.checkin_id, Answer.question, Answer.id, Answer.rating, Answer.text).where(
            Answer.checkin_id.in_(ids)
        )
        for checkin, question, answer_id, rating, text in s.execute(answers):
            by_id[checkin].answers[question] = _Answer(answer_id, rating, text)
    return out


def _enrol(s: Session, pairs: set[tuple[int, int]], now: dt.datetime) -> None:
    """Every (person, program) enrolled and active, as ``store.enroll`` leaves it."""
    if not pairs:
        return
    ordered = sorted(pairs)
    seen: dict[tuple[int, int], tuple[int, bool]] = {}
    for part in _parts(ordered, _IN):
        query = select(Enrollment.person_id, Enrollment.program_id, Enrollment.id, Enrollment.active).where(
            Enrollment.person_id.in_(sorted({p for p, _ in part})),
            Enrollment.program_id.in_(sorted({g for _, g in part})),
        )
        for person_id, program_id, enrollment, active in s.execute(query):
            seen[(person_id, program_id)] = (enrollment, active)
    new = [
        {"person_id": p, "program_id": g, "enrolled_at": now, "active": True} for p, g in ordered if (p, g) not in seen
    ]
    if new:
        s.execute(insert(Enrollment), new)
    again = [{"id": enrollment, "active": True} for enrollment, active in seen.values() if not active]
    if again:
        s.execute(update(Enrollment), again)
