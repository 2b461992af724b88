"""The plain script a program's check-ins follow: questions, wording and limits.

Built once from the config at the composition root (``bot.app.scripts_from_config``); the engine
never sees the config file's shape. Field names match the config's questions, so a script reads
the same wherever a program's questions are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class Question:
    key: str
    kind: Literal["rating", "text"]
    text: str
    min: int = 0
    max: int = 10
    low_label: str | None = None
    high_label: str | None = None


@dataclass(frozen=True, kw_only=True)
class Script:
    """One program's questions, in order, and the title people see."""

    name: str
    title: str
    questions: tuple[Question, ...]
    # Who sees the answers, as people are told (``prompts/person/who_sees.j2``): the owner role of
    # an attributed program, or, in an anonymous one, the smallest group owners are shown.
    anonymous: bool = False
    k: int = 5
    owner_role: str = "contact"

    def question(self, key: str) -> Question | None:
        return next((q for q in self.questions if q.key == key), None)

    def rating_key(self, text_key: str) -> str | None:
        """The rating question a free-text question explains: the nearest rating before it."""
        keys = [q.key for q in self.questions]
        before = self.questions[: keys.index(text_key)] if text_key in keys else self.questions
        ratings = [q.key for q in before if q.kind == "rating"]
        return ratings[-1] if ratings else None


@dataclass(frozen=True, kw_only=True)
class Limits:
    """How far a conversation goes: follow-ups per check-in, answer length, quoted words."""

    max_followups: int = 1
    max_answer_chars: int = 20_000
    quote_chars: int = 120
