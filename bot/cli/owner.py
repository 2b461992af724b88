"""Owners' web access: ``rapport owner set-password``, ``login-link`` and ``admin``.

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
) -> None:
    """Print a one-time dashboard login link (expires after web.dashboard.login_link_minutes)."""
    from bot.dashboard import auth
    from memory.db import transaction

    config, engine, sessions = _sessions(ctx)
    ttl = dt.timedelta(minutes=config.web.dashboard.login_link_minutes)
    try:
        with transaction(sessions) as s:
            token = auth.make_login_token(s, owner_key=owner, now=utcnow(), ttl=ttl)
    except auth.UnknownOwner as exc:
        fail(str(exc), 2)
    finally:
        engine.dispose()
    base = (config.web.public_url or f"http://{config.web.host}:{config.web.port}").rstrip("/")
    typer.echo(f"{base}/dashboard/login/link?token={token}")
    typer.echo(f"(one use, valid for {config.web.dashboard.login_link_minutes} minutes)", err=True)
