"""Database engine, sessions and migrations.

SQLite (WAL) is the embedded default; PostgreSQL (psycopg 3) is the shared engine for several
processes. The same code and the same Alembic migrations run on both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from memory.errors import DatabaseMissing, DatabaseUnavailable, DatabaseUrlInvalid

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Let operators write ``postgresql://`` and still get the psycopg 3 driver."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine whose database answered once: a wrong URL or an unreachable server raises a
    ``DatabaseError`` with one line to show (no traceback, no password), not a driver error on
    whatever query happens to come first."""
    url = normalise_url(url)
    parsed = _parse(url)
    shown = display_url(url)
    # hide_parameters: SQL errors (and their tracebacks in logs) must not carry people's words.
    kwargs: dict[str, Any] = {"echo": echo, "future": True, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        _ensure_sqlite_dir(url, shown)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError):
        raise DatabaseUrlInvalid(shown, _UNKNOWN_KIND.format(kind=parsed.drivername)) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with engine.connect():
            pass
    except sa_exc.DBAPIError as exc:
        engine.dispose()
        raise DatabaseUnavailable(shown, _one_line(exc, parsed)) from None
    return engine


_NOT_A_URL = "not a database URL; use sqlite:///path/to/file.db or postgresql://user@host/db"
_UNKNOWN_KIND = "cannot use database kind {kind!r}; use sqlite:///path/to/file.db or postgresql://user@host/db"


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        # Unparseable text may hold a password anywhere: none of it is shown.
        raise DatabaseUrlInvalid("(unreadable URL)", _NOT_A_URL) from None


def display_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(normalise_url(url)).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError):
        return "(unreadable URL)"


def _one_line(exc: sa_exc.DBAPIError, url: URL) -> str:
    """The driver's reason, as one line: the first line of the original error, without the
    statement (``DBAPIError``'s own text appends SQL) or the password."""
    text = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    return text[:300]


def require_database(url: str) -> None:
    """Outside ``rapport init``, a SQLite URL must name an existing file: a typo in the path would
    otherwise create an empty database (and its folders) and carry on as if nobody was there."""
    path = sqlite_path(normalise_url(url))
    if path is not None and not path.exists():
        raise DatabaseMissing(display_url(url), f"{path} does not exist; run `rapport init` to create it")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None (another engine, in-memory, or a ``file:`` URI)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path).expanduser()


def _ensure_sqlite_dir(url: str, shown: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailable(shown, f"cannot create the folder {path.parent}: {exc.strerror}") from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers and one writer work at once; busy_timeout makes a second writer wait
    # instead of failing; foreign keys are off by default in SQLite.
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (every head: features add their own branches)."""
    from alembic import command

    command.upgrade(alembic_config(engine), "heads")


def current_revisions(engine: Engine) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def head_revisions(engine: Engine) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
