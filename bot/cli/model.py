"""``rapport model prepare``: get the embedding model ready before the service first starts.

With the default backend (``onnx-int8``) the model is exported once to ONNX into
``embeddings.cache_dir``; ``rapport run`` would otherwise do it at its first start. ``make install``
runs this, and a deployment can run it while building its image (docs/deployment.md).
"""

from __future__ import annotations

import time

import typer

from bot.cli._app import app, load

model_app = typer.Typer(help="The embedding model: get it ready ahead of the first start.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("prepare")
def prepare(ctx: typer.Context) -> None:
    """Export the model for the configured backend (once; a no-op when it is ready) and load it."""
    from bot.app import make_embedder
    from memory.embeddings import preload

    config = load(ctx)
    embedder = make_embedder(config)
    inner = getattr(embedder, "inner", embedder)
    where = getattr(inner, "onnx_path", None)
    started = time.perf_counter()
    preload(embedder)
    seconds = time.perf_counter() - started
    backend = config.embeddings.backend
    typer.echo(f"embedding model ready: {backend}, {embedder.model_id}, {seconds:.1f} s")
    if callable(where):
        typer.echo(f"  exported model: {where()}")
