"""What operators look up: ``rapport people list|show`` and ``rapport owners list|show``.

Each command prints a table for people (fits 80 columns) or JSON with ``--json``. Names and
e-mails come from the roster: they are shown through rich's markup escaping, never as markup.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from bot.cli._app import build_app, fail, utcnow
from bot.cli.people import people_app
from bot.cli.promise import owners_app, require_owner


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A table for a terminal (80 columns when piped); every cell is text, never markup."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=title, title_justify="left", box=None, pad_edge=False, show_edge=False, show_header=any(columns)
    )
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    Console(highlight=False).print(table)


def _day(value: dt.datetime | dt.date | None) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def people_rows(
    s: Any, *, program: str | None = None, owner: str | None = None, person_id: int | None = None
) -> list[dict[str, Any]]:
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from memory.models import Enrollment, Owner, Person, Program

    query = select(Person).options(
        selectinload(Person.enrollments).selectinload(Enrollment.program), selectinload(Person.owner)
    )
    if person_id is not None:
        query = query.where(Person.id == person_id)
    if owner is not None:
        query = query.join(Owner, Person.owner_id == Owner.id).where(Owner.key == owner)
    if program is not None:
        query = query.where(
            Person.id.in_(
                select(Enrollment.person_id)
                .join(Program, Program.id == Enrollment.program_id)
                .where(Program.name == program, Enrollment.active.is_(True))
            )
        )
    return [
        {
            "id": p.key,
            "name": p.name,
            "email": p.email,
            "timezone": p.timezone,
            "owner": p.owner.key if p.owner else None,
            "programs": sorted(e.program.name for e in p.enrollments if e.active),
            "opted_out": p.opted_out_at is not None,
        }
        for p in s.scalars(query.order_by(Person.key))
    ]


@people_app.command("list")
def people_list(
    ctx: typer.Context,
    program: Annotated[str | None, typer.Option(help="Only people enrolled in this program.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner's people.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Everyone on the roster, with their owner and programs."""
    from memory.db import transaction

    application = build_app(ctx)
    try:
        if program is not None and program not in application.config.programs:
            configured = ", ".join(application.config.programs)
            fail(f"--program: no program named {program!r}; configured: {configured}", 2)
        with transaction(application.sessions) as s:
            if owner is not None:
                require_owner(s, owner)
            rows = people_rows(s, program=program, owner=owner)
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps({"people": rows}, indent=2, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no people yet: `rapport people import roster.csv` adds them")
        return
    print_table(
        f"{len(rows)} {'person' if len(rows) == 1 else 'people'}",
        ("id", "name", "owner", "programs"),
        [
            (r["id"], (r["name"] or "") + (" (opted out)" if r["opted_out"] else ""), r["owner"] or "",
             ", ".join(r["programs"]))
            for r in rows
        ],
    )  # fmt: skip


def person_detail(s: Any, ref: str, now: dt.datetime) -> dict[str, Any]:
    from sqlalchemy import func, select

    from memory import store
    from memory.models import Checkin, Program, Promise
    from memory.models_scheduler import Absence

    person = store.require_person(s, ref)
    (row,) = people_rows(s, person_id=person.id)
    # Anonymous programs: whether and when the person answered is never shown (docs/privacy.md).
    attributed = select(Program.id).where(Program.anonymous.is_(False))
    last = s.scalar(
        select(func.max(Checkin.completed_at)).where(Checkin.person_id == person.id, Checkin.program_id.in_(attributed))
    )
    away = s.scalars(
        select(Absence).where(Absence.person_id == person.id, Absence.ends_on >= now.date()).order_by(Absence.starts_on)
    )
    open_promises = s.scalar(
        select(func.count()).select_from(Promise).where(Promise.person_id == person.id, Promise.status == "open")
    )
    return {
        **row,
        "opted_out_at": person.opted_out_at.isoformat() if person.opted_out_at else None,
        "channels": [
            {"channel": i.channel, "reachable": i.reachable, "unreachable_reason": i.unreachable_reason}
            for i in store.identities_of(s, person.id)
        ],
        "open_checkins": [
            {"id": c.id, "program": c.program.name, "status": c.status}
            for c in store.open_checkins(s, person.id)
            if not c.program.anonymous
        ],
        "last_completed_at": last.isoformat() if last else None,
        "days_away": [{"id": a.id, "from": a.starts_on.isoformat(), "to": a.ends_on.isoformat()} for a in away],
        "open_promises": open_promises or 0,
    }


@people_app.command("show")
def people_show(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One person: owner, programs, channels, open check-ins, days away and open promises."""
    from memory.db import transaction

    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            data = person_detail(s, person, utcnow())
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    channels = ", ".join(
        c["channel"] + ("" if c["reachable"] else f" (unreachable: {c['unreachable_reason']})")
        for c in data["channels"]
    )
    print_table(
        None,
        ("", ""),
        [
            ("id", data["id"]),
            ("name", data["name"] or ""),
            ("e-mail", data["email"] or ""),
            ("time zone", data["timezone"]),
            ("owner", data["owner"] or "(none)"),
            ("programs", ", ".join(data["programs"]) or "(none)"),
            ("channels", channels or "(none linked)"),
            ("opted out", data["opted_out_at"][:10] if data["opted_out_at"] else "no"),
            ("open check-ins", ", ".join(f"{c['program']} ({c['status']})" for c in data["open_checkins"]) or "none"),
            ("last completed", (data["last_completed_at"] or "never")[:10]),
            ("days away", ", ".join(f"{a['from']} to {a['to']}" for a in data["days_away"]) or "none"),
            ("open promises", data["open_promises"]),
        ],
    )


def owner_rows(s: Any) -> list[dict[str, Any]]:
    from sqlalchemy import func, select

    from memory.models import Owner, Person, Promise
    from memory.models_promises import OwnerIdentity

    people = dict(s.execute(select(Person.owner_id, func.count()).group_by(Person.owner_id)).all())
    promises = dict(
        s.execute(
            select(Promise.owner_id, func.count()).where(Promise.status == "open").group_by(Promise.owner_id)
        ).all()
    )
    links: dict[int, list[str]] = {}
    for owner_id, channel in s.execute(select(OwnerIdentity.owner_id, OwnerIdentity.channel)):
        links.setdefault(owner_id, []).append(channel)
    return [
        {"key": o.key, "name": o.name, "email": o.email, "people": people.get(o.id, 0),
         "open_promises": promises.get(o.id, 0), "linked": sorted(links.get(o.id, []))}
        for o in s.scalars(select(Owner).order_by(Owner.key))
    ]  # fmt: skip


@owners_app.command("list")
def owners_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Every owner: how many people, open promises, and linked chat accounts."""
    from memory.db import transaction

    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            rows = owner_rows(s)
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps({"owners": rows}, indent=2, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no owners yet: they come from the roster's owner column")
        return
    print_table(
        f"{len(rows)} {'owner' if len(rows) == 1 else 'owners'}",
        ("owner", "people", "open promises", "digests to"),
        [(r["key"], r["people"], r["open_promises"], ", ".join(r["linked"]) or "e-mail or file") for r in rows],
    )


@owners_app.command("show")
def owners_show(
    ctx: typer.Context,
    owner: Annotated[str, typer.Argument(help="The owner's key.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One owner: their people and linked chat accounts."""
    from memory.db import transaction

    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            require_owner(s, owner)
            (row,) = [r for r in owner_rows(s) if r["key"] == owner]
            row["people_list"] = people_rows(s, owner=owner)
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps(row, indent=2, ensure_ascii=False))
        return
    typer.echo(f"{row['key']}: {row['people']} people, {row['open_promises']} open promises, "
               f"digests to {', '.join(row['linked']) or 'e-mail or file'}")  # fmt: skip
    if row["people_list"]:
        print_table(None, ("id", "name", "programs"),
                    [(p["id"], p["name"] or "", ", ".join(p["programs"])) for p in row["people_list"]])  # fmt: skip
