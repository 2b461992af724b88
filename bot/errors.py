"""Errors of the faces (config, channels); the root and memory's errors live in memory.errors."""

from __future__ import annotations

from memory.errors import (
    DatabaseError,
    DatabaseMissing,
    DatabaseUnavailable,
    DatabaseUrlInvalid,
    ImportProblem,
    NotEnrolled,
    NotFound,
    OptedOut,
    RapportError,
)

__all__ = [
    "ConfigError",
    "DatabaseError",
    "DatabaseMissing",
    "DatabaseUnavailable",
    "DatabaseUrlInvalid",
    "ImportProblem",
    "NotEnrolled",
    "NotFound",
    "OptedOut",
    "RapportError",
]


class ConfigError(RapportError):
    """The configuration is invalid. ``problems`` lists (yaml path, message) pairs, all of them."""

    def __init__(self, problems: list[tuple[str, str]], *, source: str = "config.yaml") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: {len(problems)} problem(s)")
