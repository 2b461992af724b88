"""Promises and owners: ``rapport promise add|list|edit|close|mark`` and ``rapport owners list|show|link``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from bot.cli._app import app, build_app, fail, parse_at, utcnow

promise_app = typer.Typer(help="Promises made to people, and whether they were kept.", no_args_is_help=True)
owners_app = typer.Typer(help="Relationship owners: who gets digests and records promises.", no_args_is_help=True)
app.add_typer(promise_app, name="promise")
app.add_typer(owners_app, name="owners")


@promise_app.command("add")
def promise_add(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    text: Annotated[str, typer.Argument(help='What was promised, e.g. "a dedicated contact".')],
    owner: Annotated[str | None, typer.Option(help="Owner key (defaults to the person's owner).")] = None,
    due: Annotated[str | None, typer.Option(help="Due date (YYYY-MM-DD); asked at the next check-in after it.")] = None,
    program: Annotated[str | None, typer.Option(help="Only ask about it in this program.")] = None,
    at: Annotated[str | None, typer.Option(help="When it was promised (ISO-8601); now by default.")] = None,
) -> None:
    """Record a promise; the person is asked about it at their next check-in once it is due."""
    from memory import promises, store
    from memory.db import transaction

    due_at = parse_at(due, "--due")
    now = parse_at(at, "--at") or utcnow()
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            who = store.require_person(s, person)
            owner_row = who.owner
            if owner is not None:
                owner_row = require_owner(s, owner)
            if program is not None and program not in application.config.programs:
                configured = ", ".join(application.config.programs)
                fail(f"--program: no program named {program!r}; configured: {configured}", 2)
            program_id = store.program_by_name(s, program).id if program else None
            try:
                promise = promises.add_promise(
                    s, person=who, owner=owner_row, text=text, now=now, due_at=due_at, program_id=program_id
                )
            except promises.EmptyPromise:
                fail("the promise text is empty", 2)
            except promises.DueBeforeMade as exc:
                fail(f"--due: {exc}", 2)
            typer.echo(
                f"promise {promise.id} to {who.key}"
                + (f" by {owner_row.key}" if owner_row else "")
                + (f", due {due_at.date().isoformat()}" if due_at else ", asked at the next check-in")
            )
    finally:
        application.close()


@promise_app.command("list")
def promise_list(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option(help="Only this owner's promises.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open promises past their due date.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Promises with their status, and per owner: kept, partly, broken, overdue and the kept rate."""
    from memory import promises
    from memory.db import transaction
    from memory.models import Person

    now = utcnow()
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            if owner is not None:
                require_owner(s, owner)
            rows = promises.list_promises(s, now=now, owner_key=owner, overdue_only=overdue)
            owners = promises.owner_keys(s)
            people = {p.id: p.key for p in s.query(Person).filter(Person.id.in_({r.person_id for r in rows}))}
            stats = promises.owner_stats(promises.list_promises(s, now=now, owner_key=owner), owners, now)
            items: list[dict[str, Any]] = [
                {"id": p.id, "person": people.get(p.person_id), "owner": owners.get(p.owner_id or 0),
                 "text": p.text, "made_at": p.made_at.isoformat(),
                 "due_at": p.due_at.isoformat() if p.due_at else None, "status": p.status,
                 "overdue": promises.is_overdue(p, now),
                 "outcomes": [{"verdict": o.verdict, "comment": o.comment, "at": o.recorded_at.isoformat()}
                              for o in p.outcomes]}
                for p in rows
            ]  # fmt: skip
    finally:
        application.close()
    summary = [
        {"owner": st.owner, "open": st.open, "kept": st.kept, "partly": st.partly, "broken": st.broken,
         "overdue": st.overdue, "kept_rate": None if st.kept_rate is None else round(st.kept_rate, 3)}
        for st in stats
    ]  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"promises": items, "owners": summary}, indent=2, ensure_ascii=False))
        return
    for item in items:
        due = f"due {item['due_at'][:10]}" if item["due_at"] else "no due date"
        flag = " OVERDUE" if item["overdue"] else ""
        typer.echo(f"#{item['id']} {item['person']} · {item['status']}{flag} · {due} · {_one_line(item['text'])}")
        for o in item["outcomes"]:
            comment = f": {_one_line(o['comment'])}" if o["comment"] else ""
            typer.echo(f"    {o['at'][:10]} {o['verdict']}{comment}")
    if not items:
        typer.echo("no promises" + (" overdue" if overdue else ""))
    typer.echo("")
    for st in summary:
        rate = "n/a" if st["kept_rate"] is None else f"{st['kept_rate']:.0%}"
        typer.echo(
            f"{st['owner'] or '(no owner)'}: kept {st['kept']}, partly {st['partly']}, broken {st['broken']}, "
            f"open {st['open']}, overdue {st['overdue']}, kept rate {rate}"
        )


