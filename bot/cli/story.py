"""``rapport story PERSON`` and ``rapport digest OWNER``: what owners read."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from bot.cli._app import app, build_app, fail, load, parse_at, utcnow


def _echo(text: str) -> None:
    """People's words on a terminal: no control characters (escape sequences could rewrite the screen)."""
    typer.echo("".join(ch if ch.isprintable() or ch in "\n\t" else "\ufffd" for ch in text))


@app.command()
def story(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print Markdown.")] = False,
) -> None:
    """A person's relationship story: ratings, reasons, follow-ups, promises and the trajectory.

    Anonymous programs never appear in a story.
    """
    import prompts
    from bot.cli.privacy import operator
    from memory import audit, store
    from memory.db import transaction
    from memory.stories import build_story

    if as_json and markdown:
        fail("choose one of --json and --markdown", 2)
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            who = store.require_person(s, person)
            result = build_story(s, who, step=application.config.changes.rating_delta)
            audit.record(s, actor=operator(None), action="story.view", now=utcnow(), person_id=who.id)
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    _echo(prompts.render("story/markdown" if markdown else "story/text", "markdown" if markdown else "plain",
                         s=result))  # fmt: skip


@app.command()
def digest(
    ctx: typer.Context,
    owner: Annotated[str, typer.Argument(help="The owner's key.")],
    since: Annotated[str | None, typer.Option(help="Start (ISO date or time); 7 days ago by default.")] = None,
    until: Annotated[str | None, typer.Option(help="End (ISO date or time); now by default.")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="markdown, html, slack, telegram, email, text or csv.")
    ] = "markdown",
) -> None:
    """Preview an owner's change digest (nothing is sent)."""
    from bot.cli.privacy import operator
    from bot.digests import FORMATS, render_digest
    from memory import audit
    from memory.db import transaction
    from memory.digests import build_digest

    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}", 2)
    end = parse_at(until, "--until") or utcnow()
    start = parse_at(since, "--since") or end - dt.timedelta(days=7)
    if start >= end:
        fail("--since must be before --until", 2)
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            result = build_digest(
                s, owner=owner, since=start, until=end, threshold=application.config.digests.rating_threshold,
                quote_chars=application.config.digests.quote_chars, encode=application.embedder.encode,
            )  # fmt: skip
            audit.record_digest(s, actor=operator(None), now=utcnow(), owner=owner,
                                person_keys=audit.digest_people(result), detail={"preview": True})  # fmt: skip
    finally:
        application.close()
    rendered = render_digest(result, fmt)
    if fmt == "email":
        _echo(f"Subject: {rendered.subject}\n\n{rendered.body}\n\n----- HTML part -----\n{rendered.html}")
    else:
        _echo(rendered.body)


@app.command()
def themes(
    ctx: typer.Context,
    program: Annotated[str, typer.Argument(help="The program.")],
    since: Annotated[str | None, typer.Option(help="Start (ISO date); 90 days ago by default.")] = None,
    until: Annotated[str | None, typer.Option(help="End (ISO date); now by default.")] = None,
    wave: Annotated[str | None, typer.Option(help="Anonymous programs: the closed wave (latest by default).")] = None,
    owner: Annotated[str | None, typer.Option(help="Anonymous programs: one owner's team.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Themes across people: a handful of ideas in the reasons, with sizes, change and quotes.

    For an anonymous program this is its k-anonymous wave view (scores, eNPS, movement, themes),
    or a note that the view is withheld.
    """
    from dataclasses import asdict

    from memory import anonymity
    from memory.anonymity import program_themes
    from memory.db import transaction

    if program not in load(ctx).programs:
        fail(f"no program named {program!r}", 2)
    end = parse_at(until, "--until") or utcnow()
    start = parse_at(since, "--since") or end - dt.timedelta(days=90)
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            if application.config.programs[program].anonymous:
                try:
                    view = anonymity.aggregate(
                        s, program=program, now=end, wave=wave, owner=owner, encode=application.embedder.encode
                    )
                except anonymity.SliceRefused as exc:
                    fail(str(exc), 2)
                data = asdict(view)
            else:
                if wave or owner:
                    fail("--wave and --owner apply to anonymous programs; use --since/--until", 2)
                found = program_themes(s, program=program, since=start, until=end, encode=application.embedder.encode)
                data = {"program": program, "since": start.isoformat(), "until": end.isoformat(),
                        "themes": [asdict(t) for t in found]}  # fmt: skip
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        return
    import prompts

    _echo(prompts.render("digest/themes", "plain", data=data))
