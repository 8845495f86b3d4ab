"""`tfspec launch --on ray`: the multi-worker example on real Ray Train workers.

Every command here runs in a private network namespace that has only loopback
(tests/netns.py), so Ray cannot reach past the machine even when it tries to (it
asks the network for its own address). The jobs: the example on 2 Ray workers
(while it runs, the namespace's TCP table is read), the same with a worker SIGKILLed
mid-training and --max-failures 1, a worker that fails, an --address nobody answers.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from netns import isolated

from tfspec.jobs.launch import free_ports
from tfspec.jobs.ray_worker import weights_digest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
LOOPBACK = {"127.0.0.1"}
LISTEN = "0A"  # a TCP state in /proc/net/tcp


def tfspec(*args: str) -> list[str]:
    return [sys.executable, "-m", "tfspec", *args]


def env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def workspace(folder: Path) -> Path:
    """The multi-worker example and its data in `folder`; returns the spec."""
    (folder / "data").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "data" / "digits.npz", folder / "data")
    shutil.copy(ROOT / "examples" / "multi_worker.tfspec", folder / "job.tfspec")
    return folder / "job.tfspec"


def run_dir(spec: Path) -> Path:
    (found,) = (spec.parent / "runs" / "digits-multi-worker").iterdir()
    return found


def weights(folder: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(folder / "model.keras").get_weights()


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    assert [x.shape for x in a] == [y.shape for y in b]
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


def reports(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "ray_reports.jsonl").read_text().splitlines()]


class Job:
    """A command started in its own loopback-only namespace; its output lines are
    collected as they come (stderr merged)."""

    def __init__(self, command: list[str], cwd: Path):
        self.process = subprocess.Popen(isolated(command), cwd=cwd, env=env(), text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait(self, timeout: float = 240) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.reader.join(5)
            assert self.process.stdout is not None
            self.process.stdout.close()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def processes(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []


def _address(text: str) -> str:
    """An address of /proc/net/tcp{,6} ("0100007F:1F90") as text, without its port."""
    raw = bytes.fromhex(text.split(":")[0])
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # four 32-bit words, each in the host's (little-endian) order
    address = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return str(address.ipv4_mapped or address)  # ::ffff:127.0.0.1 is 127.0.0.1


def tcp_table(pid: int) -> list[tuple[str, str, str, str]]:
    """(state, local address, remote address, socket inode) of every TCP socket in the
    network namespace of process `pid` (read from its /proc/PID/net: the namespace's,
    not the reader's)."""
    rows = []
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            rows.append((fields[3], _address(fields[1]), _address(fields[2]), fields[9]))
    return rows


def socket_owner(inode: str, processes: list[psutil.Process]) -> str:
    for process in processes:
        try:
            for fd in Path(f"/proc/{process.pid}/fd").iterdir():
                if os.readlink(fd) == f"socket:[{inode}]":
                    return " ".join(process.cmdline())[:60].strip()
        except OSError:
            continue
    return "?"


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """The example trained by `tfspec launch --workers 2` (worker processes, no Ray)."""
    spec = workspace(tmp_path_factory.mktemp("launch"))
    job = Job(tfspec("launch", str(spec), "--workers", "2"), spec.parent)
    assert job.wait() == 0, job.output[-3000:]
    return weights(run_dir(spec))


@pytest.fixture(scope="module")
def on_ray(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The example on 2 Ray Train workers in a Ray instance started for the job; the
    namespace's TCP table is read every 0.2 s while it runs."""
    spec = workspace(tmp_path_factory.mktemp("ray"))
    job = Job(tfspec("launch", str(spec), "--on", "ray", "--workers", "2"), spec.parent)
    connections: dict[str, tuple[str, str]] = {}  # socket inode -> (local, remote)
    listening: dict[str, tuple[str, str]] = {}  # socket inode -> (address, its process)
    while job.process.poll() is None:
        for state, local, remote, inode in tcp_table(job.process.pid):
            if state != LISTEN:
                connections[inode] = (local, remote)
            elif inode not in listening:
                listening[inode] = (local, socket_owner(inode, job.processes()))
        time.sleep(0.2)
    status = job.wait()
    return {"spec": spec, "status": status, "output": job.output,
            "connections": connections, "listening": listening}


def test_ray_workers_train_the_weights_of_launch(on_ray: dict, launched: list[np.ndarray]):
    assert on_ray["status"] == 0, on_ray["output"][-4000:]
    lines = on_ray["output"].splitlines()
    assert "[worker 0] Epoch 3/3" in lines, on_ray["output"]
    assert any(line.startswith("the 2 workers ended with the same weights") for line in lines)
    folder = run_dir(on_ray["spec"])
    for name in ("model.keras", "metrics.json", "log.txt", "program.py", "ray_reports.jsonl"):
        assert (folder / name).exists(), name
    assert not (folder / "worker-1" / "model.keras").exists()  # the chief writes results
    # every epoch reported by both workers through ray.train.report
    epochs = [entry["reports"] for entry in reports(folder) if "reports" in entry]
    assert [[r["epoch"] for r in e] for e in epochs] == [[1, 1], [2, 2], [3, 3]]
    assert all(e[0]["loss"] == e[1]["loss"] > 0 for e in epochs)
    # the same weights on every worker: their digests, and the chief's saved model's
    trained = weights(folder)
    assert {r["weights_sha256"] for r in epochs[-1]} == {weights_digest(trained)}
    difference = max_difference(trained, launched)
    print(f"max abs difference, --on ray vs tfspec launch: {difference:.3g}")
    assert difference <= 1e-6


def test_ray_connects_to_loopback_only(on_ray: dict):
    assert on_ray["status"] == 0, on_ray["output"][-4000:]
    connections = on_ray["connections"]
    assert len(connections) > 10  # Ray's processes and the workers' collectives talked
    outside = [ends for ends in connections.values()
               if ends[0] not in LOOPBACK or ends[1] not in LOOPBACK]
    assert not outside, outside
    # listening sockets are not connections: Ray's on 127.0.0.1, TensorFlow's collective
    # servers in the workers on the wildcard address (as under `tfspec launch`), which
    # only loopback reaches in this namespace; printed, for the record
    listening = sorted(set(on_ray["listening"].values()))
    print(f"{len(connections)} connections, all on 127.0.0.1; listening: {listening}")


def test_a_killed_worker_is_restarted_and_training_resumes(tmp_path: Path, on_ray: dict):
    spec = workspace(tmp_path)
    job = Job(tfspec("launch", str(spec), "--on", "ray", "--workers", "2",
                     "--max-failures", "1"), tmp_path)
    started = time.time()
    killed, deadline = None, time.monotonic() + 240
    while killed is None and job.process.poll() is None and time.monotonic() < deadline:
        if "[worker 0] Epoch 2/3" in job.lines:  # the chief began the second epoch
            workers = [p for p in job.processes()
                       if " ".join(p.cmdline()).startswith("ray::RayTrainWorker")]
            killed = min(workers, key=lambda p: p.pid)
            killed.send_signal(signal.SIGKILL)
            killed_at = time.time()
        time.sleep(0.05)
    assert killed is not None, job.output[-4000:]
    assert job.wait() == 0, job.output[-4000:]
    folder = run_dir(spec)
    entries = reports(folder)
    failed = [entry["failed"] for entry in entries if "failed" in entry]
    assert len(failed) == 1, entries  # Ray saw the death once, and restarted
    # the chief's epoch lines before the workers came back, and after
    resumed = next(i for i, line in enumerate(job.lines)
                   if line.startswith("[worker 0] resuming after epoch "))
    epoch_line = re.compile(r"^\[worker 0\] \d+/\d+ - .*loss: ")
    done_before = sum(1 for line in job.lines[:resumed] if epoch_line.match(line))
    done_after = sum(1 for line in job.lines[resumed:] if epoch_line.match(line))
    resumed_after = int(job.lines[resumed].split()[5].rstrip(","))
    assert resumed_after == done_before == 1  # killed in epoch 2: the checkpoint of epoch 1
    assert done_after == 2  # epochs 2 and 3, once each
    assert entries[-1]["reports"][0]["epoch"] == 3
    difference = max_difference(weights(folder), weights(run_dir(on_ray["spec"])))
    print(f"killed worker pid {killed.pid} (rank {next(iter(failed[0]))}) during epoch "
          f"{done_before + 1}, {killed_at - started:.1f} s into the job; resumed after epoch "
          f"{resumed_after}; max abs difference from the uninterrupted run: {difference:.3g}")
    assert difference <= 1e-6


FLAKY = """\
import json, os
import numpy as np


def examples():
    task = json.loads(os.environ['TF_CONFIG'])['task']
    if task['index'] == 1:
        raise RuntimeError('worker 1 cannot read its data')
    rng = np.random.default_rng(0)
    for _ in range(64):
        yield rng.normal(size=(4,)).astype('float32'), int(rng.integers(0, 3))
"""


def test_a_failing_worker_stops_the_job_at_its_spec_line(tmp_path: Path):
    """On a cluster started with `ray start --head` (in the same namespace), joined
    with --address: worker 1's error, located in the spec, ends the job."""
    (tmp_path / "flaky.py").write_text(FLAKY)
    spec = tmp_path / "flaky.tfspec"
    spec.write_text(
        'tfspec 1\nname "flaky"\n\ndata {\n  source = generator("flaky:examples")\n'
        "  split { validation = 0.25, seed = 0 }\n  batch = 8\n}\n\n"
        'model M sequential {\n  input x: float32[4]\n  Dense(3, activation = "softmax")\n}\n\n'
        'train {\n  loss = "sparse_categorical_crossentropy"\n  epochs = 50\n}\n\n'
        'distribute { strategy = "multi_worker_mirrored" }\n'
    )
    (port,) = free_ports(1)
    ray = str(Path(sys.executable).parent / "ray")
    script = (
        # token authentication off: nothing outside this namespace can reach the head
        f"RAY_AUTH_MODE=disabled {ray} start --head --node-ip-address=127.0.0.1 --port={port} "
        "--num-cpus=2 --include-dashboard=false --disable-usage-stats >head.log 2>&1 || exit 3; "
        f'"$@" --address 127.0.0.1:{port}; status=$?; {ray} stop >/dev/null 2>&1; exit $status'
    )
    start = time.monotonic()
    job = Job(["sh", "-c", script, "sh", *tfspec("launch", str(spec), "--on", "ray",
                                                  "--workers", "2", "--allow-module", "flaky")],
              tmp_path)
    status = job.wait()
    assert status == 1, job.output[-4000:] + (tmp_path / "head.log").read_text()[-2000:]
    assert "[worker 1] " in job.output and "worker 1 cannot read its data" in job.output
    assert re.search(r"\[worker 1\] .*flaky\.tfspec:\d+:\d+: error\[E502\]: training failed: "
                     "RuntimeError: worker 1 cannot read its data", job.output), job.output[-4000:]
    assert time.monotonic() - start < 200  # worker 0 was stopped, not left waiting


def test_an_unreachable_address_is_one_line(tmp_path: Path):
    spec = workspace(tmp_path)
    (port,) = free_ports(1)  # nobody listens there (in the namespace: nobody at all)
    start = time.monotonic()
    job = Job(tfspec("launch", str(spec), "--on", "ray", "--workers", "2",
                     "--address", f"127.0.0.1:{port}"), tmp_path)
    assert job.wait(60) == 1
    assert time.monotonic() - start < 30
    assert job.lines == [f"tfspec: error: cannot reach the Ray cluster at 127.0.0.1:{port} "
                         "(Connection refused): start one with `ray start --head`, or leave "
                         "out --address to start Ray for this job"], job.output
