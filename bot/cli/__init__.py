"""``rapport``: the command line. Each module below registers its commands on one typer app."""

from __future__ import annotations

import sys

from bot.cli import (  # noqa: F401  (register commands)
    browse,
    compare,
    core,
    demo,
    invite,
    keys,
    model,
    owner,
    people,
    privacy,
    promise,
    run,
    slack,
    status,
    story,
    wave,
)
from bot.cli._app import app


def main() -> None:
    from memory.errors import RapportError

    try:
        app()
    except RapportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


__all__ = ["app", "main"]
