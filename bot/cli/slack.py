"""``rapport slack``: Slack set-up helpers (the channel itself runs in ``rapport run``)."""

from __future__ import annotations

import typer

from bot.cli._app import app, build_app, fail

slack_app = typer.Typer(help="Slack: link the roster to Slack users.", no_args_is_help=True)
app.add_typer(slack_app, name="slack")


@slack_app.command("link")
def link(ctx: typer.Context) -> None:
    """Link roster entries that have an e-mail to their Slack users (users.lookupByEmail), and list
    who was not found or could not be looked up. Rapport also does this whenever it starts."""
    import asyncio

    from bot.app import build_channels
    from bot.channels.slack import SlackChannel

    application = build_app(ctx)
    try:
        channels, notes = build_channels(application)
        channel = channels.get("slack")
        if not isinstance(channel, SlackChannel):
            note = next((n for n in notes if n.startswith("slack: off")), "slack: off")
            fail("the Slack channel is off" + note.removeprefix("slack: off"), 2)
        report = asyncio.run(channel.link_people())
    finally:
        application.close()
    typer.echo(f"slack: {len(report.linked)} linked, {len(report.not_found)} not found, {len(report.failed)} failed")
    for key in report.not_found:
        typer.echo(f"  not found in Slack: {key}", err=True)
    for key, error in report.failed.items():
        typer.echo(f"  lookup failed for {key}: {error}", err=True)
    if report.failed and not report.linked:
        raise typer.Exit(1)
