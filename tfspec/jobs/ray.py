"""`tfspec launch FILE --on ray`: the multi-worker job on Ray Train workers.

Ray Train's `TensorflowTrainer` starts N workers (each with its CPUs and GPUs), sets
each one's TF_CONFIG for MultiWorkerMirroredStrategy, and runs `ray_worker.train_loop`
there: the spec's compiled program, as `tfspec launch` runs it on local processes
(its custom loop: Keras 3's `fit` fails under MultiWorkerMirrored, ray#47464). Every
worker reports each epoch's metrics with `ray.train.report`; the Ray Train controller
writes them to `RUN_DIR/ray_reports.jsonl` (one line per epoch, every worker's
metrics), with the failures it saw.

With `--max-failures K` Ray restarts the worker group after a worker dies, up to K
times, and training resumes from the program's checkpoint of the last finished
epoch (every worker restores the chief's), which holds the model, the optimizer, the
epoch and the random layers' state: the resumed run ends with the weights an
uninterrupted one would have. The spec's folder (its data, the `runs/` folder with
the checkpoints and the run directory) must be on storage every Ray node mounts at
the same path; Ray's own run state goes in `RUN_DIR/ray/`.

Without `--address` a Ray instance is started for the job (node address 127.0.0.1,
no dashboard, no usage statistics) and stopped after it; with one, the job joins
that cluster (`ray start --head`, or a KubeRay head service): docs/cluster.md.
"""

from __future__ import annotations

import importlib.util
import io
import ipaddress
import json
import math
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..lang.diagnostics import TfspecError
from ..lang.validate import parse_override
from .build import diverted, quiet_tensorflow
from .launch import multi_worker_spec
from .runner import new_run_dir

INSTALL_RAY = 'pip install "tfspec[ray]"'
# Set before Ray is imported (it reads them then), and passed to the processes a
# local instance starts: no usage statistics sent, the workers' lines printed as they
# come (not deduplicated across workers, not behind Ray's "(pid=…)" prefix: they
# carry "[worker i]"), no second copy of each print through Ray Train's logger.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    "RAY_DISABLE_WORKER_LOG_PREFIX": "1",
    "RAY_COLOR_PREFIX": "0",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
}
# Ray Train's controller polls its workers every 2 s by default, and
# `ray.train.report` waits for the poll: ~2 s an epoch, and as much again to start and
# to stop. Polled every 0.2 s a report takes ~50 ms (measured: a job of 6 reports,
# 20 s -> 7 s). Ray passes the variable on to the controller; a value the user set
# is kept.
HEALTH_CHECK_INTERVAL = ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
# The workers' environment (on a cluster too, through the job's runtime_env)
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
              "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
# How long joining a cluster may take before the address is said to be unreachable
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RayOptions:
    """`--workers`, `--address`, `--cpus-per-worker`, `--gpus-per-worker`, `--max-failures`."""

    workers: int
    address: str | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 0


class RayJobError(TfspecError):
    """The job cannot start or run on Ray: one line, said as `tfspec: error: …`."""


def launch_on_ray(spec: str, options: RayOptions, sets: list[str],
                  allow_modules: list[str]) -> int:
    """Run `spec` on Ray Train workers; returns the exit status. Raises SpecError for
    a spec that cannot be launched, RayJobError (one line) for a job Ray cannot start."""
    return _launch(spec, options, sets, allow_modules)


def _launch(spec: str, options: RayOptions, sets: list[str], allow_modules: list[str]) -> int:
    if importlib.util.find_spec("ray") is None:
        raise RayJobError(f"`--on ray` needs Ray Train (ray is not installed): {INSTALL_RAY}")
    _check(options)
    result = multi_worker_spec(spec, sets, allow_modules)
    if options.address:
        reachable(options.address)
    os.environ.update(RAY_ENV)
    os.environ.setdefault(*HEALTH_CHECK_INTERVAL)
    quiet_tensorflow()  # ray.train.tensorflow imports it: without its start-up chatter
    name = result.ir.get("name") or result.ir["model"]["name"]
    run_dir = new_run_dir(Path(spec).resolve().parent / "runs" / name)
    output = WorkerLines(sys.stdout, run_dir / "ray.log")
    started = False
    try:
        # from here Ray's messages go to ray.log (its loggers keep the stream they saw)
        with output.installed():
            try:
                import ray
                from ray.train.tensorflow import TensorflowTrainer  # noqa: F401
            except ImportError as exc:
                raise RayJobError(f"`--on ray` needs Ray Train ({exc}): {INSTALL_RAY}") from None
            started = _start_ray(ray, options)
            _require_resources(ray, options)
            failure = _fit(spec, options, sets, allow_modules, run_dir)
            output.drain()
    finally:
        if started:
            ray.shutdown()
        output.close()
    status = 0 if failure is None else _failed(failure)
    if status == 0:
        _say_sync(run_dir / "ray_reports.jsonl", options.workers)
    print(f"{'run directory' if status == 0 else 'failed'}: {run_dir}", file=sys.stderr)
    return status


