"""The engine's write transactions, grouped on SQLite.

SQLite takes one writer at a time. When many people answer at once, each answer's write would
wait its turn, and each would pay for its own transaction (a session, BEGIN, COMMIT) while the
others queue. Here, writes that queued while another ran are done together by whichever caller
takes the writer's turn next: one transaction, each write's own work in it, in arrival order, and
one commit ("flat combining"). A write that arrives alone runs alone at once: nobody waits for
company.

If any write of a group fails (or the commit does), nothing of the group is kept, and each of its
writes runs again in its own transaction: so the failing one fails alone, exactly as it would have
on its own, and the others commit. A write's work touches nothing but the session until the
commit; what must happen after it (``after``: digest files, the SQLite WAL) runs once it is in.

PostgreSQL writes in parallel and commits each write on its own: no queue there.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from bot.engine.mydata import After
from memory.db import transaction

R = TypeVar("R")
#: The work of one write, inside the transaction it is given; ``after`` collects what runs after.
Work = Callable[[Session, After], R]


@dataclass(eq=False)
class _Write(Generic[R]):
    work: Work[R]
    result: R | None = None
    error: BaseException | None = None
    done: bool = False
    after: After = field(default_factory=list)


class Writes:
    """Runs each write's work in a transaction; on SQLite, queued writes share one."""

    def __init__(self, sessions: sessionmaker[Session], *, group: bool) -> None:
        self.sessions = sessions
        self.group = group
        self._turn = threading.Lock()  # the one writer of this process (SQLite)
        self._queue: deque[_Write[object]] = deque()
        self._queue_lock = threading.Lock()

    @classmethod
    def for_sessions(cls, sessions: sessionmaker[Session]) -> Writes:
        bind = sessions.kw.get("bind")
        return cls(sessions, group=getattr(getattr(bind, "dialect", None), "name", None) == "sqlite")

    def run(self, work: Work[R]) -> R:
        write: _Write[R] = _Write(work)
        if not self.group:
            self._alone(write)
            return self._result(write)
        with self._queue_lock:
            self._queue.append(write)  # type: ignore[arg-type]
        with self._turn:
            # The writer before us may have done ours along with its own.
            if not write.done:
                with self._queue_lock:
                    batch = list(self._queue)
                    self._queue.clear()
                self._together(batch)
        return self._result(write)

    def _together(self, batch: list[_Write[object]]) -> None:
        if len(batch) == 1:
            self._alone(batch[0])
            return
        try:
            with transaction(self.sessions) as s:
                results = [(w, w.work(s, w.after)) for w in batch]
        except (KeyboardInterrupt, SystemExit) as exc:
            for w in batch:  # the process is stopping: every caller of the group hears it
                w.error, w.done = exc, True
            raise
        except Exception:
            # Which one failed is not known, and nothing of the group was kept: each on its own.
            for w in batch:
                w.after.clear()
                self._alone(w)
            return
        for w, result in results:
            w.result = result
            self._finish(w)

    def _alone(self, write: _Write[R]) -> None:
        try:
            with transaction(self.sessions) as s:
                write.result = write.work(s, write.after)
        except BaseException as exc:
            write.error, write.done = exc, True
            return
        self._finish(write)

    @staticmethod
    def _finish(write: _Write[R]) -> None:
        try:
            for job in write.after:
                job()
        except BaseException as exc:
            write.error = exc
        write.done = True

    @staticmethod
    def _result(write: _Write[R]) -> R:
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[return-value]
