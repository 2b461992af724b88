"""``rapport wave start|list|show|close|cancel`` and ``rapport away add|list|remove``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer

from bot.cli._app import app, build_app, fail, parse_at, parse_day, utcnow

wave_app = typer.Typer(help="Waves: one round of a program.", no_args_is_help=True)
away_app = typer.Typer(help="Days away: nothing is sent to a person on those days.", no_args_is_help=True)
app.add_typer(wave_app, name="wave")
app.add_typer(away_app, name="away")


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
    from scheduler.waves import human_name

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
        wave, report = planner.start_wave(program=program, now=utcnow(), at=parse_at(at, "--at"), people=keys)
    finally:
        application.close()
    typer.echo(
        f"wave {wave.id} ({human_name(wave.kind, wave.opens_at)}) opened for {program}: "
        f"{report.invitations} invitation(s) queued, "
        f"{report.opted_out} opted out, {report.unreachable} unreachable, {report.no_window} without a send window"
    )
    typer.echo("`rapport run` sends them; `rapport status` shows progress")


def _wave(s: Any, ref: str, program: str | None) -> Any:
    """A wave by its number (``rapport wave list``) or its key, or exit 2 naming it."""
    from sqlalchemy import select

    from memory.models import Program, Wave

    query = select(Wave).join(Program, Program.id == Wave.program_id)
    if program is not None:
        query = query.where(Program.name == program)
    found = list(s.scalars(query.where(Wave.id == int(ref)) if ref.isdigit() else query.where(Wave.key == ref)))
    if not found:
        fail(f"no wave {ref!r} (`rapport wave list` shows them)", 2)
    if len(found) > 1:
        fail(f"several programs have a wave {ref!r}; choose one with --program", 2)
    return found[0]


def _wave_dict(wave: Any, now: dt.datetime) -> dict[str, Any]:
    from scheduler.waves import human_name, state

    return {
        "id": wave.id, "program": wave.program.name, "name": human_name(wave.kind, wave.opens_at), "key": wave.key,
        "kind": wave.kind, "state": state(wave, now), "opens_at": wave.opens_at.isoformat(),
        "closes_at": wave.closes_at.isoformat() if wave.closes_at else None,
    }  # fmt: skip


@wave_app.command("list")
def wave_list(
    ctx: typer.Context,
    program: Annotated[str | None, typer.Option(help="Only this program.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every wave, newest first: its number, program, name and state (open, closed or cancelled)."""
    from sqlalchemy import select

    from bot.cli.browse import print_table
    from memory.db import transaction
    from memory.models import Program, Wave

    now = utcnow()
    application = build_app(ctx)
    try:
        if program is not None and program not in application.config.programs:
            fail(f"--program: no program named {program!r}; configured: {', '.join(application.config.programs)}", 2)
        with transaction(application.sessions) as s:
            query = select(Wave).join(Program, Program.id == Wave.program_id)
            if program is not None:
                query = query.where(Program.name == program)
            rows = [_wave_dict(w, now) for w in s.scalars(query.order_by(Wave.opens_at.desc(), Wave.id.desc()))]
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps({"waves": rows}, indent=2))
        return
    if not rows:
        typer.echo("no waves yet: `rapport run` opens them as they fall due, or `rapport wave start PROGRAM`")
        return
    print_table(
        None,
        ("wave", "program", "name", "state", "closes"),
        [(r["id"], r["program"], r["name"], r["state"], (r["closes_at"] or "")[:10]) for r in rows],
    )


@wave_app.command("show")
def wave_show(
    ctx: typer.Context,
    wave: Annotated[str, typer.Argument(help="The wave's number (from `wave list`) or key.")],
    program: Annotated[str | None, typer.Option(help="The program, if several have this wave key.")] = None,
) -> None:
    """One wave: when it opened and closes, and how far delivery and answers got."""
    from memory.db import transaction
    from scheduler.report import wave_status

    now = utcnow()
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            row = _wave(s, wave, program)
            data = _wave_dict(row, now)
            line = next(x for x in wave_status(s, row.program.name, now=now) if x.wave == row.key)
    finally:
        application.close()
    typer.echo(f"wave {data['id']}: {data['program']}, {data['name']} ({data['kind']}), {data['state']}")
    typer.echo(f"  opens {data['opens_at'][:16]}, closes {(data['closes_at'] or 'never')[:16]}")
    typer.echo(
        f"  invited {line.due}, sent {line.sent}, waiting {line.pending}, answered {line.answered}, "
        f"completed {line.completed}, expired {line.expired}"
    )


