"""What both CSV imports share: the report and the header check."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from memory.errors import ImportProblem
from memory.text import clean_text


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
