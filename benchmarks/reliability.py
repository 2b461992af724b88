"""The reliability harness: real ``rapport run`` processes against the loopback fakes of the
Telegram Bot API and the Slack Web API, killed with SIGKILL, faulted and rate-limited; print JSON.

    make reliability                                   # every scenario, full size (about 40 min)
    .venv/bin/python benchmarks/reliability.py --smoke # small sizes (CI's smoke check)
    .venv/bin/python benchmarks/reliability.py kills faults --db sqlite --people 300

Scenarios (each on SQLite and, with ``--postgres URL`` or ``RAPPORT_TEST_DATABASE_URL``, on
PostgreSQL; a fresh database each):

* ``kills``: a wave to ``--people`` Telegram chats whose fake people answer (they press a rating
  and type a reason), and ``--kills`` SIGKILLs of ``rapport run`` during it, each followed by a
  restart; in polling and in webhook mode. Figures: ``answers_lost`` (updates Telegram forgot —
  confirmed by an offset or answered 2xx — whose answer is not stored; target 0),
  ``invitations_duplicated`` and how many of them were outside the crash window (rows in flight
  at a kill, ``docs/deployment.md``; target 0), ``restart_to_everyone_invited_s`` after the last
  restart (target <= 60 s), and ``replies_missing`` (people whose rating was taken but who never
  got the next question).
* ``faults``: one process, ``--fault-rate`` of ``sendMessage`` calls answered 429 (retry_after
  1 s), 500, or delivered and answered 35 s late (beyond the 30-second send timeout). Figures:
  ``delivered_share`` (target 1.0), ``sent_before_retry_after`` (target 0), duplicates.
* ``wave``: ``--wave`` invitations against the fake enforcing Telegram's 30 messages a second
  overall (429 beyond it), once straight and once with a SIGKILL and restart in the middle.
  Figures: ``msg_per_s`` and its ratio to the limit (target >= 0.95), duplicates, lost, 429s.
* ``slack``: ``--slack-wave`` invitations on Slack against the fake enforcing about one message a
  second per conversation; the ratio is to ``scheduler.rate_per_second.slack``.
* ``hostile``: ``benchmarks/hostile.py`` on the same databases (0 tracebacks, 0 5xx).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.reliability_world import Service, World, database  # noqa: E402
from tests.fakes.slack_api import FakeSlackAPI  # noqa: E402
from tests.fakes.telegram_limits import FaultyTelegramAPI  # noqa: E402

SCENARIOS = ("kills", "faults", "wave", "slack", "hostile")
TELEGRAM_LIMIT = 30.0
SLACK_RATE = 10.0


async def wait_until(predicate: Callable[[], bool], timeout: float, every: float = 0.1) -> float | None:
    """Seconds until ``predicate()`` held, or None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        await asyncio.sleep(every)
    return None


def invited(api: FaultyTelegramAPI) -> Counter[int]:
    """Chat -> delivered invitations (messages with rating buttons, answered 200)."""
    return Counter(s.chat_id for s in api.sends if s.status == 200 and s.keyboard)


def duplicates(counts: Counter[Any], window: set[str]) -> dict[str, int]:
    twice = {str(chat) for chat, n in counts.items() if n > 1}
    return {"invitations_duplicated": len(twice), "outside_crash_window": len(twice - window)}


def early_sends(api: FaultyTelegramAPI) -> int:
    return sum(1 for s in api.sends if s.early)


async def settle(world: World, service: Service, api: FaultyTelegramAPI, timeout: float) -> float | None:
    """Wait until every person was invited and Telegram holds no update, and no answer came for
    five seconds (a person whose reply was lost never types the reason)."""
    seen = [-1, time.monotonic()]

    def done() -> bool:
        if len(api.consumed) != seen[0]:
            seen[:] = [len(api.consumed), time.monotonic()]
        quiet = time.monotonic() - seen[1] > 5.0
        return len(invited(api)) >= world.people and not api.pending_updates and quiet

    took = await wait_until(done, timeout, every=0.5)
    # Replies to the last answers go out, then SIGTERM (stopping drains what is in hand).
    await asyncio.sleep(2)
    service.stop()
    return took


