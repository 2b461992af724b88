"""``rapport demo`` (README command 1): Rapport on its embedded defaults, showing the product.

It makes a demo database (SQLite, no tokens) with a small history (``bot/data/demo_*.csv``:
Dana and Lee answered six months ago), opens Dana's web check-in and starts the service (web
server, scheduler, outbox). It prints two links: Dana's check-in page (answer with a lower score
and a new reason, and the follow-up quotes what she said then) and a one-time login to the owners'
dashboard. With a terminal it serves until Ctrl-C. Without one (CI) it answers Dana's check-in
over HTTP against the running service, prints the conversation, and exits 0.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli._app import app, load, stdin_is_tty, utcnow

if TYPE_CHECKING:
    from bot.app import App

DEMO_PERSON, DEMO_OWNER, DEMO_PROGRAM = "demo-dana", "alex@example.com", "customers"
#: Dana's scripted answers: a lower score, a new reason (which moves her view: a follow-up), why.
SCRIPT = (
    ("rating", "4"),
    ("text", "Support now takes days to reply, and the last two releases broke our exports."),
    ("text", "We moved to a new account manager and nobody picked up our tickets for a while."),
)
_FIELD = re.compile(r'name="(nonce|csrf)" value="([^"]+)"')
_LINE = re.compile(r'<li class="(bot|you)">(.*?)</li>', re.S)


@app.command()
def demo(
    ctx: typer.Context,
    database: Annotated[
        str, typer.Option(help="Where the demo keeps its data (recreated each run).")
    ] = "sqlite:///data/demo.db",
    port: Annotated[
        int | None,
        typer.Option(help="Overrides web.port (0 picks a free port; the default without a terminal)."),
    ] = None,
) -> None:
    """Set up a demo (SQLite, no tokens), start the service and print a check-in link and a dashboard link."""
    import asyncio

    from bot import logs
    from bot.app import build
    from bot.cli.people import seed_demo

    if database.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(database.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    config = load(ctx)
    logs.setup("ERROR", config.logging.format)  # a demo prints its own story; warnings go to a real run
    typer.echo("Setting up the demo: Dana and Lee answered their customer check-in six months ago.")
    application = build(config, database_url=database, migrate=True)
    try:
        if not application.model_exported():
            typer.echo("Preparing the embedding model, once (about half a minute; `make install` does it ahead).")
        # Now, so Dana's first answer does not wait for the model.
        application.load_model()
        now = utcnow()
        seed_demo(application, now)
        application.service.start(person_ref=DEMO_PERSON, program=DEMO_PROGRAM, channel="web", now=now)
        typer.echo("Dana's answer then: 9/10, “Support answered within an hour and onboarding was smooth.”")
        interactive = stdin_is_tty()
        # Without a terminal (CI) a free port: nothing else on the machine can be in the way.
        ok = asyncio.run(_serve(application, port if port is not None or interactive else 0, interactive=interactive))
        _summary(application, database)
    finally:
        application.close()
    if not ok:
        raise typer.Exit(1)


async def _serve(application: App, port: int | None, *, interactive: bool) -> bool:
    import asyncio
    import signal

    from bot.channels.web import WebChannel
    from bot.runner import Runner, load_channels

    channels, _notes = load_channels(application)
    web_channel = channels.get("web")
    if not isinstance(web_channel, WebChannel):
        typer.echo("the demo needs the web channel (channels.web.enabled and a program listing web)", err=True)
        return False
    runner = Runner(app=application, channels=channels, port=port)
    await runner.start(background=interactive)
    try:
        host = application.config.web.host
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{runner.bound_port}"  # noqa: S104
        web_channel.base = base
        checkin, dashboard = await asyncio.to_thread(_links, application, web_channel, base)
        typer.echo("\nRapport is running (SQLite, no tokens). Open:")
        typer.echo(f"  Dana's check-in:       {checkin}")
        typer.echo(f"  The owners' dashboard: {dashboard}  (one use, as {DEMO_OWNER})")
        typer.echo(f"E-mailed invitations are written to {application.config.channels.web.directory}/ (no SMTP set).")
        if interactive:
            typer.echo("\nAnswer as Dana would today: try a lower score and a new reason. Ctrl-C stops.")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            typer.echo("\nStopping.")
            return True
        typer.echo("\nNo terminal attached, so Dana's check-in is answered over HTTP by a script:\n")
        return await scripted_checkin(checkin)
    finally:
        runner.request_stop()
        await runner.stop()


def _summary(application: App, database: str) -> None:
    from bot.cli.core import demo_history_command, history_data

    # The demo keeps its own database, so the hint names it.
    typer.echo(f"\nWhat the memory now holds ({demo_history_command(database)}):")
    for c in history_data(application, DEMO_PERSON)["checkins"]:
        rating = next((a["rating"] for a in c["answers"] if a["rating"] is not None), None)
        typer.echo(f"  {c['started_at'][:10]}: rating {rating}, follow-ups {len(c['followups'])}")
        for f in c["followups"]:
            typer.echo(f"    why asked: {'; '.join(r['text'] for r in f['reasons'])}")


def _links(application: App, web_channel: object, base: str) -> tuple[str, str]:
    from bot.channels.web import WebChannel
    from bot.dashboard import auth
    from memory import store
    from memory.db import transaction

    assert isinstance(web_channel, WebChannel)
    now = utcnow()
    ttl = dt.timedelta(minutes=application.config.web.dashboard.login_link_minutes)
    with transaction(application.sessions) as s:
        person = store.require_person(s, DEMO_PERSON)
        closes = store.open_checkins(s, person.id)[0].expires_at
        checkin = web_channel.link_for(person.id, closes)
        token = auth.make_login_token(s, owner_key=DEMO_OWNER, now=now, ttl=ttl)
    return checkin, f"{base}/dashboard/login/link?token={token}"


def conversation(page: str) -> list[tuple[str, str]]:
    """The page's conversation as (who, text), for printing."""
    return [
        (
            who,
            html.unescape(
                re.sub(r"<[^>]+>", "", re.sub(r'<span class="visually-hidden">.*?</span>', "", text))
            ).strip(),
        )
        for who, text in _LINE.findall(page)
    ]


