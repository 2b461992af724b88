"""``rapport invite``: a one-time link that binds a person's chat to their roster entry."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Annotated

import typer

from bot.cli._app import app, build_app, fail, load, utcnow

_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")


@app.command()
def invite(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="The person's id or e-mail.")],
    channel: Annotated[str, typer.Option(help="Channel to link (telegram).")] = "telegram",
    bot_username: Annotated[
        str | None, typer.Option(help="The bot's @username; skips asking Telegram (getMe) for it.")
    ] = None,
    ttl_hours: Annotated[
        int | None, typer.Option(min=1, help="Hours the link stays valid (channels.telegram.invite_ttl_hours).")
    ] = None,
) -> None:
    """Print a signed, one-time, expiring invite link for PERSON (https://t.me/<bot>?start=<token>)."""
    if channel != "telegram":
        fail(f"invite links exist for telegram only, not {channel!r}", 2)
    from bot.config import resolve_secret, secret_name
    from bot.invites import derive_key, make_token
    from memory import store
    from memory.db import transaction

    config = load(ctx)
    telegram = config.channels.telegram
    token = resolve_secret(telegram.token)
    invite_secret = resolve_secret(telegram.invite_secret)
    if token is None and invite_secret is None:
        fail(
            f"invite links are signed with {secret_name(telegram.invite_secret) or 'the invite secret'} "
            f"or the bot token; set {secret_name(telegram.token)}",
            2,
        )
    if bot_username is None:
        if token is None:
            fail(f"set {secret_name(telegram.token)} or pass --bot-username", 2)
        from bot.channels.telegram import fetch_bot_username

        bot_username = asyncio.run(fetch_bot_username(token=token, api_base_url=telegram.api_base_url))
    bot_username = bot_username.removeprefix("@")
    if not _USERNAME.match(bot_username):
        fail(f"{bot_username!r} is not a Telegram bot username", 2)

    application = build_app(ctx, config)
    try:
        with transaction(application.sessions) as s:
            found = store.require_person(s, person)
            person_id, opted_out = found.id, found.opted_out_at is not None
    finally:
        application.close()
    now = utcnow()
    ttl = dt.timedelta(hours=ttl_hours or telegram.invite_ttl_hours)
    link_token = make_token(person_id=person_id, key=derive_key(invite_secret=invite_secret, bot_token=token or ""),
                            now=now, ttl=ttl)  # fmt: skip
    typer.echo(f"https://t.me/{bot_username}?start={link_token}")
    expires = (now + ttl).strftime("%Y-%m-%d %H:%M UTC")
    typer.echo(f"works once, until {expires}; send it to {person} privately", err=True)
    if opted_out:
        typer.echo(f"note: {person} has opted out; linking will not restart their check-ins", err=True)
