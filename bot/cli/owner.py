"""Owners' web access: ``rapport owner set-password``, ``login-link`` (printed, or sent with
``--send``/``--via``) and ``admin``.

These commands open the database without the embedding model, so they start quickly.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli._app import _globals, app, fail, load, stdin_is_tty, utcnow

owner_app = typer.Typer(help="Owners' web access: passwords, one-time login links, admins.", no_args_is_help=True)
app.add_typer(owner_app, name="owner")

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from bot.config import Config

PASSWORD_ENV = "RAPPORT_OWNER_PASSWORD"  # noqa: S105  (the variable's name, not a password)


def _sessions(ctx: typer.Context) -> tuple[Config, Engine, sessionmaker[Session]]:
    from memory import db

    config = load(ctx)
    engine = db.make_engine(_globals(ctx).database_url or config.database_url)
    if config.database.migrate_on_start:
        db.migrate(engine)
    return config, engine, db.make_sessionmaker(engine)


@owner_app.command("set-password")
def set_password(
    ctx: typer.Context,
    owner: Annotated[str, typer.Argument(help="The owner's key (as in the roster's owner column).")],
    admin: Annotated[bool | None, typer.Option("--admin/--no-admin", help="Also grant or revoke admin.")] = None,
) -> None:
    """Set an owner's dashboard password (asked twice, or read from RAPPORT_OWNER_PASSWORD)."""
    from bot.dashboard import auth
    from memory.db import transaction

    password = os.environ.get(PASSWORD_ENV)
    if not password:
        if not stdin_is_tty():
            fail(f"no terminal to ask for the password: set {PASSWORD_ENV}", 2)
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    _config, engine, sessions = _sessions(ctx)
    try:
        with transaction(sessions) as s:
            auth.set_password(s, owner_key=owner, password=password, now=utcnow(), admin=admin)
    except (auth.WeakPassword, auth.UnknownOwner) as exc:
        fail(str(exc), 2)
    finally:
        engine.dispose()
    typer.echo(f"password set for {owner}" + ("" if admin is None else f" (admin: {'yes' if admin else 'no'})"))


@owner_app.command("admin")
def set_admin(
    ctx: typer.Context,
    owner: Annotated[str, typer.Argument(help="The owner's key.")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Take admin away instead.")] = False,
) -> None:
    """Make an owner an admin (sees every person and program), or take it away."""
    from bot.dashboard import auth
    from memory.db import transaction

    _config, engine, sessions = _sessions(ctx)
    try:
        with transaction(sessions) as s:
            auth.set_admin(s, owner_key=owner, admin=not revoke, now=utcnow())
    except auth.UnknownOwner as exc:
        fail(str(exc), 2)
    finally:
        engine.dispose()
    typer.echo(f"{owner} is {'no longer ' if revoke else ''}an admin")


@owner_app.command("login-link")
def login_link(
    ctx: typer.Context,
    owner: Annotated[str, typer.Argument(help="The owner's key.")],
    send: Annotated[
        bool, typer.Option("--send", help="Send it to the owner (Slack, else Telegram, else e-mail), not print it.")
    ] = False,
    via: Annotated[
        str | None, typer.Option("--via", help="Send it by this channel: slack, telegram or email (implies --send).")
    ] = None,
) -> None:
    """A one-time dashboard login link (expires after web.dashboard.login_link_minutes): printed,
    or sent to the owner with --send / --via (`rapport run` sends it)."""
    from bot.dashboard import auth
    from bot.dashboard.link_delivery import login_url
    from bot.engine import owner_login
    from memory.db import transaction
    from scheduler.leader import live_workers

    if via is not None and via not in owner_login.VIAS:
        fail(f"--via must be one of {', '.join(owner_login.VIAS)}", 2)
    config, engine, sessions = _sessions(ctx)
    minutes = config.web.dashboard.login_link_minutes
    now = utcnow()
    try:
        with transaction(sessions) as s:
            found = auth.find_owner(s, owner)
            if found is None:
                raise auth.UnknownOwner(owner)
            if not (send or via):
                token = auth.make_login_token(s, owner_key=owner, now=now, ttl=dt.timedelta(minutes=minutes))
            else:
                done = owner_login.request_login_link(s, owner=found, now=now, via=via)
                running = s.execute(live_workers(now).limit(1)).first() is not None
    except auth.UnknownOwner as exc:
        fail(str(exc), 2)
    finally:
        engine.dispose()
    if not (send or via):
        typer.echo(login_url(config, token))
        typer.echo(f"(one use, valid for {minutes} minutes)", err=True)
        return
    if done.outcome == "no_route":
        how = (f"linked {via} account" if via in owner_login.CHAT_VIAS else "e-mail address" if via else
               "linked Slack or Telegram account (rapport owners link) or e-mail address")  # fmt: skip
        fail(f"{owner} has no {how} to send a login link to", 2)
    if done.outcome == "too_many":
        fail(f"{owner} was sent {owner_login.MAX_PER_WINDOW} login links in the last hour; use the newest", 1)
    typer.echo(f"a login link for {owner} goes out by {done.via} (one use, valid for {minutes} minutes)")
    if not running:
        typer.echo(f"no `rapport run` is running: it goes out when one starts (within {minutes} minutes, "
                   "or not at all)", err=True)  # fmt: skip