def _check(options: RayOptions) -> None:
    if options.workers < 1:
        raise RayJobError("--workers must be at least 1")
    if options.cpus_per_worker <= 0 or options.gpus_per_worker < 0:
        raise RayJobError("--cpus-per-worker must be more than 0, --gpus-per-worker 0 or more")
    if options.max_failures < -1:
        raise RayJobError("--max-failures must be 0 or more (-1: no limit)")


def reachable(address: str) -> None:
    """Raise RayJobError at once when nothing answers at a cluster's `host:port` (or
    `ray://host:port`), rather than let Ray retry for a minute. "auto" is left to Ray."""
    if address == "auto":
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise RayJobError(f"--address {address}: expected HOST:PORT of the Ray head node "
                          "(`ray start --head` prints it), or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise RayJobError(f"cannot reach the Ray cluster at {address} ({reason}): start one "
                          "with `ray start --head`, or leave out --address to start Ray for "
                          "this job") from None


def _loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rpartition(":")[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def _start_ray(ray: Any, options: RayOptions) -> bool:
    """Join the cluster at --address, or start a local instance; True when started."""
    env = {"env_vars": {**WORKER_ENV}}
    if options.address:
        # a head on this machine's loopback (`ray start --head --node-ip-address=127.0.0.1`):
        # this driver's node is that one; elsewhere Ray finds the node's address
        local = {"_node_ip_address": "127.0.0.1"} if _loopback(options.address) else {}
        try:
            ray.init(address=options.address, runtime_env=env, logging_level="WARNING",
                     log_to_driver=True, **local)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            # Ray's reason is in the cause (a missing auth token: `ray get-auth-token`)
            reason = str(exc.__cause__ or exc).strip().split(". ")[0] or type(exc).__name__
            raise RayJobError(f"cannot join the Ray cluster at {options.address}: "
                              f"{reason}") from None
        return False
    os.environ.update(WORKER_ENV)  # the local instance's processes inherit it
    # Ray's native code says on stderr that it looked for a network address: ray.log
    with diverted([2]) as native:
        ray.init(
            num_cpus=math.ceil(options.workers * options.cpus_per_worker),
            include_dashboard=False,
            # the workers' TF_CONFIG addresses; else Ray asks the network for its own
            _node_ip_address="127.0.0.1",
            logging_level="WARNING",
            log_to_driver=True,
        )
        native.seek(0)
        sys.stdout.write(native.read().decode(errors="replace"))  # WorkerLines: to ray.log
    return True


def _require_resources(ray: Any, options: RayOptions) -> None:
    """Fail now, not wait forever, when the cluster lacks the job's CPUs or GPUs."""
    have = ray.cluster_resources()
    need = {"CPU": options.workers * options.cpus_per_worker,
            "GPU": options.workers * options.gpus_per_worker}
    short = [f"{need[r]:g} {r}s (it has {have.get(r, 0):g})" for r in ("CPU", "GPU")
             if need[r] > have.get(r, 0)]
    if short:
        raise RayJobError(f"the Ray cluster is too small for {options.workers} workers: "
                          f"the job needs {' and '.join(short)}")


def _fit(spec: str, options: RayOptions, sets: list[str], allow_modules: list[str],
         run_dir: Path) -> Exception | None:
    """Train with TensorflowTrainer; returns why it failed, or None."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    from .ray_worker import train_loop

    resources = {"CPU": options.cpus_per_worker}
    if options.gpus_per_worker:
        resources["GPU"] = options.gpus_per_worker
    trainer = TensorflowTrainer(
        train_loop,
        train_loop_config={
            "spec": str(Path(spec).resolve()),
            "overrides": dict(parse_override(pair) for pair in sets),
            "allow_modules": list(allow_modules),
            "run_dir": str(run_dir),
        },
        scaling_config=ScalingConfig(num_workers=options.workers,
                                     use_gpu=options.gpus_per_worker > 0,
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name="ray",
            storage_path=str(run_dir),
            failure_config=FailureConfig(max_failures=options.max_failures),
            callbacks=[reports_callback(run_dir / "ray_reports.jsonl")],
        ),
    )
    try:
        trainer.fit()
    except Exception as exc:  # ray.train.TrainingFailedError, and what Ray raises around it
        return exc
    return None


def _failed(exc: BaseException) -> int:
    """Print why the job failed: the first worker's located error, as `tfspec run`
    prints it, or Ray's reason; returns 1."""
    from .ray_worker import WorkerFailed

    failures = getattr(exc, "worker_failures", None) or {}
    for rank in sorted(failures):
        found = _cause(failures[rank], WorkerFailed)
        if found is not None:
            for line in found.text.splitlines():
                print(f"[worker {rank}] {line}", file=sys.stderr)
            return 1
    if failures:
        rank = min(failures)
        reason = str(failures[rank]).strip().splitlines()
        print(f"tfspec: error: worker {rank} failed: {reason[-1] if reason else 'it died'}",
              file=sys.stderr)
        return 1
    print(f"tfspec: error: the Ray job failed: {str(exc).strip().splitlines()[-1]}",
          file=sys.stderr)
    return 1


def _cause(exc: BaseException | None, cls: type) -> Any:
    """`exc` or the exception it wraps (Ray's error types, `__cause__`) of type `cls`."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, cls):
            return exc
        seen.add(id(exc))
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None


def _say_sync(reports: Path, workers: int) -> None:
    """One line on whether the workers ended with the same weights (their digests in
    the last epoch's reports)."""
    try:
        last = [json.loads(line) for line in reports.read_text().splitlines()
                if '"reports"' in line][-1]["reports"]
    except (OSError, ValueError, IndexError, KeyError):
        return
    digests = {m.get("weights_sha256") for m in last}
    if len(last) == workers and len(digests) == 1:
        print(f"the {workers} workers ended with the same weights (sha256 {digests.pop()}…)",
              file=sys.stderr)
    else:
        print(f"warning: the workers' weights differ at the end: {sorted(map(str, digests))}",
              file=sys.stderr)


def reports_callback(path: Path) -> Any:
    """A Ray Train callback, run by its controller (on the driver's node), that appends
    every worker's reported metrics (a line per epoch) and the failures Ray saw to the
    JSON-lines file `path`. (A class made here: Ray is imported only once RAY_ENV is set.)"""
    from ray.train import UserCallback

    def append(entry: dict[str, Any]) -> None:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"time": time.time(), **entry}, default=str) + "\n")

    class Reports(UserCallback):
        def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                         checkpoint: Any) -> None:
            append({"reports": metrics})

        def after_exception(self, run_context: Any,
                            worker_exceptions: dict[int, Exception]) -> None:
            append({"failed": {str(rank): str(exc).strip().splitlines()[-1:]
                               for rank, exc in worker_exceptions.items()}})

    return Reports()


