"""What a message asks of a person's own data (``my data``, ``delete N``, ``correct N words``;
``pN`` for a comment on a promise): the reading, pure. The rules are in ``bot.engine.mydata``."""

from __future__ import annotations

import re
from dataclasses import dataclass

import prompts
from bot.engine import flow
from memory.models import Checkin

#: Whole messages that ask for one's own history (lower case, without "/" and end punctuation).
SHOW = frozenset({"mydata", "my data", "my-data", "my_data", "my answers", "show my data", "my history",
                  "what did i tell you", "what did i say", "what have i told you"})  # fmt: skip
#: Telegram commands that carry these requests (``/delete 3``), passed on as text.
COMMANDS = frozenset({"mydata", "delete", "correct"})

_ITEM = r"#?(?P<p>p)?(?P<item>\d{1,12})"
_DELETE = re.compile(rf"^(?:delete|remove)\s+{_ITEM}(?:\s+(?P<yes>yes|confirm))?[.!]?$", re.I)
_CORRECT = re.compile(rf"^(?:correct|edit)\s+{_ITEM}\s*[:,-]?\s+(?P<text>\S.*)$", re.I | re.S)


@dataclass(frozen=True)
class Show:
    pass


@dataclass(frozen=True)
class Delete:
    item: int
    confirmed: bool
    #: ``p12``: the comment on a promise (the outcome's id), not an answer.
    outcome: bool = False


@dataclass(frozen=True)
class Correct:
    item: int
    text: str
    outcome: bool = False


Request = Show | Delete | Correct


def parse(text: str, *, answering_text: bool) -> Request | None:
    """What a message asks of the person's own data, or None when it is not such a request."""
    raw = text.strip()
    slash = raw.startswith("/")
    body = raw.lstrip("/")
    if slash:  # "/delete@RapportBot 3" is "/delete 3"
        head, _, rest = body.partition(" ")
        body = head.split("@", 1)[0] + (" " + rest if rest else "")
    if " ".join(body.lower().split()).rstrip("?!.") in SHOW:
        return Show()
    if answering_text and not slash:
        return None
    if (match := _DELETE.match(body.strip())) is not None:
        return Delete(int(match.group("item")), confirmed=match.group("yes") is not None, outcome=bool(match["p"]))
    if (match := _CORRECT.match(body.strip())) is not None:
        return Correct(int(match.group("item")), match.group("text").strip(), outcome=bool(match["p"]))
    return None


def answering_text(checkin: Checkin | None) -> bool:
    """Whether the open check-in waits for words (a text question or "What changed?")."""
    if checkin is None:
        return False
    state = flow.State.from_dict(checkin.state)
    if state.stage in ("followup", "reask"):
        return True
    step = state.current
    return state.stage in ("asking", "invited") and step is not None and step.kind != "rating"


def command_prefix(markup: prompts.Markup) -> str:
    """How commands are written in this channel: Telegram's are "/delete"; Slack would take a
    leading "/" for one of its own slash commands."""
    return "/" if markup == "telegram_html" else ""
