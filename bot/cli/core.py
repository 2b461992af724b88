"""Core commands: init, check-config, chat, history (the demo is in ``bot.cli.demo``)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.cli._app import app, build_app, fail, load, parse_at, stdin_is_tty, utcnow


@app.command("check-config")
def check_config(ctx: typer.Context) -> None:
    """Validate the configuration and report every problem (exit code 2 if any)."""
    config = load(ctx)
    from bot.config import resolve_secret, secret_name

    typer.echo(f"configuration is valid: {len(config.programs)} program(s): {', '.join(config.programs)}")
    for channel, settings in (("telegram", config.channels.telegram), ("slack", config.channels.slack)):
        token_ref = getattr(settings, "token", None) or getattr(settings, "bot_token", None)
        if settings.enabled and resolve_secret(token_ref) is None:
            typer.echo(f"note: {channel} is off until {secret_name(token_ref)} is set in the environment")


STARTER_CONFIG = "starter-config.yaml"


def write_starter_config(path: Path) -> None:
    """A short, commented config.yaml that validates as it is (one customer program, file digests)."""
    from importlib.resources import files

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((files("bot") / "data" / STARTER_CONFIG).read_text(encoding="utf-8"), encoding="utf-8")


@app.command()
def init(
    ctx: typer.Context,
    write_config: Annotated[
        bool,
        typer.Option("--write-config", help="If the config file does not exist, write a commented starter one."),
    ] = False,
) -> None:
    """Create or upgrade the database (Alembic migrations) and register the programs.

    Outside a checkout there is no config.yaml yet: init offers to write a commented starter one
    (``--write-config`` writes it without asking).
    """
    from bot.cli._app import config_path
    from memory import db

    path = config_path(ctx)
    if not path.exists():
        asked = not write_config and stdin_is_tty()
        if write_config or (asked and typer.confirm(f"{path} does not exist. Write a commented starter config?", True)):
            write_starter_config(path)
            typer.echo(f"wrote {path}: one customer program, digests as files; edit it to taste")
        else:
            fail(f"{path} does not exist; `rapport init --write-config` writes a commented starter config there", 2)
    config = load(ctx)
    application = build_app(ctx, config, create=True)
    heads = ", ".join(sorted(db.current_revisions(application.engine)))
    typer.echo(f"database ready at revision {heads}; programs: {', '.join(config.programs)}")
    application.close()


def _default_program(application: Any, person_ref: str, program: str | None) -> str:
    from memory import store
    from memory.db import transaction
    from memory.models import Enrollment

    if program:
        if program not in application.config.programs:
            fail(f"no program named {program!r}; configured: {', '.join(application.config.programs)}", 2)
        return program
    with transaction(application.sessions) as s:
        person = store.require_person(s, person_ref)
        names = [e.program.name for e in s.query(Enrollment).filter_by(person_id=person.id, active=True)]
    names = [n for n in names if n in application.config.programs]
    if not names:
        fail(f"{person_ref!r} is not enrolled in any program; use --program or import them with programs")
    if len(names) > 1:
        fail(f"{person_ref!r} is in several programs ({', '.join(names)}); choose one with --program", 2)
    return names[0]


def _refuse_later_checkin(application: Any, person_ref: str, program: str, at: dt.datetime) -> None:
    """An open check-in that started after ``at`` is not resumed "before" it began: its answers
    would be quoted back as earlier ones."""
    from memory import store
    from memory.db import transaction

    with transaction(application.sessions) as s:
        person = store.require_person(s, person_ref)
        checkin = store.open_checkin(s, person.id, store.program_by_name(s, program).id)
        started = checkin.started_at if checkin is not None else None
    if started is not None and started.replace(tzinfo=started.tzinfo or dt.UTC) > at:
        fail(
            f"--at {at:%Y-%m-%d %H:%M} is before {person_ref}'s open {program} check-in began "
            f"({started:%Y-%m-%d %H:%M}); use a later --at to resume it",
            2,
        )


@app.command()
def chat(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    program: Annotated[str | None, typer.Option(help="Program (needed if the person is in several).")] = None,
    at: Annotated[
        str | None, typer.Option(help="Pretend it is this moment (ISO-8601), for demos and backfills.")
    ] = None,
) -> None:
    """Run a check-in in the terminal. Piped input gives one answer per line."""
    from bot.channels.terminal import TerminalChat

    fixed = parse_at(at, "--at")
    if fixed is not None and fixed > utcnow():
        fail(f"--at {at} is in the future; --at replays a past moment (demos, backfills)", 2)
    application = build_app(ctx)
    try:
        name = _default_program(application, person, program)
        if fixed is not None:
            _refuse_later_checkin(application, person, name, fixed)
        interactive = stdin_is_tty()
        chat_loop(TerminalChat(
            service=application.service, person=person, program=name,
            clock=(lambda: fixed) if fixed else utcnow, write=typer.echo,
            bot_prefix="rapport> " if interactive else "",
        ), loading=load_in_background(application.embedder) if interactive else None)  # fmt: skip
    finally:
        application.close()


def load_in_background(embedder: Any) -> threading.Thread | None:
    """Start loading the embedding model while the person reads the first question."""
    loader = getattr(embedder, "load", None)
    if not callable(loader):
        return None
    thread = threading.Thread(target=loader, name="rapport-model-load", daemon=True)
    thread.start()
    return thread


def while_loading(lines: Iterator[str], loading: threading.Thread | None, write: Any) -> Iterator[str]:
    """Each answer as typed, after a "…" while the model is still loading: the reply may take a
    few seconds, and should not seem to hang."""
    for line in lines:
        if loading is not None and loading.is_alive():
            write("…")
        yield line


def chat_loop(session: Any, scripted: list[str] | None = None, loading: threading.Thread | None = None) -> None:
    from bot.channels.terminal import TerminalChat

    assert isinstance(session, TerminalChat)
    if scripted is not None:

        def lines() -> Any:
            for line in scripted:
                typer.echo(f"you> {line}")
                yield line

        closed = session.run(lines())
    elif stdin_is_tty():

        def prompt() -> Any:
            while True:
                try:
                    yield input("you> ")
                except EOFError:
                    return

        closed = session.run(while_loading(prompt(), loading, lambda text: typer.echo(session.bot_prefix + text)))
    else:
        closed = session.run(iter(sys.stdin.readline, ""))
    if not closed:
        typer.echo("(the check-in is still open; run the same command to resume)", err=True)


def history_data(application: Any, person_ref: str) -> dict[str, Any]:
    from bot.cli.privacy import operator
    from memory import anonymity, audit, store
    from memory.db import transaction

    with transaction(application.sessions) as s:
        person = store.require_person(s, person_ref)
        audit.record(s, actor=operator(None), action="history.view", now=utcnow(), person_id=person.id)
        # Owner-facing: anonymous programs' check-ins never appear per person, and nothing here
        # says whether the person took part in one (docs/privacy.md).
        checkins = anonymity.visible_checkins(s, person_ids=[person.id])
        identities = store.identities_of(s, person.id)
        return {
            "person": {
                "id": person.key, "name": person.name, "email": person.email, "timezone": person.timezone,
                "owner": person.owner.key if person.owner else None,
                "opted_out_at": _iso(person.opted_out_at),
                "channels": [
                    {"channel": i.channel, "reachable": i.reachable, "unreachable_reason": i.unreachable_reason,
                     "unreachable_at": _iso(i.unreachable_at)}
                    for i in identities
                ],
            },
            "checkins": [
                {
                    "id": c.id, "program": c.program.name, "status": c.status, "source": c.source,
                    "channel": c.channel, "started_at": _iso(c.started_at), "completed_at": _iso(c.completed_at),
                    "answers": [
                        {"question": a.question, "kind": a.kind, "rating": a.rating, "text": a.text,
                         "skipped": a.skipped, "answered_at": _iso(a.answered_at), "edited_at": _iso(a.edited_at)}
                        for a in c.answers
                    ],
                    "followups": [
                        {"question": f.question, "score": f.score, "reasons": f.reasons,
                         "asked_at": _iso(f.asked_at), "answer": f.answer_text,
                         "answered_at": _iso(f.answered_at), "skipped": f.skipped}
                        for f in c.followups
                    ],
                }
                for c in checkins
            ],
        }  # fmt: skip


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


@app.command()
def history(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A person's check-ins in time order: ratings, answers and follow-ups."""
    application = build_app(ctx)
    try:
        data = history_data(application, person)
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.markup import escape as rich_escape

    from prompts import escape_terminal

    def escape(text: str) -> str:  # ESC, NUL or U+202E from a name or an answer shows, never acts
        return rich_escape(escape_terminal(text))

    # soft_wrap: piped output keeps each quote on one line (rich would hard-wrap it at 80 columns).
    console = Console(highlight=False, soft_wrap=True)
    p = data["person"]
    console.print(f"[bold]{escape(p['name'] or p['id'])}[/bold] ({escape(p['id'])}, {escape(p['timezone'])})")
    if p["opted_out_at"]:
        console.print(f"  opted out at {p['opted_out_at']}")
    for ident in p["channels"]:
        state = "reachable" if ident["reachable"] else f"UNREACHABLE ({ident['unreachable_reason']})"
        console.print(f"  {ident['channel']}: {state}")
    for c in data["checkins"]:
        console.print(f"\n[bold]{c['started_at'][:10]}[/bold] {c['program']} · {c['status']} · {c['source']}")
        for a in c["answers"]:
            parts = ["(skipped)"] if a["skipped"] else []
            if a["rating"] is not None:
                parts.append(str(a["rating"]))
            if a["text"]:
                parts.append(f"“{a['text']}”")
            console.print(f"  {escape(a['question'])}: {escape(' '.join(parts))}")
        for f in c["followups"]:
            console.print(f"  ↳ asked: {escape(f['question'])}")
            console.print(f"    why: {escape('; '.join(r['text'] for r in f['reasons']))} (score {f['score']:.2f})")
            answer = "(skipped)" if f["skipped"] else (f["answer"] or "(no answer yet)")
            console.print(f"    answer: {escape(answer)}")


def demo_history_command(database: str) -> str:
    """The history command for the demo's own database (``rapport demo`` prints it)."""
    import shlex

    return f"rapport --database {shlex.quote(database)} history demo-dana"
