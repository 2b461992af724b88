"""``rapport status``: delivery and answers per program and wave."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from bot.cli._app import app, build_app, fail

COLUMNS = (
    ("due", "due"),
    ("sent", "sent"),
    ("delivered", "deliv"),
    ("pending", "pend"),
    ("answered", "answ"),
    ("completed", "done"),
    ("reminded", "remind"),
    ("expired", "expd"),
    ("opted_out", "optout"),
    ("unreachable", "unreach"),
    ("failed", "failed"),
    ("skipped", "skip"),
)


@app.command()
def status(
    ctx: typer.Context,
    program: Annotated[str | None, typer.Option(help="Only this program.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Delivery and answers per program and wave, with the response rate."""
    from memory.db import transaction
    from scheduler.report import wave_status

    application = build_app(ctx)
    try:
        if program is not None and program not in application.config.programs:
            fail(f"no program named {program!r}; configured: {', '.join(application.config.programs)}", 2)
        with transaction(application.sessions) as s:
            lines = wave_status(s, program)
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps({"waves": [line.as_dict() for line in lines]}, indent=2))
        return
    if not lines:
        typer.echo("no waves yet: `rapport run` opens them as they fall due, or `rapport wave start PROGRAM`")
        return
    header = f"{'program':<12} {'wave':<22} " + " ".join(f"{short:>7}" for _, short in COLUMNS) + "    rate"
    typer.echo(header)
    for line in lines:
        rate = f"{line.response_rate:.0%}" if line.response_rate is not None else "-"
        cells = " ".join(f"{getattr(line, name):>7}" for name, _ in COLUMNS)
        typer.echo(f"{line.program:<12} {line.wave:<22} {cells} {rate:>7}")
