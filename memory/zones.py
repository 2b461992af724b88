"""Time zone names as people type them: ``utc``, ``UTC`` and ``Europe/london`` all mean one zone.

One rule for the config file and the roster import, so a zone accepted in one is accepted in the
other.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


@lru_cache(maxsize=1)
def _zones_by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()} | {"utc": "UTC", "z": "UTC"}


def canonical_zone(value: str) -> str:
    """An IANA time zone as the database spells it: ``utc`` and ``UTC`` are both UTC, and
    ``europe/london`` is Europe/London (file systems that ignore case would accept it anyway).

    Raises ``ValueError`` with a sentence an operator can act on for a name that is no zone.
    """
    name = _zones_by_folded_name().get(value.strip().casefold(), value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin, or UTC)") from None
    return name
