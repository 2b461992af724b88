"""Privacy commands: ``export``, ``forget``, ``audit``, ``retention run``, ``optout`` / ``optin``.

The rules live in ``memory.export``, ``memory.erasure``, ``memory.retention`` and ``memory.audit``;
these commands only parse, call and print. Every command that reads or changes a person's data
writes an audit entry naming the operator (``--by``, the OS user by default).
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.cli._app import app, build_app, fail, utcnow

retention_app = typer.Typer(help="Delete free text older than privacy.retention allows.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")

By = Annotated[str | None, typer.Option("--by", help="Who is doing this (for the audit log); the OS user by default.")]


def operator(by: str | None) -> str:
    """The audit actor for a command-line operator: ``cli:<name>``."""
    if by:
        return f"cli:{by}"
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid-{os.getuid()}"


@app.command()
def export(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write; standard output by default.")] = None,
    by: By = None,
) -> None:
    """Everything Rapport holds about a person, as one JSON document."""
    from memory import audit
    from memory.db import transaction
    from memory.export import export_person

    application = build_app(ctx)
    now = utcnow()
    try:
        with transaction(application.sessions) as s:
            data = export_person(s, person, now=now)
            audit.record(s, actor=operator(by), action="person.export", now=now, person_id=data["person"]["id"],
                         detail={"answers": len(data["answers"]), "promises": len(data["promises"])})  # fmt: skip
    finally:
        application.close()
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        # Created readable by the operator only: the file holds a person's words.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    typer.echo(f"wrote {out}")


@app.command()
def forget(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    owner_login: Annotated[
        bool, typer.Option("--owner-login", help="Also remove the web login of an owner with the same id or e-mail.")
    ] = False,
    by: By = None,
) -> None:
    """Erase a person and everything they said, for good. Leaves an erasure record without content."""
    from memory.erasure import forget as erase

    application = build_app(ctx)
    try:
        if not yes and not typer.confirm(f"Erase {person} and everything they said? This cannot be undone"):
            fail("nothing erased", 1)
        report = erase(
            application.sessions, person, actor=operator(by), now=utcnow(),
            digest_folder=Path(application.config.digests.directory), owner_login=owner_login,
        )  # fmt: skip
    finally:
        application.close()
    removed = ", ".join(f"{n} {table}" for table, n in report.counts.items() if n)
    typer.echo(f"erased: {removed or 'nothing'}")
    if report.digest_files:
        typer.echo(f"digest files rewritten: {len(report.digest_files)}")
    typer.echo(f"erasure reference: {report.reference}")
    if not report.wal_truncated:
        typer.echo(
            "warning: another process was reading the database, so its -wal file may keep the erased words "
            "until the next checkpoint (it is truncated once `rapport run` stops or checkpoints)",
            err=True,
        )


@app.command("audit")
def audit_log(
    ctx: typer.Context,
    person: Annotated[str | None, typer.Option("--person", help="Only entries about this person.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries, newest first.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Who looked at or changed people's data, what, and when (ids and verbs, never words)."""
    from memory import audit, store
    from memory.db import transaction

    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            person_id = store.require_person(s, person).id if person else None
            rows = [audit.as_dict(e) for e in audit.entries(s, person_id=person_id, limit=max(1, limit))]
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no audit entries")
    for r in rows:
        detail = " ".join(f"{k}={_plain(v)}" for k, v in sorted(r["detail"].items()))
        who = "".join(ch if ch.isprintable() else "\ufffd" for ch in r["actor"])
        typer.echo(f"{r['at']}  {who}  {r['action']}  person={r['person_id'] or '-'}  {detail}".rstrip())


def _plain(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")) if not isinstance(value, str) else value


@retention_app.command("run")
def retention_run(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")] = False,
    by: By = None,
) -> None:
    """Apply privacy.retention now (``rapport run`` also does it daily)."""
    from memory.retention import run_retention

    application = build_app(ctx)
    rule = application.config.privacy.retention
    try:
        if rule.free_text_months is None:
            fail("privacy.retention.free_text_months is not set: nothing is ever deleted by age", 2)
        report = run_retention(
            application.sessions, months=rule.free_text_months, keep_ratings=rule.keep_ratings,
            now=utcnow(), actor=operator(by), dry_run=dry_run,
        )  # fmt: skip
    finally:
        application.close()
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} free text older than {report.cutoff.date().isoformat()}: {report.answers} answer(s), "
               f"{report.followups} follow-up answer(s), {report.outcomes} outcome comment(s)")  # fmt: skip


@app.command()
def optout(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    by: By = None,
) -> None:
    """Stop every message to a person (as their own "stop" does), until they or an operator opt back in."""
    _consent(ctx, person, by, stop=True)


@app.command()
def optin(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    by: By = None,
) -> None:
    """Let Rapport write to a person again after an opt-out (recorded with who did it)."""
    _consent(ctx, person, by, stop=False)


def _consent(ctx: typer.Context, ref: str, by: str | None, *, stop: bool) -> None:
    from bot.engine import people
    from memory import audit, store
    from memory.db import transaction

    application = build_app(ctx)
    now = utcnow()
    try:
        with transaction(application.sessions) as s:
            who = store.require_person(s, ref)
            changed = who.opted_out_at is None if stop else who.opted_out_at is not None
            if stop:
                people.opt_out(s, who, now)
            else:
                people.opt_in(s, who)
            if changed:
                action = "person.optout" if stop else "person.optin"
                audit.record(s, actor=operator(by), action=action, now=now, person_id=who.id)
            key = who.key
    finally:
        application.close()
    if stop:
        typer.echo(f"{key}: opted out" if changed else f"{key} had already opted out")
    else:
        typer.echo(f"{key}: opted back in" if changed else f"{key} had not opted out")
