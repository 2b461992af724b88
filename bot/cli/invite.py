"""``rapport invite``: a one-time link that binds a person's chat to their roster entry (telegram),
or a person's check-in link (web)."""

from __future__ import annotations

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
    channel: Annotated[
        str, typer.Option(help="Channel: telegram (link a chat) or web (a check-in link).")
    ] = "telegram",
    program: Annotated[str | None, typer.Option(help="web: open PERSON's check-in in this program first.")] = None,
    bot_username: Annotated[
        str | None, typer.Option(help="The bot's @username; skips asking Telegram (getMe) for it.")
    ] = None,
    ttl_hours: Annotated[
        int | None, typer.Option(min=1, help="Hours the link stays valid (channels.telegram.invite_ttl_hours).")
    ] = None,
) -> None:
    """Print a signed, expiring invite link for PERSON: telegram (https://t.me/<bot>?start=<token>,
    one-time) or web (<public_url>/c/<token>, their check-in page)."""
    import asyncio

    if channel == "web":
        _web_link(ctx, person, program, ttl_hours)
        return
    if channel != "telegram":
        fail(f"invite links exist for telegram and web, not {channel!r}", 2)
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


def _web_link(ctx: typer.Context, person: str, program: str | None, ttl_hours: int | None) -> None:
    from bot.channels.web import links
    from bot.config import secret_name
    from memory import store
    from memory.db import transaction

    config = load(ctx)
    key = links.link_key(config, ephemeral_ok=False)
    if key is None:
        fail(f"web links are signed with {secret_name(config.channels.web.link_secret) or 'channels.web.link_secret'}"
             "; set it (the same value for `rapport run`)", 2)  # fmt: skip
    if program is not None and program not in config.programs:
        fail(f"no program {program!r} in the config", 2)
    if ttl_hours is not None:
        config = config.model_copy(
            update={"channels": config.channels.model_copy(update={"web": config.channels.web.model_copy(
                update={"link_ttl_hours": ttl_hours})})}
        )  # fmt: skip
    application = build_app(ctx, config)
    now = utcnow()
    try:
        if program is not None:
            application.service.start(person_ref=person, program=program, channel="web", now=now)
        with transaction(application.sessions) as s:
            found = store.require_person(s, person)
            checkins = store.open_checkins(s, found.id)
            closes = checkins[0].expires_at if checkins else None
            person_id, opted_out = found.id, found.opted_out_at is not None
    finally:
        application.close()
    typer.echo(links.make_link(config, key, person_id=person_id, now=now, closes_at=closes))
    if not checkins and program is None:
        typer.echo(f"note: {person} has no open check-in; pass --program to open one", err=True)
    if opted_out:
        typer.echo(f"note: {person} has opted out; the page will say so", err=True)
