"""What owners may see of a closed wave of an anonymous program, fixed when the wave closes.

One row per wave and slice (``program`` or ``owner:<key>``): the view as it was computed at
close (:mod:`memory.wave_views`), suppressed views included, so that no later answer, edit or
roster change can alter what an owner sees of that wave.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from memory.crypto import EncryptedJSON
from memory.models import Base


class WaveView(Base):
    __tablename__ = "wave_views"
    __table_args__ = (UniqueConstraint("wave_id", "slice", name="uq_wave_view"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("waves.id", ondelete="CASCADE"), index=True)
    slice: Mapped[str] = mapped_column(String(120))
    view: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)  # comments and theme quotes
    frozen_at: Mapped[dt.datetime]
