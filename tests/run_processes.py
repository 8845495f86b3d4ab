"""`tfspec run` in real processes, for the tests that kill one and resume it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCH_HEADER = re.compile(r"^Epoch (\d+)/(\d+)$")
EPOCH_SUMMARY = re.compile(r"^\d+/\d+ - .*\bloss: ")  # verbose=2: one line per epoch


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("TFSPEC_DEBUG", None)
    return env


def tfspec_run(spec: Path, *args: str) -> list[str]:
    """`tfspec run SPEC ARGS…` (`--set`, `--run-dir`)."""
    return [sys.executable, "-m", "tfspec", "run", str(spec), *args]


def run_to_completion(spec: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(tfspec_run(spec, *args), cwd=spec.parent, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)


def run_and_kill(spec: Path, at_epoch: int, *args: str) -> list[str]:
    """Start `tfspec run` (with `args`), SIGKILL it when it begins epoch `at_epoch`;
    returns every line it printed (its stderr is kept in killed.stderr beside the spec)."""
    with open(spec.parent / "killed.stderr", "w") as stderr:
        process = subprocess.Popen(tfspec_run(spec, *args), cwd=spec.parent,
                                   env=subprocess_env(),
                                   stdout=subprocess.PIPE, stderr=stderr, text=True)
    watchdog = threading.Timer(300, process.kill)  # never hang the test session
    watchdog.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(f"Epoch {at_epoch}/"):
                process.send_signal(signal.SIGKILL)
                break
        lines += process.stdout.read().splitlines()
        process.wait()
    finally:
        watchdog.cancel()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL, (lines, (spec.parent / "killed.stderr")
                                                   .read_text())
    return lines


def all_succeed(processes: list[subprocess.Popen], timeout: float = 240) -> list[str]:
    """Wait for processes started together (one job's workers); each must exit 0.
    Returns their outputs; none is left running, whatever happens."""
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    finally:
        for p in processes:
            p.kill()
    for p, out in zip(processes, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
    return outputs
