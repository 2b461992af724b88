"""Tables added for promises and owner digests.

``OwnerIdentity`` lets an owner talk to the bot: a Slack user or Telegram chat that belongs to an
owner (not a person) may record promises from chat. People who are not owners never match a row
here, so they never get owner powers.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from memory.models import Base, Owner


class OwnerIdentity(Base):
    """A channel account (Slack user, Telegram chat) that belongs to an owner."""

    __tablename__ = "owner_identities"
    __table_args__ = (UniqueConstraint("channel", "workspace", "external_id", name="uq_owner_identity_external"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    # Slack team id for Slack identities; empty string elsewhere (NULLs would defeat the unique).
    workspace: Mapped[str] = mapped_column(String(64), default="")
    external_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]

    owner: Mapped[Owner] = relationship()
