"""``rapport story PERSON`` and ``rapport digest OWNER``: what owners read."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from bot.cli._app import app, build_app, fail, parse_at, utcnow


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
    from memory import store
    from memory.db import transaction
    from memory.stories import build_story

    if as_json and markdown:
        fail("choose one of --json and --markdown", 2)
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            who = store.require_person(s, person)
            result = build_story(s, who, step=application.config.changes.rating_delta)
    finally:
        application.close()
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    typer.echo(prompts.render("story/markdown" if markdown else "story/text", "markdown" if markdown else "plain",
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
    from bot.digests import FORMATS, render_digest
    from memory.db import transaction
    from memory.digests import build_digest

    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}", 2)
    end = parse_at(until) or utcnow()
    start = parse_at(since) or end - dt.timedelta(days=7)
    if start >= end:
        fail("--since must be before --until", 2)
    application = build_app(ctx)
    try:
        with transaction(application.sessions) as s:
            result = build_digest(
                s, owner=owner, since=start, until=end, threshold=application.config.digests.rating_threshold,
                quote_chars=application.config.digests.quote_chars, encode=application.embedder.encode,
            )  # fmt: skip
    finally:
        application.close()
    rendered = render_digest(result, fmt)
    if fmt == "email":
        typer.echo(f"Subject: {rendered.subject}\n\n{rendered.body}\n\n----- HTML part -----\n{rendered.html}")
    else:
        typer.echo(rendered.body)
