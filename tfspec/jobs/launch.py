"""`tfspec launch FILE --workers N`: multi-worker training on one machine.

Starts N processes of `tfspec run` — the same program on every worker — each
with a TF_CONFIG naming the cluster (127.0.0.1 ports) and its own index, streams
their output with a `[worker i]` prefix, and stops them all as soon as one
fails. On a real cluster the same job runs with one TF_CONFIG per host (see
docs/run.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..lang.diagnostics import Diagnostics, SpecError
from ..lang.validate import Result, parse_override, validate_file


def free_ports(count: int) -> list[int]:
    """Ports the OS says are free on 127.0.0.1 (held open together, so distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def stream_output(label: int | str, process: subprocess.Popen, lock: threading.Lock) -> None:
    """Copy a process's output to stdout line by line, after `[worker i]` (an int
    label) or `[label]` (`tfspec tune --workers` names its chief so)."""
    assert process.stdout is not None
    prefix = f"[worker {label}] " if isinstance(label, int) else f"[{label}] "
    for line in process.stdout:
        with lock:
            sys.stdout.write(prefix + line)
            sys.stdout.flush()


def multi_worker_spec(spec: str, sets: list[str], allow_modules: list[str]) -> Result:
    """The checked spec, which must use `multi_worker_mirrored` (SpecError if not)."""
    overrides = dict(parse_override(pair) for pair in sets)
    result = validate_file(spec, overrides, tuple(allow_modules))  # once, not per worker
    if not result.ok or result.ir is None:
        raise SpecError(result.diagnostics, result.source)
    strategy = (result.ir.get("distribute") or {}).get("strategy")
    if strategy != "multi_worker_mirrored":
        diags = Diagnostics(result.file)
        diags.add("E503", "`tfspec launch` runs `multi_worker_mirrored` specs. Received: "
                  f"strategy = \"{strategy or 'default'}\"",
                  result.positions.value("/distribute/strategy") or result.positions.value(""),
                  hint='write `distribute { strategy = "multi_worker_mirrored" }`, or use '
                       "`tfspec run`")
        raise SpecError(diags, result.source)
    return result


def launch(spec: str, workers: int, sets: list[str], allow_modules: list[str]) -> int:
    """Run `spec` on `workers` local processes; returns the exit status."""
    result = multi_worker_spec(spec, sets, allow_modules)
    if workers < 1:
        print("tfspec: error: --workers must be at least 1", file=sys.stderr)
        return 1
    name = result.ir.get("name") or result.ir["model"]["name"]
    run_dir = Path(spec).resolve().parent / "runs" / name / time.strftime("%Y%m%d-%H%M%S")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(workers)]}
    command = [sys.executable, "-m", "tfspec", "run", spec, "--run-dir", str(run_dir)]
    for pair in sets:
        command += ["--set", pair]
    for module in allow_modules:
        command += ["--allow-module", module]
    lock = threading.Lock()
    processes, threads = [], []
    for index in range(workers):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config),
               "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, env=env)
        processes.append(process)
        thread = threading.Thread(target=stream_output, args=(index, process, lock), daemon=True)
        thread.start()
        threads.append(thread)
    status = 0
    try:
        while any(p.poll() is None for p in processes):
            failed = [p for p in processes if p.poll() not in (None, 0)]
            if failed:
                status = failed[0].returncode
                for p in processes:  # one worker down: the collective ops would hang
                    if p.poll() is None:
                        p.terminate()
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        for p in processes:
            p.terminate()
        status = 130
    for p in processes:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    for thread in threads:
        thread.join(timeout=5)
    status = status or next((p.returncode for p in processes if p.returncode), 0)
    print(f"{'run directory' if status == 0 else 'failed'}: {run_dir}", file=sys.stderr)
    return status