async def scripted_checkin(link: str) -> bool:
    """Answer the check-in at ``link`` as a browser would (GET, then POST each answer); True when a
    follow-up quoted Dana's earlier words and the check-in completed."""
    import aiohttp

    heard: list[str] = []

    def show(page: str, *, after_answer: bool) -> None:
        lines = conversation(page)
        yours = [i for i, (who, _) in enumerate(lines) if who == "you"]
        for who, text in lines[yours[-1] + 1 if after_answer and yours else 0 :]:
            if who == "bot":
                heard.append(text)
                typer.echo(f"rapport> {text}")

    jar = aiohttp.CookieJar(unsafe=True)  # the demo serves on an IP address
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=120)) as http:
        async with http.get(link) as response:
            page = await response.text()
            if response.status != 200:
                typer.echo(f"GET {link} answered {response.status}", err=True)
                return False
        show(page, after_answer=False)
        for field, value in SCRIPT:
            typer.echo(f"Dana> {value}")
            data = {**dict(_FIELD.findall(page)), field: value}
            async with http.post(link, data=data) as response:  # follows the redirect back to the page
                page = await response.text()
                if response.status != 200:
                    typer.echo(f"POST {link} answered {response.status}", err=True)
                    return False
            show(page, after_answer=True)
    quoted = any("Support answered within an hour" in text for text in heard)
    finished = "That is all for now" in page
    typer.echo(f"\nfollow-up quoted her earlier words: {'yes' if quoted else 'no'}; check-in completed: "
               f"{'yes' if finished else 'no'}")  # fmt: skip
    return quoted and finished