async def kills(world: World, workdir: Path, n_kills: int, rng: random.Random) -> dict[str, Any]:
    async with FaultyTelegramAPI(token="123456:TEST-token") as api:
        world.api_url = api.base_url
        world.prepare(world.people)
        api.answer_as_people()
        if world.mode == "webhook":
            api.deliver_to_webhook()
        service = Service(world, workdir / f"service-{world.mode}.log")
        window: set[str] = set()
        first_send_after_restart: list[float] = []

        def quiet() -> bool:
            return len(invited(api)) >= world.people and not api.pending_updates

        try:
            service.start()
            for _ in range(n_kills):
                sent_before = len(api.sends)
                started = service.starts[-1]
                # Wait for this process to send, then let it work a random moment before killing it.
                sending = await wait_until(lambda: len(api.sends) > sent_before or quiet(), 60, every=0.05)  # noqa: B023
                if sending is not None and len(api.sends) > sent_before:
                    first_send_after_restart.append(time.monotonic() - started)
                await asyncio.sleep(rng.uniform(0.3, 2.5))
                service.kill()
                window |= await asyncio.to_thread(world.in_flight)
                service.start()
            last_restart = service.starts[-1]
            everyone = await wait_until(lambda: len(invited(api)) >= world.people, 300, every=0.1)
            recovered = None if everyone is None else time.monotonic() - last_restart
            settled = await settle(world, service, api, 120)
        finally:
            service.kill()
            if world.mode == "webhook":
                await api.stop_webhook_delivery()
        stored = await asyncio.to_thread(world.answers)
        lost = 0
        for update in api.consumed:
            if "callback_query" in update:
                chat, kind = update["callback_query"]["message"]["chat"]["id"], "rating"
            elif "message" in update:
                chat, kind = update["message"]["chat"]["id"], "text"
            else:
                continue
            lost += kind not in stored.get(str(chat), set())
        pressed = {u["callback_query"]["message"]["chat"]["id"] for u in api.consumed if "callback_query" in u}
        typed = {u["message"]["chat"]["id"] for u in api.consumed if "message" in u}
        return {
            "mode": world.mode,
            "people": world.people,
            "kills": n_kills,
            "invited": len(invited(api)),
            **duplicates(invited(api), window),
            "rows_in_flight_at_kills": len(window),
            "answers_taken_by_telegram": len(api.consumed),
            "answers_lost": lost,
            "replies_missing": len(pressed - typed),
            "restart_to_everyone_invited_s": None if recovered is None else round(recovered, 1),
            "start_to_first_send_s": spread(first_send_after_restart),
            "settled": settled is not None,
            "outbox": await asyncio.to_thread(world.outbox_statuses),
            "tracebacks": service.tracebacks(),
        }


async def faults(world: World, workdir: Path, rate: float) -> dict[str, Any]:
    async with FaultyTelegramAPI(token="123456:TEST-token") as api:
        world.api_url = api.base_url
        world.prepare(world.people)
        api.inject_faults(rate, retry_after=1, slow_seconds=35.0)
        service = Service(world, workdir / "service-faults.log")
        start = time.monotonic()
        try:
            service.start()

            def finished() -> bool:
                statuses = world.outbox_statuses()
                return statuses.get("pending", 0) + statuses.get("claimed", 0) == 0

            await wait_until(lambda: len(invited(api)) >= world.people, 600, every=0.5)
            # Rows answered late are "unknown" only after the 30-second timeout.
            await wait_until(finished, 120, every=1.0)
            seconds = time.monotonic() - start
            service.stop()
        finally:
            service.kill()
        outcomes = Counter(("delivered" if s.status == 200 and not s.late else
                            "late" if s.late else str(s.status)) for s in api.sends)  # fmt: skip
        return {
            "people": world.people,
            "fault_rate": rate,
            "send_requests": len(api.sends),
            "answered": dict(outcomes),
            "delivered_share": round(len(invited(api)) / world.people, 4),
            "sent_before_retry_after": early_sends(api),
            **duplicates(invited(api), set()),
            "outbox": await asyncio.to_thread(world.outbox_statuses),
            "seconds": round(seconds, 1),
            "tracebacks": service.tracebacks(),
        }


