"""What the CSV imports share (the report, the header check) and the checks of an answers file
that need no database."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from memory.errors import ImportProblem
from memory.text import clean_text

ANSWER_COLUMNS = ("person", "program", "question", "answered_at", "rating", "text")


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.created + self.updated + self.unchanged


def csv_reader(text: str, required: Iterable[str]) -> csv.DictReader[str]:
    """Rows of ``text`` by column name, or an :class:`ImportProblem` on line 1 naming the missing
    columns. People's words are cleaned as at every other door (no NUL or control characters, NFC)."""
    reader = csv.DictReader(io.StringIO(clean_text(text.lstrip("\ufeff"))))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportProblem(1, f"missing column(s): {', '.join(missing)}")
    reader.fieldnames = header
    return reader


@dataclass(frozen=True)
class AnswerRow:
    """One row of an answers file that passed every check of its own."""

    line: int
    person: str
    program: str
    question: str
    when: dt.datetime
    rating: int | None
    text: str | None


def parse_when(value: str) -> dt.datetime:
    value = value.strip()
    if not value:
        raise ValueError("answered_at is empty")
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def valid_answer_rows(
    text: str, questions: Mapping[str, Mapping[str, tuple[str, int, int]]], now: dt.datetime, report: ImportReport
) -> tuple[list[AnswerRow], int]:
    """The rows that pass every check of their own, and the number of rows read."""
    reader = csv_reader(text, ANSWER_COLUMNS)
    rows: list[tuple[int, dict[str, str]]] = [(reader.line_num, dict(r)) for r in reader]
    valid: list[AnswerRow] = []
    seen: dict[tuple[str, str, str, dt.datetime], int] = {}
    for line, row in rows:
        person_key, program_name, question = ((row.get(c) or "").strip() for c in ("person", "program", "question"))
        spec = questions.get(program_name, {}).get(question)
        if not person_key:
            report.problems.append(ImportProblem(line, "person is empty"))
            continue
        if program_name not in questions:
            report.problems.append(ImportProblem(line, f"unknown program {program_name!r}"))
            continue
        if spec is None:
            report.problems.append(ImportProblem(line, f"program {program_name!r} has no question {question!r}"))
            continue
        try:
            when = parse_when(row.get("answered_at") or "")
        except ValueError as exc:
            report.problems.append(ImportProblem(line, f"answered_at: {exc}"))
            continue
        if when > now:
            report.problems.append(ImportProblem(line, "answered_at is in the future"))
            continue
        kind, low, high = spec
        rating_raw = (row.get("rating") or "").strip()
        answer_text = (row.get("text") or "").strip() or None
        rating = None
        if rating_raw and kind == "text":
            report.problems.append(ImportProblem(line, f"question {question!r} takes text, not a rating"))
            continue
        if rating_raw:
            try:
                number = float(rating_raw)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                report.problems.append(ImportProblem(line, f"rating {rating_raw!r} is not a number"))
                continue
            if not number.is_integer():
                report.problems.append(ImportProblem(line, f"rating {rating_raw!r} is not a whole number"))
                continue
            rating = int(number)
            if not low <= rating <= high:
                report.problems.append(ImportProblem(line, f"rating {rating} is outside {low}–{high}"))
                continue
        if kind == "rating" and rating is None:
            report.problems.append(ImportProblem(line, f"question {question!r} needs a rating"))
            continue
        if kind == "text" and not answer_text:
            report.problems.append(ImportProblem(line, f"question {question!r} needs text"))
            continue
        same = (person_key, program_name, question, when)
        if same in seen:
            report.problems.append(ImportProblem(line, f"the same answer is already on line {seen[same]}"))
            continue
        seen[same] = line
        valid.append(AnswerRow(line, person_key, program_name, question, when, rating, answer_text))
    return valid, len(rows)
