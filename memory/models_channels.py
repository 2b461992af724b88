"""Small facts channel adapters must share between processes, with an expiry.

A rating message already answered (so a second click, in any process, is not shown), the part of
a failed batch that did go out (so a retry skips it), the live Telegram keyboard of a chat (so the
next question closes it). Each is one row under a key such as ``slack:clicked:D1:1700.1``; the
engine reaches them through ``bot.engine.marks``. Rows past ``expires_at`` count as absent and are
removed by the next write to the same key.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from memory.models import Base


class ChannelMark(Base):
    __tablename__ = "channel_marks"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    value: Mapped[str] = mapped_column(String(300), default="")
    expires_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
