"""Facts channel adapters share between processes: one row per key, with an expiry.

A second ``rapport run`` (or the same one after a restart) must see that a rating message was
already answered, how much of a failed batch went out, and which keyboard is live in a chat. So
these live in the database (``memory.models_channels.ChannelMark``), not in a process's memory.

Synchronous, one short transaction per call: adapters call these through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from memory.db import transaction
from memory.models_channels import ChannelMark

#: Keys and values are cut to what the column holds.
KEY_CHARS = 300


class Marks:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def claim(self, key: str, *, now: dt.datetime, ttl: dt.timedelta, value: str = "") -> bool:
        """Set ``key`` unless it is already set and live. True when this call set it: of two
        processes claiming the same key at once, exactly one gets True."""
        key = key[:KEY_CHARS]
        try:
            with transaction(self.sessions) as s:
                row = s.get(ChannelMark, key)
                if row is not None and row.expires_at > now:
                    return False
                if row is None:
                    s.add(ChannelMark(key=key, value=value[:KEY_CHARS], expires_at=now + ttl, updated_at=now))
                else:
                    row.value, row.expires_at, row.updated_at = value[:KEY_CHARS], now + ttl, now
        except IntegrityError:
            return False  # another process inserted the same key a moment ago
        return True

    def get(self, key: str, *, now: dt.datetime) -> str | None:
        with transaction(self.sessions) as s:
            row = s.get(ChannelMark, key[:KEY_CHARS])
            return row.value if row is not None and row.expires_at > now else None

    def put(self, key: str, value: str, *, now: dt.datetime, ttl: dt.timedelta) -> None:
        """Set ``key`` to ``value`` whatever it held (the last writer wins)."""
        key = key[:KEY_CHARS]
        for _ in range(2):
            try:
                with transaction(self.sessions) as s:
                    row = s.get(ChannelMark, key)
                    if row is None:
                        s.add(ChannelMark(key=key, value=value[:KEY_CHARS], expires_at=now + ttl, updated_at=now))
                    else:
                        row.value, row.expires_at, row.updated_at = value[:KEY_CHARS], now + ttl, now
                return
            except IntegrityError:
                continue  # inserted concurrently: the second round updates it

    def pop(self, key: str, *, now: dt.datetime) -> str | None:
        """The live value of ``key`` (None if absent or expired), removing it."""
        with transaction(self.sessions) as s:
            row = s.get(ChannelMark, key[:KEY_CHARS], with_for_update=True)
            if row is None:
                return None
            value = row.value if row.expires_at > now else None
            s.delete(row)
            return value

    def drop(self, key: str, *, value: str | None = None) -> None:
        """Remove ``key`` (only while it holds ``value``, when given)."""
        with transaction(self.sessions) as s:
            query = delete(ChannelMark).where(ChannelMark.key == key[:KEY_CHARS])
            if value is not None:
                query = query.where(ChannelMark.value == value)
            s.execute(query)