class WorkerLines(io.TextIOBase):
    """The driver's stdout and stderr during the job: the workers' lines (they start
    with "[worker ") are printed; Ray's own messages, and what the workers' native
    code writes (TensorFlow's C++ logs), go to `log` (RUN_DIR/ray.log)."""

    def __init__(self, terminal: Any, log: Path):
        self.terminal = terminal
        self.log = open(log, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self.pending = ""
        self.lock = threading.Lock()
        self.last_line = time.monotonic()
        self.saved: tuple[Any, Any] | None = None

    def write(self, text: str) -> int:
        with self.lock:
            *lines, self.pending = (self.pending + text).split("\n")
            for line in lines:
                if line.startswith("[worker "):
                    self.terminal.write(line + "\n")
                    self.last_line = time.monotonic()
                else:
                    self.log.write(line + "\n")
            self.terminal.flush()
            self.log.flush()
        return len(text)

    def installed(self) -> Any:
        """A context in which sys.stdout and sys.stderr are this stream (Ray prints the
        workers' lines to whichever they are when the lines arrive)."""
        lines = self

        class _Installed:
            def __enter__(self) -> None:
                lines.saved = (sys.stdout, sys.stderr)
                sys.stdout = sys.stderr = lines

            def __exit__(self, *exc: Any) -> None:
                sys.stdout, sys.stderr = lines.saved  # type: ignore[misc]

        return _Installed()

    def drain(self, least_s: float = 1.0, quiet_s: float = 0.5, limit_s: float = 3.0) -> None:
        """Wait for the workers' last lines, which Ray forwards from its log files a
        little later: at least `least_s`, then until none came for `quiet_s`, at most
        `limit_s` in all."""
        start = time.monotonic()
        while (now := time.monotonic()) < start + limit_s and (
                now < start + least_s or now - self.last_line < quiet_s):
            time.sleep(0.1)

    def close(self) -> None:
        self.log.close()
