"""Key status, rotation and the startup check for encryption at rest (``memory.crypto``).

Every column whose type is one of ``memory.crypto.ENCRYPTED_TYPES`` is covered: the models are the
one list. These functions work on the raw stored values (``type_coerce`` to the column's plain
type), so they see the mark and the token rather than the words, and never hold more than one
batch in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Table, Text, bindparam, select, type_coerce, update
from sqlalchemy.orm import Session, sessionmaker

import memory.models_scheduler  # noqa: F401  (registers outbox_contents)
from memory import crypto
from memory.erasure import scrub_sqlite
from memory.errors import EncryptedValueUnreadable, EncryptionKeyMissing
from memory.models import Answer, Base, Promise

STATES = ("plain", "current", "older", "unreadable")


@dataclass
class ColumnCount:
    """How the values of one column are stored."""

    plain: int = 0
    current: int = 0  # encrypted with the newest key
    older: int = 0  # encrypted with another key still in the environment
    unreadable: int = 0  # encrypted with a key that is not in the environment
    changed: int = 0  # rewritten by this rotation

    def add(self, state: str) -> None:
        setattr(self, state, getattr(self, state) + 1)


@dataclass
class Report:
    columns: dict[str, ColumnCount] = field(default_factory=dict)
    # SQLite only: False when another process kept the WAL (and its old page copies) from being
    # truncated; the next checkpoint does it.
    wal_truncated: bool = True

    def total(self, state: str) -> int:
        return sum(getattr(c, state) for c in self.columns.values())


def encrypted_columns() -> list[tuple[Table, Column[Any]]]:
    """(table, column) for every column stored through ``memory.crypto``, in a stable order."""
    found: list[tuple[Table, Column[Any]]] = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, crypto.ENCRYPTED_TYPES):
                found.append((table, column))
    return found


def raw_column(column: Column[Any]) -> Any:
    """``column`` read or written as stored (the mark and token), not as words."""
    assert isinstance(column.type, crypto.ENCRYPTED_TYPES)
    return type_coerce(column, column.type.impl_instance)


def _batches(s: Session, table: Table, column: Column[Any], size: int) -> Iterator[list[tuple[Any, Any]]]:
    (pk,) = table.primary_key.columns
    last: Any = None
    while True:
        query = select(pk, raw_column(column)).where(column.is_not(None)).order_by(pk).limit(size)
        if last is not None:
            query = query.where(pk > last)
        rows = [(r[0], r[1]) for r in s.execute(query)]
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _state(ring: crypto.Keyring, raw: Any) -> str:
    token = crypto.token_of(raw)
    if token is None:
        return "plain"
    if not ring.active:
        return "unreadable"
    return ring.state(token)


def status(sessions: sessionmaker[Session], *, batch: int = 500) -> Report:
    """How many values of each column are plain, encrypted with the newest key, with an older
    key, or unreadable with the keys in the environment. Empty values are not counted."""
    ring = crypto.keyring()
    report = Report()
    with sessions() as s:
        for table, column in encrypted_columns():
            count = report.columns.setdefault(f"{table.name}.{column.name}", ColumnCount())
            for rows in _batches(s, table, column, batch):
                for _, raw in rows:
                    if not crypto.is_empty(raw):
                        count.add(_state(ring, raw))
    return report


def rotate(
    sessions: sessionmaker[Session],
    *,
    batch: int = 500,
    encrypt_plain: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> Report:
    """Bring every value to the newest key: values under an older key are re-encrypted, plain
    values encrypted (unless ``encrypt_plain`` is false). One transaction per batch, so an
    interrupted run keeps what it did, and running again only finishes the rest (idempotent).
    Values no key can read are counted and left as they are."""
    ring = crypto.keyring()
    if not ring.active:
        raise EncryptionKeyMissing(f"{crypto.ENV} is not set: there is no key to rotate to")
    report = Report()
    for table, column in encrypted_columns():
        name = f"{table.name}.{column.name}"
        count = report.columns.setdefault(name, ColumnCount())
        kind = column.type.kind  # type: ignore[attr-defined]
        (pk,) = table.primary_key.columns
        statement = (
            update(table)
            .where(pk == bindparam("b_pk"))
            .values({column.name: bindparam("b_value", type_=column.type.impl_instance)})  # type: ignore[attr-defined]
        )
        with sessions() as s:
            if s.get_bind().dialect.name == "sqlite":
                # The clear text a rewritten value replaces is zeroed, not left in a free page.
                s.connection().exec_driver_sql("PRAGMA secure_delete=ON")
            for rows in _batches(s, table, column, batch):
                changes: list[dict[str, Any]] = []
                for key, raw in rows:
                    if crypto.is_empty(raw):
                        continue
                    state = _state(ring, raw)
                    count.add(state)
                    if state == "older":
                        token = crypto.token_of(raw)
                        assert token is not None
                        changes.append({"b_pk": key, "b_value": crypto.wrap(kind, ring.rotate(token))})
                    elif state == "plain" and encrypt_plain:
                        sealed = ring.encrypt(crypto.plain_bytes(kind, raw))
                        changes.append({"b_pk": key, "b_value": crypto.wrap(kind, sealed)})
                if changes:
                    s.connection().execute(statement, changes)
                    s.commit()
                    count.changed += len(changes)
                if progress is not None:
                    progress(name, count.changed)
    with sessions() as s:
        sqlite = s.get_bind().dialect.name == "sqlite"
    if sqlite:
        report.wal_truncated = scrub_sqlite(sessions)
    return report


def verify(sessions: sessionmaker[Session]) -> None:
    """Refuse to start with keys that cannot read the stored words, with one line instead of a
    failure on whatever reads them first: the newest encrypted answer and promise are read."""
    ring = crypto.keyring()
    with sessions() as s:
        for pk, column in ((Answer.id, Answer.text), (Promise.id, Promise.text)):
            raw = type_coerce(column, Text())
            query = select(raw).where(column.is_not(None)).order_by(pk.desc()).limit(1)
            if ring.active:
                query = query.where(raw.like(crypto.MARK + "%"))
            token = crypto.token_of(s.scalar(query))
            if token is None:
                continue
            if not ring.active:
                raise EncryptedValueUnreadable(f"words in the database are encrypted but {crypto.ENV} is not set")
            ring.decrypt(token)
