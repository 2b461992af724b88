"""JSON from the network, parsed without letting its shape crash the handler.

``json.loads`` recurses once per nesting level: a few thousand ``[`` raise ``RecursionError``
(a 500 and a traceback), and a payload just under the limit would make every later walk over it
(hashing, logging, storing) recurse as deep. Real chat updates are a dozen levels deep at most,
so anything deeper than ``MAX_DEPTH`` is refused before parsing, as ``ValueError`` like any other
malformed body: webhook handlers already answer that with 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64

# Strings are skipped whole (a "[" inside one is not nesting); brackets are counted.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class TooDeep(ValueError):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"JSON nested deeper than {limit} levels")


def nesting_depth(text: str, *, stop_at: int = MAX_DEPTH) -> int:
    """The deepest bracket nesting in ``text`` (stops counting once past ``stop_at``)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_at:
                    break
        elif bracket in "]}":
            depth -= 1
    return deepest


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that raises ``ValueError`` (never ``RecursionError``) on hostile nesting."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    if nesting_depth(text, stop_at=max_depth) > max_depth:
        raise TooDeep(max_depth)
    try:
        return json.loads(text)
    except RecursionError:  # a belt for interpreters with a smaller stack than the check assumes
        raise TooDeep(max_depth) from None
