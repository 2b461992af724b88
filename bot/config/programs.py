"""A program's settings: its questions, cadence, send window, privacy and channels."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.config.base import Strict
from bot.config.rules import canonical_zone


class Question(Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["rating", "text"]
    text: str = Field(min_length=1)
    min: int = 0
    max: int = 10
    # Optional labels for the scale's ends, shown with the rating buttons.
    low_label: str | None = None
    high_label: str | None = None

    @model_validator(mode="after")
    def _range(self) -> Question:
        if self.kind == "rating" and not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be lower than max ({self.max})")
        if self.kind == "rating" and self.max - self.min > 20:
            raise ValueError("a rating scale has at most 21 points")
        return self


class Cadence(Strict):
    # Either a period such as "6 months", "3 months", "2 weeks" (each person on their own anchor,
    # staggered across the period) or a cron expression for fixed waves ("0 9 1 3,9 *").
    every: str | None = Field(default=None, pattern=r"^\s*\d+\s+(day|week|month)s?\s*$")
    cron: str | None = None
    # Time zone (IANA) a cron expression is read in; send windows always use each person's own.
    timezone: str = "UTC"
    # How long a wave stays open for answers.
    open_for_days: int = Field(default=14, ge=1, le=365)
    # Reminders to people who have not finished, spread over the open window.
    reminders: int = Field(default=2, ge=0, le=10)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from scheduler.cadence import cron_trigger

            cron_trigger(value)  # raises ValueError with the reason
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return canonical_zone(value)

    @model_validator(mode="after")
    def _one_of(self) -> Cadence:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' or 'cron'")
        return self


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WORKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
ChannelName = Literal["telegram", "slack", "terminal", "web"]
DEFAULT_CHANNELS: tuple[ChannelName, ...] = ("slack", "telegram")


class SendWindow(Strict):
    # Local time of day in the person's own time zone, and the days of the week.
    start: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(default="17:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    days: list[Weekday] = Field(default_factory=lambda: list(WORKDAYS))
    # Dates (YYYY-MM-DD) on which nobody in the program is contacted.
    holidays: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _order(self) -> SendWindow:
        if self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be before end ({self.end})")
        if not self.days:
            raise ValueError("at least one day is needed")
        return self


class ProgramConfig(Strict):
    # Shown to people ("your customer check-in"); defaults to the program's name.
    title: str | None = None
    description: str = ""
    privacy: Literal["attributed", "anonymous"] = "attributed"
    # Anonymous programs show owners only groups of at least k people (scores), and comments and
    # themes only from groups of at least k_comments people who wrote one (never below k).
    k: int = Field(default=5, ge=2, le=1000)
    k_comments: int = Field(default=10, ge=2, le=1000)
    # Who sees an attributed program's answers, as people are told in the first message and in
    # "help": "Your <owner_role> sees your answers." (anonymous programs say who sees what instead).
    owner_role: str = Field(default="contact", min_length=1, max_length=60)
    questions: list[Question] = Field(min_length=1)
    cadence: Cadence
    window: SendWindow = Field(default_factory=SendWindow)
    # Channels to reach people on, in order of preference.
    channels: list[ChannelName] = Field(default_factory=lambda: list(DEFAULT_CHANNELS))

    @field_validator("questions")
    @classmethod
    def _unique_keys(cls, questions: list[Question]) -> list[Question]:
        keys = [q.key for q in questions]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"question keys must be unique; repeated: {', '.join(dupes)}")
        return questions

    @property
    def anonymous(self) -> bool:
        return self.privacy == "anonymous"

    def question(self, key: str) -> Question | None:
        return next((q for q in self.questions if q.key == key), None)
