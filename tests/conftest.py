"""Shared fixtures.

* ``db_url``: every test that uses it runs on SQLite, and again on PostgreSQL when
  ``RAPPORT_TEST_DATABASE_URL`` is set (``.ci/run`` sets it). Each PostgreSQL test gets a schema
  of its own, so runs can share one database.
* ``embedder``: the real all-MiniLM-L6-v2 on the default backend of ``config.yaml`` (onnx-int8),
  loaded once per session (mark such tests ``model``); every test whose outcome depends on the
  model runs on what a plain install runs. ``torch_embedder``: the same model on torch, for the
  parity tests and the torch backend's own tests.
* ``make_app``: the real composition root on that database.
* ``shared_data``: ``../shared/data`` (or ``$RAPPORT_SHARED_DATA``), or a skip when it is absent.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bot.app import App, build, make_embedder
from bot.config import Config, load_config
from memory.embeddings import Embedder, SentenceTransformerEmbedder, preload
from tests.fakes.embedder import HashingEmbedder

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# RAPPORT_SHARED_DATA points elsewhere (a git worktree one level deeper, say).
SHARED_DATA = Path(os.environ.get("RAPPORT_SHARED_DATA") or ROOT.parent / "shared" / "data")
PG_URL = os.environ.get("RAPPORT_TEST_DATABASE_URL")

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _backends() -> list[Any]:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        # The file exists, as after `rapport init`: commands refuse a SQLite path that does not.
        (tmp_path / "rapport.db").touch()
        yield f"sqlite:///{tmp_path / 'rapport.db'}"
        return
    if not PG_URL:
        pytest.skip("RAPPORT_TEST_DATABASE_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The backend ``config.yaml`` names (the default), without the batching layer."""
    built = make_embedder(load_config(ROOT / "config.yaml"))
    model: Embedder = getattr(built, "inner", built)
    preload(model)
    return model


@pytest.fixture(scope="session")
def torch_embedder() -> SentenceTransformerEmbedder:
    model = SentenceTransformerEmbedder()
    model.load()
    return model


@pytest.fixture
def fake_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def config() -> Config:
    return load_config(ROOT / "config.yaml")


@pytest.fixture
def make_app(db_url: str, config: Config, request: pytest.FixtureRequest) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def factory(*, real_model: bool = False, config_override: Config | None = None) -> App:
        embedder = request.getfixturevalue("embedder") if real_model else HashingEmbedder()
        app = build(config_override or config, embedder=embedder, database_url=db_url, migrate=True)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
