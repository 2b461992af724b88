"""Reading a person's verdict on a promise: yes, partly or no, plus an optional comment.

``"partly, only by email"`` is ``("partly", "only by email")``. Anything that does not start
with a recognised verdict is ``None``, and the flow asks again.
"""

from __future__ import annotations

import re
from typing import Literal

Verdict = Literal["yes", "partly", "no"]

_VERDICTS: dict[str, Verdict] = {
    "yes": "yes", "yeah": "yes", "yep": "yes", "y": "yes", "it has": "yes", "it did": "yes", "done": "yes",
    "kept": "yes",
    "partly": "partly", "partially": "partly", "somewhat": "partly", "sort of": "partly", "kind of": "partly",
    "half": "partly", "in part": "partly",
    "no": "no", "nope": "no", "n": "no", "not yet": "no", "not really": "no", "never": "no", "it hasn't": "no",
    "it has not": "no", "it didn't": "no",
}  # fmt: skip
# Longest first, so "not yet" wins over "no" and "it has not" over "it has".
_PATTERN = re.compile(
    r"^\s*(?P<verdict>" + "|".join(re.escape(w) for w in sorted(_VERDICTS, key=len, reverse=True)) + r")(?![\w'])"
    r"[\s,.;:!?\-–—)]*(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)


def parse_verdict(text: str) -> tuple[Verdict, str | None] | None:
    """``(verdict, comment)`` with verdict in yes | partly | no, or None if unclear."""
    match = _PATTERN.match(text or "")
    if match is None:
        return None
    verdict = _VERDICTS[match.group("verdict").lower()]
    comment = " ".join(match.group("rest").split()) or None
    return verdict, comment


#: Button values for the verdicts (buttons carry integers).
VERDICT_VALUES: dict[int, Verdict] = {2: "yes", 1: "partly", 0: "no"}
