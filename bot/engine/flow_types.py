"""The words of the check-in state machine (:mod:`bot.engine.flow`): its stages, the state it
keeps (stored as JSON beside each check-in: ``to_dict`` / ``from_dict``), the events it reads and
the effects it asks the service to carry out. Plain frozen dataclasses, no behaviour beyond that.

Every name here is also reachable as ``flow.X``, which is how callers use them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

Stage = Literal["invited", "asking", "assessing", "followup", "reask", "confirm_stop", "completed", "opted_out",
                "expired"]  # fmt: skip
STAGES: tuple[Stage, ...] = get_args(Stage)
FINAL: frozenset[Stage] = frozenset({"completed", "opted_out", "expired"})


@dataclass(frozen=True, kw_only=True)
class Step:
    """One question in the script of a check-in."""

    key: str
    # "promise" steps (key ``promise:<id>``) ask about a due promise after the core questions.
    kind: Literal["rating", "text", "promise"]
    low: int = 0
    high: int = 10


@dataclass(frozen=True, kw_only=True)
class State:
    script: tuple[Step, ...]
    stage: Stage = "invited"
    index: int = 0
    followups_asked: int = 0
    max_followups: int = 1
    max_chars: int = 20_000
    answered: int = 0
    # Where "stop" was said, so "no" returns there.
    paused_stage: Stage | None = None

    @property
    def current(self) -> Step | None:
        return self.script[self.index] if 0 <= self.index < len(self.script) else None

    @property
    def is_final(self) -> bool:
        return self.stage in FINAL

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["script"] = [asdict(s) for s in self.script]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        data = dict(data)
        data["script"] = tuple(Step(**s) for s in data.get("script", ()))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


# Events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Begin:
    """Send the invitation and the first question."""


@dataclass(frozen=True)
class Resume:
    """Ask again whatever is pending (after a restart, or /start)."""


@dataclass(frozen=True)
class Reply:
    text: str


@dataclass(frozen=True)
class Choose:
    """A button press carrying a rating."""

    value: int


@dataclass(frozen=True)
class Command:
    name: str


@dataclass(frozen=True)
class Assessed:
    changed: bool


@dataclass(frozen=True)
class Expire: ...


Event = Begin | Resume | Reply | Choose | Command | Assessed | Expire


# Effects --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """A message from ``prompts/`` (name without ``.j2``) with its parameters."""

    template: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ask:
    key: str
    first: bool = False


@dataclass(frozen=True)
class SaveAnswer:
    key: str
    kind: Literal["rating", "text"]
    rating: int | None
    text: str | None


@dataclass(frozen=True)
class SkipAnswer:
    key: str


@dataclass(frozen=True)
class AssessChange:
    key: str


@dataclass(frozen=True)
class AskFollowUp:
    key: str


@dataclass(frozen=True)
class SaveFollowUpAnswer:
    # Also a reply that gives no reason, not final (the reply to the re-ask replaces it), so it is
    # kept if the person goes quiet there.
    text: str
    final: bool = True


@dataclass(frozen=True)
class SkipFollowUp: ...


@dataclass(frozen=True)
class SaveOutcome:
    """The person's verdict on a promise (``key`` is the step's ``promise:<id>``)."""

    key: str
    verdict: Literal["yes", "partly", "no"]
    comment: str | None


@dataclass(frozen=True)
class Complete: ...


@dataclass(frozen=True)
class OptOut: ...


@dataclass(frozen=True)
class MarkExpired: ...


Effect = (
    Say
    | Ask
    | SaveAnswer
    | SkipAnswer
    | AssessChange
    | AskFollowUp
    | SaveFollowUpAnswer
    | SkipFollowUp
    | SaveOutcome
    | Complete
    | OptOut
    | MarkExpired
)


@dataclass(frozen=True)
class Transition:
    state: State
    effects: tuple[Effect, ...]
