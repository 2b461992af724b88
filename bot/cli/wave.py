"""``rapport wave start`` and ``rapport away``: start a round now, keep people's days off."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from bot.cli._app import app, build_app, fail, parse_at, utcnow

wave_app = typer.Typer(help="Waves: one round of a program.", no_args_is_help=True)
app.add_typer(wave_app, name="wave")


@wave_app.command("start")
def wave_start(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="The program.")],
    people: Annotated[
        str | None, typer.Option(help="Only these people (ids or e-mails, comma-separated); default everyone.")
    ] = None,
    at: Annotated[str | None, typer.Option(help="Open the wave at this moment (ISO-8601) instead of now.")] = None,
) -> None:
    """Open a wave now: an invitation for each person, sent by `rapport run` in their send window."""
    from bot.runner import schedules_from_config
    from memory import store
    from memory.db import transaction
    from scheduler.planner import Planner

    application = build_app(ctx)
    try:
        if program not in application.config.programs:
            fail(f"no program named {program!r}; configured: {', '.join(application.config.programs)}", 2)
        keys: list[str] | None = None
        if people is not None:
            refs = [r.strip() for r in people.split(",") if r.strip()]
            if not refs:
                fail("--people is empty", 2)
            with transaction(application.sessions) as s:
                found = {ref: store.find_person(s, ref) for ref in refs}
                unknown = [ref for ref, person in found.items() if person is None]
                if unknown:
                    fail(f"unknown people: {', '.join(unknown)}", 2)
                row = store.program_by_name(s, program)
                keys = []
                for ref, person in found.items():
                    assert person is not None
                    if not store.is_enrolled(s, person.id, row.id):
                        fail(f"{ref!r} is not enrolled in {program!r}", 2)
                    keys.append(person.key)
        planner = Planner(sessions=application.sessions, programs=schedules_from_config(application.config))
        wave, report = planner.start_wave(program=program, now=utcnow(), at=parse_at(at), people=keys)
    finally:
        application.close()
    typer.echo(
        f"wave {wave.key} opened for {program}: {report.invitations} invitation(s) queued, "
        f"{report.opted_out} opted out, {report.unreachable} unreachable, {report.no_window} without a send window"
    )
    typer.echo("`rapport run` sends them; `rapport status` shows progress")


@app.command()
def away(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    start: Annotated[str, typer.Argument(help="First day off (YYYY-MM-DD), in their own calendar.")],
    end: Annotated[str, typer.Argument(help="Last day off (YYYY-MM-DD), inclusive.")],
) -> None:
    """Record out-of-office dates: nothing is sent to the person on those days."""
    from memory import store
    from memory.db import transaction
    from memory.models_scheduler import Absence

    try:
        first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except ValueError:
        fail("dates are YYYY-MM-DD", 2)
    if last < first:
        fail("the last day is before the first", 2)
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            who = store.require_person(s, person)
            s.add(Absence(person_id=who.id, starts_on=first, ends_on=last, created_at=utcnow()))
    finally:
        application.close()
    typer.echo(f"{person}: away {first} to {last}; nothing is sent on those days")
