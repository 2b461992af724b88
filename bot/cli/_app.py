"""The typer application and what every command shares: config loading and the composition root.

Heavy imports (SQLAlchemy models, sentence-transformers, chat SDKs) happen inside commands, so
``rapport --help`` stays fast and never imports torch.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import Config

app = typer.Typer(
    name="rapport",
    help="Rapport keeps in touch with the people you depend on, and remembers what each of them said.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: rich's help formatter alone took longer to import than the whole CLI.
    rich_markup_mode=None,
)


@dataclass
class Globals:
    config_path: Path
    database_url: str | None = None


def _globals(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    assert isinstance(obj, Globals)
    return obj


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path,
        typer.Option("--config", "-c", envvar="RAPPORT_CONFIG", help="Path to config.yaml."),
    ] = Path("config.yaml"),
    database: Annotated[
        str | None,
        typer.Option("--database", envvar="RAPPORT_DATABASE_URL", help="Overrides database.url."),
    ] = None,
) -> None:
    ctx.obj = Globals(config_path=config, database_url=database)


def config_path(ctx: typer.Context) -> Path:
    return _globals(ctx).config_path


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load(ctx: typer.Context) -> Config:
    from bot.config import load_config
    from bot.errors import ConfigError

    try:
        return load_config(_globals(ctx).config_path)
    except ConfigError as exc:
        print_config_problems(exc)
        raise typer.Exit(2) from None


def print_config_problems(exc: object) -> None:
    from bot.errors import ConfigError

    assert isinstance(exc, ConfigError)
    typer.echo(f"{exc.source}: invalid configuration ({len(exc.problems)} problem(s))", err=True)
    for path, message in exc.problems:
        typer.echo(f"  {path}: {message}", err=True)


def build_app(ctx: typer.Context, config: Config | None = None, *, create: bool = False) -> App:
    """The App for a command. Only ``create`` (``rapport init``) may create a SQLite file: any other
    command given a wrong path says so instead of starting an empty database."""
    from bot import logs
    from bot.app import build
    from memory import db
    from memory.errors import DatabaseError

    config = config or load(ctx)
    logs.setup(config.logging.level, config.logging.format)
    url = _globals(ctx).database_url or config.database_url
    try:
        if not create:
            db.require_database(url)
        return build(config, database_url=url)
    except DatabaseError as exc:
        # One line, exit 2: the traceback of a refused connection tells an operator nothing more.
        fail(str(exc), 2)


def parse_at(value: str | None, option: str = "--at") -> dt.datetime | None:
    """An ISO-8601 moment for ``option`` (named in the error); a date alone means noon UTC that day."""
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} {value!r} is not a date or time; write 2026-03-01 or 2026-03-01T10:00+01:00", 2)
    if len(value.strip()) == 10:
        when = when.replace(hour=12)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def parse_day(value: str, option: str) -> dt.date:
    """A calendar day (YYYY-MM-DD) for ``option``, named in the error."""
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        fail(f"{option} {value!r} is not a date; write YYYY-MM-DD, e.g. 2026-08-01", 2)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def stdin_is_tty() -> bool:
    return sys.stdin.isatty()
