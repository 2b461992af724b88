"""``rapport run``: the service (see bot.runner and docs/deployment.md)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from bot.cli._app import app, build_app


@app.command()
def run(
    ctx: typer.Context,
    until_idle: Annotated[
        bool,
        typer.Option("--until-idle", help="Plan and send what is due now, then exit (for cron jobs, CI and tests)."),
    ] = False,
    port: Annotated[int | None, typer.Option(help="Overrides web.port (0 picks a free port).")] = None,
    no_web: Annotated[bool, typer.Option("--no-web", help="Do not start the web server.")] = False,
) -> None:
    """Run Rapport: schedule check-ins, send them, and receive answers on the configured channels."""
    import asyncio
    import gc
    import signal

    from bot.channels.base import use_engine_threads
    from bot.runner import Runner, load_channels

    application = build_app(ctx)
    if not until_idle:
        # Before any channel receives: the first answer must not wait for the model to load.
        application.load_model()
    log = logging.getLogger("bot.runner")
    channels, notes = load_channels(application)
    # Through logging only, once each: with logging.format json, stderr must stay all JSON.
    for note in notes:
        log.info("channel %s", note, extra={"channel": note.partition(":")[0]})
    if not channels:
        log.warning("no chat channel is on: Rapport schedules and keeps the outbox, and sends once a token is set")
    # Start-up's objects (modules, the model, templates) live as long as the process: leave them
    # out of every later garbage collection, which otherwise walks them all while someone waits
    # for a reply (a full collection took 18 ms in the burst benchmark's replies; 0.3 ms after).
    gc.collect()
    gc.freeze()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # People answering at once wait in these threads and share the model's encode calls.
        use_engine_threads(loop, application.config.conversation.concurrent_answers)
        runner = Runner(app=application, channels=channels, serve_web=not no_web, port=port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.request_stop)
        if until_idle:
            await runner.run_until_idle()
        else:
            await runner.serve()

    try:
        asyncio.run(main())
    finally:
        application.close()