@wave_app.command("close")
def wave_close(
    ctx: typer.Context,
    wave: Annotated[str, typer.Argument(help="The wave's number (from `wave list`) or key.")],
    program: Annotated[str | None, typer.Option(help="The program, if several have this wave key.")] = None,
) -> None:
    """Invite nobody else: unsent invitations are dropped; open check-ins run to their end."""
    from memory.db import transaction
    from scheduler.waves import close_wave

    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            row = _wave(s, wave, program)
            ended = close_wave(s, row, utcnow())
    finally:
        application.close()
    typer.echo(f"wave {wave} closed: {ended.dropped} unsent invitation(s) dropped; open check-ins run to their end")


@wave_app.command("cancel")
def wave_cancel(
    ctx: typer.Context,
    wave: Annotated[str, typer.Argument(help="The wave's number (from `wave list`) or key.")],
    program: Annotated[str | None, typer.Option(help="The program, if several have this wave key.")] = None,
) -> None:
    """Stop a wave now: unsent invitations and reminders are dropped and open check-ins end (answers are kept)."""
    from memory.db import transaction
    from scheduler.waves import cancel_wave

    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            row = _wave(s, wave, program)
            ended = cancel_wave(s, row, utcnow(), expire=application.service.expire)
    finally:
        application.close()
    typer.echo(
        f"wave {wave} cancelled: {ended.dropped} unsent message(s) dropped, {ended.ended} open check-in(s) ended"
    )


@away_app.command("add")
def away_add(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    start: Annotated[str, typer.Argument(metavar="FIRST", help="First day off (YYYY-MM-DD), in their own calendar.")],
    end: Annotated[str, typer.Argument(metavar="LAST", help="Last day off (YYYY-MM-DD), inclusive.")],
) -> None:
    """Record days away: nothing is sent to the person on those days."""
    from memory import store
    from memory.db import transaction
    from memory.models_scheduler import Absence

    first, last = parse_day(start, "FIRST"), parse_day(end, "LAST")
    if last < first:
        fail(f"LAST ({last}) is before FIRST ({first})", 2)
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            who = store.require_person(s, person)
            row = Absence(person_id=who.id, starts_on=first, ends_on=last, created_at=utcnow())
            s.add(row)
            s.flush()
            number = row.id
    finally:
        application.close()
    typer.echo(f"{person}: away {first} to {last} (#{number}); nothing is sent on those days")


@away_app.command("list")
def away_list(
    ctx: typer.Context,
    person: Annotated[str | None, typer.Argument(help="Only this person (id or e-mail).")] = None,
    past: Annotated[bool, typer.Option("--past", help="Include days away that have ended.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Days away, soonest first (ended ones only with --past)."""
    from sqlalchemy import select

    from bot.cli.browse import print_table
    from memory import store
    from memory.db import transaction
    from memory.models import Person
    from memory.models_scheduler import Absence

    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            query = select(Absence, Person.key).join(Person, Person.id == Absence.person_id)
            if person is not None:
                query = query.where(Absence.person_id == store.require_person(s, person).id)
            if not past:
                query = query.where(Absence.ends_on >= utcnow().date())
            rows = [
                {"id": a.id, "person": key, "from": a.starts_on.isoformat(), "to": a.ends_on.isoformat()}
                for a, key in s.execute(query.order_by(Absence.starts_on, Absence.id))
            ]
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps({"away": rows}, indent=2, ensure_ascii=False))
    elif not rows:
        typer.echo("nobody is away" + ("" if past else " now or later"))
    else:
        print_table(None, ("#", "person", "from", "to"), [(r["id"], r["person"], r["from"], r["to"]) for r in rows])


@away_app.command("remove")
def away_remove(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(metavar="NUMBER", help="The number shown by `rapport away list`.")],
) -> None:
    """Remove days away recorded by mistake: the person can be contacted on those days again."""
    from memory.db import transaction
    from memory.models import Person
    from memory.models_scheduler import Absence

    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            row = s.get(Absence, number)
            if row is None:
                fail(f"no days away #{number} (`rapport away list` shows them)", 2)
            person = s.get(Person, row.person_id)
            said = f"{person.key if person else '?'}: away {row.starts_on} to {row.ends_on}"
            s.delete(row)
    finally:
        application.close()
    typer.echo(f"removed #{number} ({said})")