def spread(values: list[float]) -> dict[str, float] | None:
    ordered = sorted(values)
    return {"median": round(ordered[len(ordered) // 2], 1), "max": round(ordered[-1], 1)} if ordered else None


def stalls(times: list[float], over: float = 0.1) -> dict[str, Any]:
    """Pauses between two deliveries longer than ``over``: how many, their seconds, and where
    (the index of the delivery after each of the first ten)."""
    gaps = [(i + 1, b - a) for i, (a, b) in enumerate(itertools.pairwise(times)) if b - a > over]
    return {"count": len(gaps), "seconds": round(sum(g for _, g in gaps), 1),
            "of_total_s": round(times[-1] - times[0], 1) if times else 0.0,
            "at": [(i, round(g, 2)) for i, g in gaps[:10]]}  # fmt: skip


def rate_of(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


async def wave(world: World, workdir: Path, kill: bool) -> dict[str, Any]:
    async with FaultyTelegramAPI(token="123456:TEST-token") as api:
        world.api_url = api.base_url
        world.prepare(world.people)
        api.enforce_rate(TELEGRAM_LIMIT, retry_after=1)
        service = Service(world, workdir / f"service-wave-{int(kill)}.log")
        window: set[str] = set()
        killed_at = restarted = None
        try:
            service.start()
            if kill:
                await wait_until(lambda: len(invited(api)) >= world.people // 2, 3600, every=0.1)
                killed_at = time.monotonic()
                service.kill()
                window = await asyncio.to_thread(world.in_flight)
                service.start()
                restarted = time.monotonic()
            await wait_until(lambda: len(invited(api)) >= world.people, 3600, every=0.2)
            service.stop()
        finally:
            service.kill()
        delivered = sorted(s.at for s in api.sends if s.status == 200)
        result = {
            "people": world.people,
            "kill": kill,
            "msg_per_s": round(rate_of(delivered), 2),
            "limit": TELEGRAM_LIMIT,
            "ratio": round(rate_of(delivered) / TELEGRAM_LIMIT, 3),
            "answered_429": sum(1 for s in api.sends if s.status == 429),
            "sent_before_retry_after": early_sends(api),
            # Where the time went: pauses between two deliveries longer than 0.1 s (a full pace is 1/30 s).
            "stalls": stalls(delivered),
            "lost": world.people - len(invited(api)),
            **duplicates(invited(api), window),
            "outbox": await asyncio.to_thread(world.outbox_statuses),
            "tracebacks": service.tracebacks(),
        }
        if kill and killed_at is not None and restarted is not None:
            before = [t for t in delivered if t <= killed_at]
            after = [t for t in delivered if t >= restarted]
            result["msg_per_s_before_kill"] = round(rate_of(before), 2)
            result["msg_per_s_after_restart"] = round(rate_of(after), 2)
            result["rows_in_flight_at_kill"] = len(window)
            result["restart_to_first_send_s"] = round(after[0] - restarted, 1) if after else None
        return result


async def slack(world: World, workdir: Path) -> dict[str, Any]:
    async with FakeSlackAPI() as api:
        world.api_url = api.base_url
        world.prepare(world.people)
        api.enforce_pacing(1.0, retry_after=1)
        service = Service(world, workdir / "service-slack.log")
        try:
            service.start()
            await wait_until(lambda: len({p.channel for p in api.posts if p.status == 200}) >= world.people, 3600)
            service.stop()
        finally:
            service.kill()
        accepted = [p for p in api.posts if p.status == 200]
        per_conversation = Counter(p.channel for p in accepted)
        times = sorted(p.at for p in accepted)
        return {
            "people": world.people,
            "msg_per_s": round(rate_of(times), 2),
            "rate_per_second": SLACK_RATE,
            "ratio": round(rate_of(times) / SLACK_RATE, 3),
            "answered_429": sum(1 for p in api.posts if p.status == 429),
            "sent_before_retry_after": sum(1 for p in api.posts if p.early),
            "lost": world.people - len(per_conversation),
            "duplicated": sum(1 for n in per_conversation.values() if n > 1),
            "outbox": await asyncio.to_thread(world.outbox_statuses),
            "tracebacks": service.tracebacks(),
        }


def hostile(pg_url: str | None) -> Any:
    command = [sys.executable, str(ROOT / "benchmarks" / "hostile.py"), *([pg_url] if pg_url else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    try:
        runs = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"error": f"exit {done.returncode}", "stderr": done.stderr[-2000:]}
    return [{k: run.get(k) for k in ("backend", "requests", "http_5xx", "tracebacks", "unclear")} for run in runs]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    backends = ["sqlite", "postgresql"] if args.postgres else ["sqlite"]
    if args.db != "both":
        backends = [b for b in backends if b == args.db]
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "sizes": {"people": args.people, "kills": args.kills, "wave": args.wave, "slack_wave": args.slack_wave},
    }
    for name in args.scenarios or SCENARIOS:
        if name == "hostile":
            results["hostile"] = await asyncio.to_thread(hostile, args.postgres if "postgresql" in backends else None)
            continue
        for backend in backends:
            for variant in _variants(name):
                with (
                    tempfile.TemporaryDirectory(prefix="rapport-rel-") as tmp,
                    database(backend, Path(tmp), args.postgres) as url,
                ):
                    workdir = Path(tmp)
                    print(f"{name} {variant} on {backend} ...", file=sys.stderr, flush=True)
                    outcome = await _scenario(name, variant, url, workdir, args, rng)
                    outcome["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
                    results.setdefault(name, {})[f"{backend}:{variant}"] = outcome
    return results


def _variants(name: str) -> tuple[str, ...]:
    return {"kills": ("polling", "webhook"), "wave": ("straight", "kill")}.get(name, ("once",))


async def _scenario(name: str, variant: str, url: str, workdir: Path, args: argparse.Namespace,
                    rng: random.Random) -> dict[str, Any]:  # fmt: skip
    if name == "kills":
        world = World(workdir=workdir, db_url=url, mode=variant, people=args.people,
                      scheduler={"rate_per_second": {"telegram": TELEGRAM_LIMIT}})  # fmt: skip
        return await kills(world, workdir, args.kills, rng)
    if name == "faults":
        world = World(workdir=workdir, db_url=url, people=args.people,
                      scheduler={"retry_base_seconds": 5, "rate_per_second": {"telegram": TELEGRAM_LIMIT}})  # fmt: skip
        return await faults(world, workdir, args.fault_rate)
    if name == "wave":
        world = World(workdir=workdir, db_url=url, people=args.wave,
                      scheduler={"rate_per_second": {"telegram": TELEGRAM_LIMIT}})  # fmt: skip
        return await wave(world, workdir, kill=variant == "kill")
    world = World(workdir=workdir, db_url=url, channel="slack", people=args.slack_wave,
                  scheduler={"rate_per_second": {"slack": SLACK_RATE}})  # fmt: skip
    return await slack(world, workdir)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--smoke", action="store_true", help="small sizes: a quick check that it all runs")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres", default=os.environ.get("RAPPORT_TEST_DATABASE_URL"))
    parser.add_argument("--people", type=int, default=600)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--wave", type=int, default=10_000)
    parser.add_argument("--slack-wave", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    if args.smoke:
        args.people, args.kills, args.wave, args.slack_wave = 20, 2, 60, 20
    return args


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(parse(sys.argv[1:]))), indent=2))
