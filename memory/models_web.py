"""Tables for owners' web access: accounts (password, admin flag), one-time login links, and
failed login attempts (the rate limit).

Credentials live beside the ``owners`` row, not in it, so an owner without web access has no
row here, and erasing credentials never touches the relationship data.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from memory.models import Base, Owner


class OwnerAccount(Base):
    """An owner's web login. ``is_admin`` sees every person; other owners see only their own."""

    __tablename__ = "owner_accounts"

    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), primary_key=True)
    # An argon2id hash (argon2-cffi); None while the owner logs in by one-time links only.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    owner: Mapped[Owner] = relationship()


class LoginToken(Base):
    """A one-time login link. Only the SHA-256 of the token is stored, so the table cannot be
    replayed; ``used_at`` makes it one-time and ``expires_at`` bounds it."""

    __tablename__ = "login_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class LoginFailure(Base):
    """One failed login, counted per bucket (``owner:<key>`` and ``ip:<address>``) in a window.

    In the database rather than in memory, so every ``rapport run`` process counts the same.
    """

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_bucket_at", "bucket", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[str] = mapped_column(String(300))
    at: Mapped[dt.datetime]
