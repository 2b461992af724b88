"""A pinned timeline for tests that run the real service loop: never today's date.

``now()`` reads :data:`START` at the moment this module was imported and runs on in real time
(the service loop sleeps and waits on real time), so an outcome can never depend on the day, the
weekday or the hour the suite runs.
"""

from __future__ import annotations

import datetime as dt
import time

START = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)  # a Wednesday, inside every default send window
EPOCH = time.time()


def now() -> dt.datetime:
    return START + dt.timedelta(seconds=time.time() - EPOCH)
