"""What Ray costs a multi-worker job: `tfspec launch --on ray` against `tfspec launch`.

The multi-worker example (examples/multi_worker.tfspec) on the same number of
workers, on this machine, alternately with and without Ray, in the same run. From
the timestamps of each job's output lines:

  start-up   from the command to the chief's "Epoch 1/E" line (Ray: its instance,
             the worker actors, TF_CONFIG; both: TensorFlow's import, the strategy)
  per epoch  from "Epoch 2/E" to the last epoch's summary line, over E-1 epochs (the
             first epoch traces the step functions; Ray: a ray.train.report barrier
             and a weights digest each epoch)
  wind-down  from the last epoch's line to the exit (saving; Ray: shutdown)

Ray's processes run in a loopback-only network namespace when one can be made
(as the tests do); `tfspec launch` runs there too, to compare like with like.

    .venv/bin/python benchmarks/ray_overhead.py [--workers 2] [--epochs 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from netns import NoNamespace, isolated  # noqa: E402


def timed_job(command: list[str], cwd: Path, epochs: int) -> dict[str, float]:
    """Run `command`; the seconds of its start-up, steady epochs and wind-down."""
    try:
        command = isolated(command)
    except NoNamespace as exc:
        print(f"(no network namespace: {exc})", file=sys.stderr)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    marks: dict[str, float] = {}
    summary = re.compile(r"^\[worker 0\] \d+/\d+ - .*loss: ")
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip("\n")
        now = time.monotonic() - start
        if line == f"[worker 0] Epoch 1/{epochs}":
            marks["first"] = now
        elif line == f"[worker 0] Epoch 2/{epochs}":
            marks["second"] = now
        elif summary.match(line):
            marks["last"] = now
    status = process.wait()
    total = time.monotonic() - start
    if status != 0 or len(marks) != 3:
        raise SystemExit(f"{' '.join(command)} failed ({status}); marks {marks}")
    return {"total": total, "start-up": marks["first"],
            "per epoch": (marks["last"] - marks["second"]) / (epochs - 1),
            "wind-down": total - marks["last"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tfspec-ray-bench-"))
    try:
        (folder / "data").mkdir()
        shutil.copy(ROOT / "examples" / "data" / "digits.npz", folder / "data")
        shutil.copy(ROOT / "examples" / "multi_worker.tfspec", folder / "job.tfspec")
        base = [sys.executable, "-m", "tfspec", "launch", "job.tfspec", "--workers",
                str(args.workers), "--set", f"epochs={args.epochs}"]
        results: dict[str, list[dict[str, float]]] = {"launch": [], "ray": []}
        for _ in range(args.repeats):  # alternately: the machine's load hits both alike
            results["launch"].append(timed_job(base, folder, args.epochs))
            results["ray"].append(timed_job([*base, "--on", "ray"], folder, args.epochs))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"multi-worker example, {args.workers} workers, {args.epochs} epochs, "
          f"median of {args.repeats} (seconds)")
    print(f"{'':12}{'launch':>10}{'--on ray':>10}{'ray - launch':>14}{'ratio':>8}")
    for key in ("total", "start-up", "per epoch", "wind-down"):
        local = statistics.median(r[key] for r in results["launch"])
        ray = statistics.median(r[key] for r in results["ray"])
        print(f"{key:12}{local:10.2f}{ray:10.2f}{ray - local:14.2f}{ray / local:8.2f}")


if __name__ == "__main__":
    main()
