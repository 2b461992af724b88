"""``rapport status``: delivery and answers per program and wave, readable in 80 columns."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli._app import app, build_app, fail, utcnow

if TYPE_CHECKING:
    import datetime as dt

    from scheduler.report import HeldBack, WaveStatus

# Counts shown as words under a wave's row when they are not zero, in this order.
DETAILS = (
    ("reminded", "reminded"),
    ("expired", "expired"),
    ("opted_out", "opted out"),
    ("unreachable", "unreachable"),
    ("failed", "failed"),
    ("skipped", "skipped (no send window)"),
    ("held_back", "held back by the contact limit"),
)


@app.command()
def status(
    ctx: typer.Context,
    program: Annotated[str | None, typer.Option(help="Only this program.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Delivery and answers per program and wave, with the response rate and when the next
    invitations go out."""
    from memory.db import transaction
    from scheduler.report import held_back, wave_status

    now = utcnow()
    application = build_app(ctx)
    try:
        if program is not None and program not in application.config.programs:
            fail(f"no program named {program!r}; configured: {', '.join(application.config.programs)}", 2)
        with transaction(application.sessions) as s:
            lines = wave_status(s, program, now=now)
            held = held_back(s, program)
        gap = application.config.scheduler.contact_gap_days
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps({
            "waves": [line.as_dict() for line in lines],
            "held_back": [{"person": h.person, "program": h.program, "wave": h.wave, "waiting": h.waiting,
                           "not_before": h.not_before.isoformat()} for h in held],
        }, indent=2))  # fmt: skip
        return
    if not lines:
        typer.echo("no waves yet: `rapport run` opens them as they fall due, or `rapport wave start PROGRAM`")
        return
    print_status(lines, held, gap, now)


def print_status(lines: list[WaveStatus], held: list[HeldBack], gap_days: int, now: dt.datetime) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from scheduler.report import describe_next_send

    console = Console(highlight=False)
    for program in dict.fromkeys(line.program for line in lines):
        table = Table(
            title=Text(program, style="bold"), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
            pad_edge=False, collapse_padding=True,
        )  # fmt: skip
        table.add_column("wave", no_wrap=True)
        for heading in ("invited", "sent", "waiting", "answered", "completed", "response rate"):
            table.add_column(heading, justify="right")
        notes: list[str] = []
        for line in (x for x in lines if x.program == program):
            rate = f"{line.response_rate:.0%}" if line.response_rate is not None else "-"
            table.add_row(
                Text(line.name), *(str(n) for n in (line.due, line.sent, line.pending, line.answered, line.completed)),
                rate,
            )  # fmt: skip
            details = [f"{getattr(line, name)} {words}" for name, words in DETAILS if getattr(line, name)]
            if line.next_send is not None and line.pending:
                details.append(f"next sends: {describe_next_send(line.next_send, line.next_send_zone, now)}")
            if details:
                notes.append(f"{line.name}: " + "; ".join(details))
        console.print(table)
        for note in notes:
            console.print(Text(f"  {note}"))
        console.print()
    if held:
        console.print(Text(f"Held back by the contact limit (at most one invitation per {gap_days} days):"))
        for h in held:
            when = f"waits until {h.not_before:%d %b %H:%M} UTC" if h.waiting else "not invited this time"
            console.print(Text(f"  {h.person}: {h.program}, {h.wave}, {when}"))
