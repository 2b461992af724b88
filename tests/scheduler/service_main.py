"""The real service (``bot.runner.Runner``) with a file-recording fake channel, for process tests.

    python -m tests.scheduler.service_main --config CFG --database URL --record FILE [--delay S]
        [--clock ISO --epoch SECONDS]

It builds the real App (with the hashing embedder, to start fast) and runs until idle, exactly
like ``rapport run --until-idle``, but every Telegram send is appended to FILE (after ``delay``
seconds of "API work") instead of going to Telegram. Tests kill it with SIGKILL mid-dispatch.

``--clock ISO --epoch SECONDS`` pins the service's clock: it reads ``ISO`` at wall-clock time
``SECONDS`` (``time.time()``) and runs on from there, so a test's outcome never depends on the day
it runs, and processes started one after another share one timeline.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import time
from pathlib import Path

from bot import logs
from bot.app import build
from bot.config import load_config
from bot.runner import Runner
from tests.fakes.channel import FileRecordingChannel
from tests.fakes.embedder import HashingEmbedder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--clock", type=dt.datetime.fromisoformat)
    parser.add_argument("--epoch", type=float)
    args = parser.parse_args()
    start, epoch = args.clock, args.epoch

    def clock() -> dt.datetime:
        if start is None or epoch is None:
            return dt.datetime.now(dt.UTC)
        return start + dt.timedelta(seconds=time.time() - epoch)

    config = load_config(args.config)
    logs.setup("INFO", "json")
    app = build(config, embedder=HashingEmbedder(), database_url=args.database, migrate=True)
    channel = FileRecordingChannel(path=Path(args.record), delay=args.delay)

    async def run() -> None:
        runner = Runner(app=app, channels={"telegram": channel}, serve_web=False, clock=clock)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.request_stop)
        await runner.run_until_idle()

    try:
        asyncio.run(run())
    finally:
        app.close()


if __name__ == "__main__":
    main()