def require_owner(s: Any, key: str) -> Any:
    """The owner with this key, or exit 2 naming it (as every command does for an unknown owner)."""
    from sqlalchemy import select

    from memory.models import Owner

    row = s.scalar(select(Owner).where(Owner.key == key))
    if row is None:
        fail(f"no owner {key!r}; owners come from the roster's owner column (`rapport owners list`)", 2)
    return row


def _open_promise(s: Any, promise_id: int) -> Any:
    from memory.models import Promise

    row = s.get(Promise, promise_id)
    if row is None:
        fail(f"no promise #{promise_id} (`rapport promise list` shows them)", 2)
    return row


@promise_app.command("edit")
def promise_edit(
    ctx: typer.Context,
    promise_id: Annotated[int, typer.Argument(metavar="ID", help="The promise's number (#12 in `promise list`).")],
    text: Annotated[str | None, typer.Option(help="The corrected words of the promise.")] = None,
    due: Annotated[str | None, typer.Option(help="The new due date (YYYY-MM-DD).")] = None,
) -> None:
    """Correct an open promise's words or due date."""
    from memory import promises
    from memory.db import transaction

    if text is None and due is None:
        fail("nothing to change: give --text, --due or both", 2)
    due_at = parse_at(due, "--due")
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            row = _open_promise(s, promise_id)
            try:
                promises.edit_promise(s, promise=row, text=text, due_at=due_at)
            except promises.EmptyPromise:
                fail("--text is empty", 2)
            except promises.DueBeforeMade as exc:
                fail(f"--due: {exc}", 2)
            except promises.PromiseNotOpen as exc:
                fail(f"{exc}; only open promises can be edited", 2)
            due_text = f", due {row.due_at.date().isoformat()}" if row.due_at else ""
            typer.echo(f"promise #{row.id}: “{_one_line(row.text)}”{due_text}")
    finally:
        application.close()


@promise_app.command("close")
def promise_close(
    ctx: typer.Context,
    promise_id: Annotated[int, typer.Argument(metavar="ID", help="The promise's number.")],
) -> None:
    """Close a promise that no longer applies: it is not asked about and not counted as kept or broken."""
    from memory import promises
    from memory.db import transaction

    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            row = _open_promise(s, promise_id)
            try:
                promises.close_promise(s, promise=row)
            except promises.PromiseNotOpen as exc:
                fail(f"{exc}; only open promises can be closed", 2)
    finally:
        application.close()
    typer.echo(f"promise #{promise_id} closed: it will not be asked about")


@promise_app.command("mark")
def promise_mark(
    ctx: typer.Context,
    promise_id: Annotated[int, typer.Argument(metavar="ID", help="The promise's number.")],
    outcome: Annotated[str, typer.Argument(metavar="OUTCOME", help="kept, partly or broken.")],
    comment: Annotated[str | None, typer.Option(help="What happened, in a few words.")] = None,
) -> None:
    """Record a promise's outcome yourself (the person is then not asked about it)."""
    from memory import promises
    from memory.db import transaction

    if outcome not in promises.STATUS_VERDICT:
        fail(f"OUTCOME must be kept, partly or broken, not {outcome!r}", 2)
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            row = _open_promise(s, promise_id)
            if row.status == "closed":
                fail(f"promise #{promise_id} is closed", 2)
            promises.mark_promise(s, promise=row, status=outcome, comment=comment, now=utcnow())
    finally:
        application.close()
    typer.echo(f"promise #{promise_id} marked {outcome}")


def _one_line(text: str) -> str:
    # People's words on a terminal: no control characters (escape sequences) and one line.
    return "".join(ch if ch.isprintable() else " " for ch in text)


@owners_app.command("link")
def owners_link(
    ctx: typer.Context,
    owner: Annotated[str, typer.Argument(help="The owner's key (as in the roster's owner column).")],
    channel: Annotated[str, typer.Option(help="slack or telegram.")],
    external_id: Annotated[str, typer.Option("--id", help="Slack user id (U123...) or Telegram chat id.")],
    workspace: Annotated[str, typer.Option(help="Slack team id (T123...), for Slack.")] = "",
) -> None:
    """Let an owner's chat account record promises ("promise @person ...") and receive digests."""
    from bot.engine.owners import link_owner
    from memory.db import transaction

    if channel not in ("slack", "telegram"):
        fail("--channel must be slack or telegram", 2)
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            row = require_owner(s, owner)
            link_owner(s, owner=row, channel=channel, external_id=external_id, workspace=workspace, now=utcnow())
        typer.echo(f"{owner} linked to {channel} {external_id}")
    finally:
        application.close()
