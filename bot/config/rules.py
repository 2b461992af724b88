"""The parts of loading ``config.yaml`` that speak to an operator: time zones accepted in any
case, validation problems in Rapport's words, and relative paths read from the file's folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Config


def canonical_zone(value: str) -> str:
    """An IANA time zone as the database spells it (the rule lives in :mod:`memory.zones`)."""
    from memory.zones import canonical_zone as canonical

    return canonical(value)


# What a pattern-checked setting should look like, by its name, for the operator to read.
_FORMS = {
    "every": 'a period such as "6 months", "2 weeks" or "10 days"',
    "start": 'a time of day as HH:MM on a 24-hour clock, such as "09:00"',
    "end": 'a time of day as HH:MM on a 24-hour clock, such as "17:00"',
    "key": "lower-case letters, digits and _, starting with a letter (recommend, reason_2)",
}


def in_our_words(err: Any, loc: tuple[Any, ...]) -> str:
    """A validation problem in Rapport's words, not pydantic's ("String should match pattern ...")."""
    kind, value = err["type"], err.get("input")
    if kind == "string_pattern_mismatch":
        form = _FORMS.get(str(loc[-1]) if loc else "", "a different form")
        return f"{value!r} is not {form}"
    if kind == "missing":
        return "missing: this setting is required"
    if kind == "extra_forbidden":
        return "unknown setting (check its spelling and indentation)"
    return str(err["msg"]).removeprefix("Value error, ")


def relative_to(config: Config, folder: Path) -> Config:
    """Read the config's relative paths (a SQLite file, the digest folder) from ``folder``, the
    config file's own, so Rapport finds the same files wherever it is started from."""
    url = config.database.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and "${" not in url:
        rest = url.removeprefix(prefix)
        if rest and not rest.startswith(":memory:"):
            url = prefix + str(folder / rest)
    directory = config.digests.directory
    if not Path(directory).is_absolute():
        directory = str(folder / directory)
    return config.model_copy(
        update={
            "database": config.database.model_copy(update={"url": url}),
            "digests": config.digests.model_copy(update={"directory": directory}),
        }
    )
