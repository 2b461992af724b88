"""Reading a rating the way people type it: ``8``, ``8/10``, ``eight``, ``8 - pretty good``.

Whatever follows the number is kept as the person's comment, never thrown away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20,
}  # fmt: skip

# A leading number (possibly negative or decimal), an optional "/10" or "out of 10", then the rest.
_NUMBER = re.compile(
    r"^\s*(?P<num>[-+−]?\d+(?:[.,]\d+)?)\s*(?:(?:/|out\s+of|of)\s*(?P<den>\d+))?(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_WORD = re.compile(r"^\s*(?P<word>[a-z]+)\b(?:\s*(?:/|out\s+of)\s*(?P<den>\d+|[a-z]+))?(?P<rest>.*)$", re.I | re.S)
_SEPARATORS = " \t\r\n-–—:,;.!()[]"

Problem = Literal["empty", "out_of_range", "not_a_number", "not_whole"]


@dataclass(frozen=True)
class RatingParse:
    value: int | None
    comment: str | None = None
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _comment(rest: str) -> str | None:
    text = rest.strip().lstrip(_SEPARATORS).strip()
    return text or None


def parse_rating(text: str, *, low: int = 0, high: int = 10) -> RatingParse:
    raw = (text or "").strip()
    if not raw:
        return RatingParse(None, problem="empty")
    match = _NUMBER.match(raw)
    if match:
        num = match.group("num").replace("−", "-").replace(",", ".")
        rest = match.group("rest")
        # "8-9" or "7 8" are two numbers: ask again rather than guess.
        if re.match(r"^\s*[-–/]?\s*\d", rest) and not match.group("den"):
            return RatingParse(None, problem="not_a_number")
        if "." in num:
            value_f = float(num)
            if not value_f.is_integer():
                return RatingParse(None, comment=_comment(rest), problem="not_whole")
            value = int(value_f)
        else:
            value = int(num)
        if match.group("den") and int(match.group("den")) != high:
            return RatingParse(None, problem="out_of_range")
        if not low <= value <= high:
            return RatingParse(value, problem="out_of_range")
        return RatingParse(value, comment=_comment(rest))
    match = _WORD.match(raw)
    if match and match.group("word").lower() in WORDS:
        value = WORDS[match.group("word").lower()]
        if not low <= value <= high:
            return RatingParse(value, problem="out_of_range")
        return RatingParse(value, comment=_comment(match.group("rest")))
    return RatingParse(None, problem="not_a_number")
