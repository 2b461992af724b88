"""``rapport slack link`` against the loopback Slack fake (run in a thread of its own, since the
command runs its own event loop)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import ROOT
from tests.fakes.slack_api import FakeSlackAPI

runner = CliRunner()


@pytest.fixture
def slack_api() -> Iterator[FakeSlackAPI]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    api = FakeSlackAPI()
    asyncio.run_coroutine_threadsafe(api.__aenter__(), loop).result(timeout=10)
    try:
        yield api
    finally:
        asyncio.run_coroutine_threadsafe(api.__aexit__(None, None, None), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_slack_link_reports_who_was_not_found(
    db_url: str, tmp_path: Path, slack_api: FakeSlackAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["channels"]["slack"]["api_base_url"] = slack_api.base_url
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    roster = tmp_path / "people.csv"
    roster.write_text("id,name,email,programs\nada,Ada,ada@example.com,customers\nbo,Bo,bo@example.com,customers\n")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-test")
    slack_api.users_by_email["ada@example.com"] = "U0ADA"

    def cli(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["--config", str(config), "--database", db_url, *args])

    assert cli("people", "import", str(roster)).exit_code == 0
    result = cli("slack", "link")
    assert result.exit_code == 0, result.output
    assert "1 linked, 1 not found, 0 failed" in result.output
    assert "not found in Slack: bo" in result.output
    assert "xoxb-test" not in result.output

    monkeypatch.delenv("SLACK_BOT_TOKEN")
    off = cli("slack", "link")
    assert off.exit_code == 2
    assert "Slack channel is off" in off.output
