"""Start-up: ``rapport --help`` and the resident memory of ``rapport run`` per backend; print JSON.

    .venv/bin/python benchmarks/startup.py

* ``help``: the median wall time of ``rapport --help`` over 7 runs, against ``python -c pass`` and
  ``python -c "import typer"`` measured in the same run (the floor any typer CLI has), and the
  same command in the checkout ``RAPPORT_BASELINE_ROOT`` names, if set;
* ``run``: for each embedding backend (``default`` marks the one a plain install runs,
  onnx-int8), ``rapport run --no-web`` on an empty SQLite database and no chat tokens: its
  resident memory once started with the model not yet loaded (``idle_mb``, read when it logs
  ``loading the embedding model``), once the model is loaded (``loaded_mb``, at ``embedding model
  loaded``), and the seconds it took to load (``load_seconds``); onnx-int8 twice: with the
  exported model cached (every start after the first) and with an empty ``embeddings.cache_dir``
  (``first_start``: the one-time export in a child process, then the load).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def _wall(args: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _config(tmp: Path, backend: str, cache_dir: Path | None = None) -> Path:
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    text, n = re.subn(r"(?m)^  backend: \S+$", f"  backend: {backend}", text, count=1)
    assert n == 1, "config.yaml has no embeddings.backend line"
    if cache_dir is not None:
        text, n = re.subn(r"(?m)^  cache_dir:.*$", f"  cache_dir: {cache_dir}", text, count=1)
        assert n == 1, "config.yaml has no embeddings.cache_dir line"
    path = tmp / f"config-{backend}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_memory(backend: str, *, first_start: bool = False) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), backend, Path(tmp) / "onnx" if first_start else None)
        base = [PYTHON, "-m", "bot.cli", "--config", str(config), "--database", f"sqlite:///{tmp}/run.db"]
        subprocess.run([*base, "init"], cwd=ROOT, env=ENV, capture_output=True, check=True)
        args = [*base, "run", "--no-web"]
        proc = subprocess.Popen(args, cwd=ROOT, env=ENV, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        default = backend == _default_backend()
        out: dict[str, object] = {"backend": backend, "default": default, "first_start": first_start}
        started = time.perf_counter()
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                if "loading the embedding model" in line:
                    out["idle_mb"] = _rss_mb(proc.pid)
                    started = time.perf_counter()
                elif "embedding model loaded" in line:
                    out["loaded_mb"] = _rss_mb(proc.pid)
                    out["load_seconds"] = round(time.perf_counter() - started, 2)
                    break
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        return out


def _default_backend() -> str:
    sys.path.insert(0, str(ROOT))
    from bot.config import EmbeddingsConfig

    return EmbeddingsConfig().backend


def main() -> dict[str, object]:
    out: dict[str, object] = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    bare = _wall([PYTHON, "-c", "pass"])
    typer_only = _wall([PYTHON, "-c", "import typer"])
    # This checkout and, if RAPPORT_BASELINE_ROOT names one, another (e.g. before a change), in
    # turns so that both see the same load; each from its own folder (``-m`` looks there first).
    baseline = os.environ.get("RAPPORT_BASELINE_ROOT")
    trees = [str(ROOT), *([baseline] if baseline else [])]
    times: dict[str, list[float]] = {tree: [] for tree in trees}
    for _ in range(7):
        for tree in trees:
            started = time.perf_counter()
            subprocess.run([PYTHON, "-m", "bot.cli", "--help"], cwd=tree, env={**ENV, "PYTHONPATH": tree},
                           capture_output=True, check=True)  # fmt: skip
            times[tree].append(time.perf_counter() - started)
    help_s = statistics.median(times[str(ROOT)])
    out["help"] = {"seconds": round(help_s, 3), "python_pass_s": round(bare, 3), "import_typer_s": round(typer_only, 3),
                   "over_import_typer_s": round(help_s - typer_only, 3)}  # fmt: skip
    if baseline:
        out["help"]["baseline_seconds"] = round(statistics.median(times[baseline]), 3)  # type: ignore[index]
    out["run"] = [run_memory("onnx-int8"), run_memory("onnx-int8", first_start=True), run_memory("torch")]
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
