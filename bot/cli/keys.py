"""Encryption keys: ``rapport keys generate``, ``rapport keys status``, ``rapport keys rotate``.

The rule lives in ``memory.crypto`` (the stored form) and ``memory.rekey`` (status, rotation);
these commands only parse, call and print. Keys are read from ``RAPPORT_ENCRYPTION_KEYS`` only,
and no command prints a key except ``generate``, which prints the new one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli._app import _globals, app, fail, load

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

keys_app = typer.Typer(help="Encryption at rest: make keys, see what is encrypted, rotate.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@contextmanager
def _database(ctx: typer.Context) -> Iterator[sessionmaker[Session]]:
    """The database alone: no model, no programs, and no refusal at startup when some values
    cannot be read (``status`` is how an operator finds out which)."""
    from memory import crypto, db
    from memory.errors import DatabaseError

    config = load(ctx)
    url = _globals(ctx).database_url or config.database_url
    crypto.load()
    try:
        db.require_database(url)
        engine = db.make_engine(url)
    except DatabaseError as exc:
        fail(str(exc), 2)
    try:
        yield db.make_sessionmaker(engine)
    finally:
        engine.dispose()


@keys_app.command()
def generate() -> None:
    """Print a new key. Put it first in RAPPORT_ENCRYPTION_KEYS; keep older keys after it until
    `rapport keys rotate` has run."""
    from memory import crypto

    typer.echo(crypto.generate())


@keys_app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """How many stored values are plain, encrypted with the newest key, with an older key, or
    unreadable with the keys in RAPPORT_ENCRYPTION_KEYS."""
    from memory import crypto, rekey

    with _database(ctx) as sessions:
        report = rekey.status(sessions)
    ring = crypto.keyring()
    if as_json:
        data = {"keys": len(ring.keys), "columns": {k: asdict(v) for k, v in report.columns.items()}}
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"keys in {crypto.ENV}: {len(ring.keys)}")
    typer.echo(f"{'column':<28} {'plain':>8} {'newest':>8} {'older':>8} {'unreadable':>10}")
    for name, c in report.columns.items():
        typer.echo(f"{name:<28} {c.plain:>8} {c.current:>8} {c.older:>8} {c.unreadable:>10}")
    totals = {s: report.total(s) for s in rekey.STATES}
    typer.echo(
        f"{'total':<28} {totals['plain']:>8} {totals['current']:>8} {totals['older']:>8} {totals['unreadable']:>10}"
    )


@keys_app.command()
def rotate(
    ctx: typer.Context,
    batch: Annotated[int, typer.Option("--batch", min=1, max=100_000, help="Rows per transaction.")] = 500,
    keep_plain: Annotated[bool, typer.Option("--keep-plain", help="Leave values stored in clear as they are.")] = False,
) -> None:
    """Re-encrypt every value with the newest key (the first in RAPPORT_ENCRYPTION_KEYS), and
    encrypt values still stored in clear. Safe to interrupt and to run again."""
    from memory import rekey

    with _database(ctx) as sessions:
        report = rekey.rotate(sessions, batch=batch, encrypt_plain=not keep_plain)
    changed = report.total("changed")
    typer.echo(
        f"rotated: {changed} value(s) rewritten with the newest key; before this run "
        f"{report.total('current')} already used it, {report.total('older')} used an older key, "
        f"{report.total('plain')} were plain" + (" (left plain)" if keep_plain else "")
    )
    if not report.wal_truncated:
        typer.echo(
            "note: another process is reading the SQLite database, so its write-ahead log (which may still hold "
            "old copies of rewritten values) is truncated at a later checkpoint; stop `rapport run` and rotate "
            "again when certainty is needed"
        )
    unreadable = report.total("unreadable")
    if unreadable:
        fail(f"{unreadable} value(s) cannot be read with any key in RAPPORT_ENCRYPTION_KEYS and were left as they are")
