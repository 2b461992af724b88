"""What `rapport run` does before it serves: the model is loaded (outside any transaction), and
answers get worker threads sized for people waiting together, not Python's default six."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml
from numpy.typing import NDArray
from typer.testing import CliRunner

import bot.app
from bot.cli import app as cli
from bot.config import Config
from bot.runner import Runner
from memory.batching import BatchingEmbedder
from tests.conftest import ROOT
from tests.fakes.embedder import HashingEmbedder

TOKENS = ("TELEGRAM_BOT_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")


class LazyModel(HashingEmbedder):
    """Loads on ``load()`` (as the real backends do); records what was open when it loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded = False

    def load(self) -> object:
        self.loaded = True
        return self

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.loaded = True  # a lazy load inside an answer
        return super().encode(texts)


def run(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, object]:
    for name in TOKENS:
        monkeypatch.delenv(name, raising=False)
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["conversation"]["concurrent_answers"] = 40
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    model = LazyModel()
    seen: dict[str, object] = {}

    def make_embedder(config: Config) -> BatchingEmbedder:
        return BatchingEmbedder(model)

    async def serve(self: Runner) -> None:
        seen["loaded_before_serving"] = model.loaded
        # 30 answers waiting at once, each in its own thread (Python's default executor has six
        # threads on two cores: the barrier would never fill).
        barrier = threading.Barrier(30, timeout=10)
        await asyncio.gather(*(asyncio.to_thread(barrier.wait) for _ in range(30)))
        seen["threads_for_waiting_answers"] = True

    monkeypatch.setattr(bot.app, "make_embedder", make_embedder)
    monkeypatch.setattr(Runner, "serve", serve)
    result = CliRunner().invoke(cli, ["--config", str(path), "--database", db_url, "run", "--no-web", *args])
    assert result.exit_code == 0, result.output
    seen["loaded_after"] = model.loaded
    return seen


def test_run_loads_the_model_before_serving(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = run(tmp_path, db_url, monkeypatch)
    assert seen["loaded_before_serving"] is True
    assert seen["threads_for_waiting_answers"] is True


def test_run_until_idle_leaves_the_model_to_the_first_answer(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cron-style run (plan, send, exit) usually embeds nothing: it does not pay for the load."""
    for name in TOKENS:
        monkeypatch.delenv(name, raising=False)
    model = LazyModel()
    monkeypatch.setattr(bot.app, "make_embedder", lambda config: BatchingEmbedder(model))
    result = CliRunner().invoke(cli, ["--config", str(ROOT / "config.yaml"), "--database", db_url, "run",
                                      "--until-idle", "--no-web"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert model.loaded is False
