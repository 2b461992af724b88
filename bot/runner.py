"""``rapport run``: the service. Scheduler tick, dispatchers, channel adapters and web server.

The scheduler decides *when* (:mod:`scheduler.planner`, under the leader lock), the database
decides *who is due* (outbox rows with unique keys), channels do the sending
(:mod:`scheduler.dispatch` calls the handlers in :mod:`bot.delivery`). Any number of processes
may run this against PostgreSQL; see ``docs/deployment.md``.

The runner wires every outbox kind explicitly: invitations and reminders (:mod:`bot.delivery`)
and digests (:mod:`bot.digest_runner`). Tests and other callers may add more with ``handlers=`` /
``jobs=`` / ``extensions=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from sqlalchemy import text

from bot import digest_runner
from bot.app import App, build_channels
from bot.channels.base import Channel
from bot.config import Config
from bot.delivery import Delivery
from bot.extensions import PeriodicJob, RunnerExtension
from bot.web import make_web_app

__all__ = ["PeriodicJob", "Runner", "RunnerExtension", "WebServerError"]

from memory.errors import RapportError
from memory.retention import daily_job
from scheduler.audience import TickReport
from scheduler.cadence import Period
from scheduler.dispatch import Dispatcher, DispatchSettings, Handler
from scheduler.leader import forget, make_leader
from scheduler.planner import Planner
from scheduler.plans import ProgramSchedule
from scheduler.windows import Window

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


class WebServerError(RapportError):
    """The web server cannot listen (the port is taken, or the address is not this machine's)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host, self.port, self.reason = host, port, reason
        super().__init__(f"the web server cannot listen on {host}:{port}: {reason} (set web.port, or --port)")


def schedules_from_config(config: Config) -> dict[str, ProgramSchedule]:
    """The scheduler's plain values, from the validated config."""
    out = {}
    for name, program in config.programs.items():
        cadence, window = program.cadence, program.window
        out[name] = ProgramSchedule(
            name=name,
            period=Period.parse(cadence.every) if cadence.every else None,
            cron=cadence.cron,
            timezone=cadence.timezone,
            open_for=dt.timedelta(days=cadence.open_for_days),
            reminders=cadence.reminders,
            window=Window.parse(start=window.start, end=window.end, days=window.days, holidays=window.holidays),
            channels=tuple(program.channels),
            contact_gap=dt.timedelta(days=config.scheduler.contact_gap_days),
        )
    return out


def dispatch_settings(config: Config) -> DispatchSettings:
    c = config.scheduler
    return DispatchSettings(
        batch_size=c.batch_size,
        concurrency=c.concurrency,
        lease=dt.timedelta(seconds=c.lease_seconds),
        max_attempts=c.max_attempts,
        retry_base=dt.timedelta(seconds=c.retry_base_seconds),
        retry_max=dt.timedelta(seconds=c.retry_max_seconds),
    )


def load_channels(app: App) -> tuple[dict[str, Channel], list[str]]:
    """The configured chat channels that can run, and one line per channel saying why not
    (built in the composition root, ``bot.app.build_channels``)."""
    return build_channels(app)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Runner:
    """The long-running service. ``await runner.serve()`` until ``request_stop()`` (SIGTERM)."""

    def __init__(
        self,
        *,
        app: App,
        channels: Mapping[str, Channel],
        handlers: Mapping[str, Handler] | None = None,
        jobs: Sequence[PeriodicJob] = (),
        extensions: Sequence[RunnerExtension] = (),
        clock: Clock = lambda: dt.datetime.now(dt.UTC),
        worker_id: str | None = None,
        serve_web: bool = True,
        host: str | None = None,
        port: int | None = None,
        shutdown_grace: float = 30.0,
        idle_poll: float = 0.2,
    ) -> None:
        self.app = app
        self.config = app.config
        self.channels = dict(channels)
        self.clock = clock
        self.worker_id = worker_id or worker_name()
        self.serve_web = serve_web
        self.host = host if host is not None else self.config.web.host
        self.port = port if port is not None else self.config.web.port
        self.shutdown_grace = shutdown_grace
        self.idle_poll = idle_poll
        self.schedules = schedules_from_config(self.config)
        self.delivery = Delivery(app=app, channels=self.channels, clock=clock)
        self.planner = Planner(
            sessions=app.sessions, programs=self.schedules, expire=app.service.expire, encode=app.embedder.encode
        )
        self.dispatcher = Dispatcher(
            sessions=app.sessions, handlers=self.delivery.handlers(), worker_id=self.worker_id,
            programs=self.schedules, settings=dispatch_settings(self.config), clock=clock,
        )  # fmt: skip
        self.leader = make_leader(
            app.engine, app.sessions, holder=self.worker_id,
            ttl=dt.timedelta(seconds=max(60, 3 * self.config.scheduler.tick_seconds)),
        )  # fmt: skip
        self.jobs: list[PeriodicJob] = []
        # Digests: their outbox handler in every process, their planning job in the leader.
        # Login links owners ask for: their outbox handler (bot/dashboard/link_delivery.py).
        from bot.dashboard.link_delivery import login_links_extension

        extensions = [
            digest_runner.digests_extension(app, self.channels),
            login_links_extension(app, self.channels, clock),
            *extensions,
        ]
        for kind, handler in (handlers or {}).items():
            self.add_handler(kind, handler)
        for job in jobs:
            self.add_job(job)
        for extension in extensions:
            for kind, handler in extension.handlers.items():
                self.add_handler(kind, handler)
            for job in extension.jobs:
                self.add_job(job)
        retention = self.config.privacy.retention  # privacy.retention: daily, in the leader (docs/privacy.md)
        if retention.free_text_months is not None:
            run = daily_job(app.sessions, months=retention.free_text_months, keep_ratings=retention.keep_ratings)
            self.add_job(PeriodicJob(name="retention", seconds=86_400.0, run=run))
        self.last_tick: dt.datetime | None = None
        self.last_tick_error: str | None = None
        self.bound_port: int | None = None
        self._stop = asyncio.Event()
        self._web: web.AppRunner | None = None
        self._scheduler: Any = None
        self._dispatch_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._started_channels: list[Channel] = []

    # Extension points -------------------------------------------------------------------------

    def add_handler(self, kind: str, handler: Handler) -> None:
        """Send outbox rows of ``kind`` with ``handler`` (returns the channel's message id)."""
        self.dispatcher.register(kind, handler)

    def add_job(self, job: PeriodicJob) -> None:
        self.jobs.append(job)

    # One step of each -------------------------------------------------------------------------

    async def tick(self) -> TickReport | None:
        """Plan under the leader lock; None when another process is the leader."""
        now = self.clock()
        try:
            if not await asyncio.to_thread(self.leader.acquire, now):
                return None
            report = await asyncio.to_thread(self.planner.tick, now)
        except Exception as exc:
            self.last_tick_error = type(exc).__name__
            log.exception("scheduler tick failed; the next tick tries again")
            return None
        self.last_tick, self.last_tick_error = now, None
        return report

    async def run_job(self, job: PeriodicJob) -> None:
        now = self.clock()
        try:
            if job.leader_only and not await asyncio.to_thread(self.leader.acquire, now):
                return
            if inspect.iscoroutinefunction(job.run):
                await job.run(now)
            else:
                result = await asyncio.to_thread(job.run, now)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            log.exception("periodic job failed", extra={"job": job.name})

    async def health(self) -> dict[str, object]:
        database, backlog = "ok", None
        try:
            await asyncio.to_thread(self._ping)
            backlog = await asyncio.to_thread(self.dispatcher.pending_now, self.clock())
        except Exception:
            database = "unreachable"
        return {
            "status": "ok" if database == "ok" else "degraded",
            "database": database,
            "worker": self.worker_id,
            "scheduler": {
                "leader": self.leader.is_leader,
                "last_tick": self.last_tick.isoformat() if self.last_tick else None,
                "tick_error": self.last_tick_error,
            },
            "channels": sorted(self.channels),
            # Outbox rows due now or being sent (capped at 1000): a growing number means sends lag.
            "outbox_due": backlog,
        }

    def _ping(self) -> None:
        with self.app.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # Lifecycle --------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop taking new work (SIGTERM/SIGINT)."""
        if not self._stop.is_set():
            log.info("stopping: finishing in-flight sends")
        self._stop.set()
        self.dispatcher.stopping = True

    async def start(self, *, background: bool = True) -> None:
        for name, channel in list(self.channels.items()):
            try:
                await channel.start()
                self._started_channels.append(channel)
            except Exception:
                log.exception("channel failed to start; continuing without it", extra={"channel": name})
                self.channels.pop(name)
        if self.serve_web:
            await self._start_web()
        # The heartbeat tells other processes this one is alive, so they leave its claims alone.
        self._heartbeat_task = asyncio.create_task(self.dispatcher.heartbeat(self._stop), name="rapport-heartbeat")
        if background:
            self._start_scheduler()
            self._dispatch_task = asyncio.create_task(self.dispatcher.run(self._stop), name="rapport-dispatch")

    async def _start_web(self) -> None:
        routes = [route for channel in self.channels.values() for route in channel.routes()]
        dashboard = None
        if self.config.web.dashboard.enabled:
            from bot.dashboard import make_dashboard

            dashboard = make_dashboard(sessions=self.app.sessions, config=self.config, clock=self.clock)
        runner = web.AppRunner(make_web_app(routes=routes, health=self.health, dashboard=dashboard), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise WebServerError(self.host, self.port, exc.strerror or str(exc)) from None
        self._web = runner
        addresses = runner.addresses
        self.bound_port = int(addresses[0][1]) if addresses else self.port
        log.info("web server listening", extra={"host": self.host, "port": self.bound_port})

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        scheduler = AsyncIOScheduler(timezone=dt.UTC)
        first = dt.datetime.now(dt.UTC)
        scheduler.add_job(
            self.tick, "interval", seconds=self.config.scheduler.tick_seconds, id="rapport-tick",
            next_run_time=first, max_instances=1, coalesce=True, misfire_grace_time=self.config.scheduler.tick_seconds,
        )  # fmt: skip
        for job in self.jobs:
            scheduler.add_job(
                self.run_job, "interval", args=[job], seconds=job.seconds, id=f"job-{job.name}",
                next_run_time=first, max_instances=1, coalesce=True, misfire_grace_time=max(1, int(job.seconds)),
            )  # fmt: skip
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        self.request_stop()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._dispatch_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._dispatch_task), timeout=self.shutdown_grace)
            except TimeoutError:
                # Still-running sends keep their lease; another process (or the next start)
                # reclaims them once it expires.
                log.warning("in-flight sends did not finish in time; their rows stay claimed until the lease ends")
                self._dispatch_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._dispatch_task
            self._dispatch_task = None
        for channel in reversed(self._started_channels):
            try:
                await channel.stop()
            except Exception:
                log.exception("channel failed to stop cleanly", extra={"channel": channel.name})
        self._started_channels.clear()
        if self._web is not None:
            await self._web.cleanup()
            self._web = None
        await asyncio.to_thread(self.leader.release)
        if self._heartbeat_task is not None:
            await self._heartbeat_task
            self._heartbeat_task = None
            await asyncio.to_thread(forget, self.app.sessions, self.worker_id)
        log.info("stopped")

    async def serve(self) -> None:
        """Run until ``request_stop()``."""
        try:
            await self.start()
            await self._stop.wait()
        finally:
            await self.stop()

    async def run_until_idle(self, *, max_rounds: int = 10_000) -> None:
        """Tick, run each job once, and dispatch until nothing is due now; then stop (tests, CI, cron)."""
        try:
            await self.start(background=False)
            for _ in range(max_rounds):
                if self._stop.is_set():
                    break
                report = await self.tick()
                for job in self.jobs:
                    await self.run_job(job)
                handled = 0
                while not self._stop.is_set():
                    done = await self.dispatcher.dispatch_once()
                    handled += done.handled
                    if done.handled:
                        continue
                    if await asyncio.to_thread(self.dispatcher.pending_now, self.clock()) == 0:
                        break
                    await asyncio.sleep(self.idle_poll)  # claimed elsewhere: wait for it or its lease
                planned = report is not None and (report.invitations or report.reminders or report.expired)
                if not handled and not planned:
                    break
        finally:
            await self.stop()
