"""Run every benchmark and print one JSON object: {"benchmark name": its JSON output, ...}.

    make bench                     # or: .venv/bin/python benchmarks/run.py [name ...]
    .venv/bin/python benchmarks/run.py --full embeddings   # full sizes, where a benchmark has them

Each benchmark is a script of its own that prints JSON; this runs them one after another (so
they do not compete for the CPU) and collects the results with the machine they ran on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "evaluate_changes", "scheduler", "telegram_send", "slack_ack", "digests", "write_lock",
    "embeddings", "digests_scale", "throughput", "hostile", "encryption", "burst",
)  # fmt: skip


def main(names: list[str]) -> int:
    results: dict[str, object] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    failed = False
    full = ["--full"] if "--full" in names else []
    names = [n for n in names if n != "--full"]
    for name in names or BENCHMARKS:
        command = [sys.executable, str(HERE / f"{name}.py"), *full]
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        try:
            results[name] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            results[name] = {"error": f"exit {proc.returncode}", "stderr": proc.stderr[-2000:]}
            failed = True
        print(f"{name}: done", file=sys.stderr)
    print(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
