"""What does serving over HTTP cost, against calling the SavedModel in-process?
Prints figures; asserts nothing.

    python benchmarks/serve_load.py [--clients N] [--requests R] [--batches 1,32]

The model is the digits CNN of examples/digits_cnn.tfspec (float32[8, 8, 1] ->
Rescaling -> Conv2D(16, 3) -> MaxPooling2D -> Flatten -> Dense(10, softmax)),
exported as tfspec exports it (keras ExportArchive, signature `serving_default`
from `image` to `digit`) to a temporary `<base>/1/`. For each batch size:

(a) HTTP: `tfspec serve <base>` in its own process (its default number of predict
    workers: one per two CPUs, the rest wait their turn); N client threads here, each
    with one keep-alive connection, send R row-format predict requests
    (`{"instances": [...]}`, fixed random images) and parse the answers; a
    request's latency is from sending it to having its JSON decoded.
(b) direct: the same SavedModel loaded here with `tf.saved_model.load`; N threads
    each call `signatures["serving_default"](image=...)` R times on the same
    images as NumPy arrays and take the outputs back as NumPy arrays.

Both are warmed first (50 calls each). Throughput is requests/s over the wall
time of all N x R; p50/p99 are per-request latencies. The ratio says how many
times slower HTTP + JSON is than the direct call. Timings on a shared machine
vary from run to run: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfspec.jobs.build import quiet_tensorflow  # noqa: E402
from tfspec.serving.server import default_workers  # noqa: E402

quiet_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

WARMUP = 50


def export_digits_cnn(base: Path) -> None:
    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Rescaling(1 / 16)(image)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D()(x))
    model = keras.Model(image, keras.layers.Dense(10, activation="softmax", name="digit")(x))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default", fn=lambda features: {"digit": model(features["image"])},
        input_signature=[{"image": tf.TensorSpec((None, 8, 8, 1), tf.float32, name="image")}])
    archive.write_out(str(base / "1"), verbose=False)


def start_server(base: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tfspec", "serve", str(base), "--port", "0", "--name", "digits"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    banner = process.stdout.readline()
    found = re.search(r"http://[\d.]+:\d+", banner)
    if not found:
        process.kill()
        sys.exit(f"tfspec serve did not start: {banner!r}")
    return process, found.group(0)


def run_clients(clients: int, requests: int,
                make_call: Callable[[], Callable[[int], None]]) -> tuple[float, list[float]]:
    """N threads x R calls of the callable each thread makes; wall time, latencies (s)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        call = make_call()
        barrier.wait()
        for n in range(requests):
            began = time.perf_counter()
            call(k * requests + n)
            latencies[k].append(time.perf_counter() - began)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, [t for per in latencies for t in per]


def http_caller(url: str, bodies: list[bytes]) -> Callable[[], Callable[[int], None]]:
    parts = urlsplit(url)

    def make() -> Callable[[int], None]:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

        def call(i: int) -> None:
            conn.request("POST", "/v1/models/digits:predict", body=bodies[i % len(bodies)],
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(answer)

        return call

    return make


def direct_caller(function: Callable[..., dict[str, tf.Tensor]],
                  batches: list[np.ndarray]) -> Callable[[], Callable[[int], None]]:
    def make() -> Callable[[int], None]:
        def call(i: int) -> None:
            function(image=batches[i % len(batches)])["digit"].numpy()

        return call

    return make


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200, help="per client")
    ap.add_argument("--batches", default="1,32", help="batch sizes, comma-separated")
    args = ap.parse_args()
    sizes = [int(b) for b in args.batches.split(",")]

    print(f"python {sys.version.split()[0]}, tensorflow {tf.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before")
    print(f"{args.clients} clients x {args.requests} requests each, digits CNN "
          f"float32[8, 8, 1] -> 10 classes; tfspec serve runs {default_workers()} predict "
          "request(s) at once")
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "serving"
        export_digits_cnn(base)
        process, url = start_server(base)
        try:
            function = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
            rng = np.random.default_rng(0)
            print(f"\n{'batch':>5}  {'path':7} {'req/s':>8} {'examples/s':>11} "
                  f"{'p50 ms':>8} {'p99 ms':>8}")
            for size in sizes:
                batches = [rng.uniform(0, 16, (size, 8, 8, 1)).astype(np.float32)
                           for _ in range(16)]
                bodies = [json.dumps({"instances": b.tolist()}).encode() for b in batches]
                check_same_answers(url, function, batches[0], bodies[0])
                figures = {}
                for path, make in (("direct", direct_caller(function, batches)),
                                   ("HTTP", http_caller(url, bodies))):
                    run_clients(1, WARMUP, make)
                    wall, latencies = run_clients(args.clients, args.requests, make)
                    rate = len(latencies) / wall
                    figures[path] = (rate, percentile(latencies, 50), percentile(latencies, 99))
                    print(f"{size:>5}  {path:7} {rate:8.0f} {rate * size:11.0f} "
                          f"{figures[path][1] * 1e3:8.2f} {figures[path][2] * 1e3:8.2f}")
                (d_rate, d50, d99), (h_rate, h50, h99) = figures["direct"], figures["HTTP"]
                print(f"{size:>5}  ratio   direct/HTTP throughput {d_rate / h_rate:5.1f}x, "
                      f"HTTP/direct latency p50 {h50 / d50:5.1f}x, p99 {h99 / d99:5.1f}x")
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    print(f"\nload average {os.getloadavg()[0]:.2f} after; tfspec serve exited "
          f"{process.returncode}")


def check_same_answers(url: str, function: Callable[..., dict[str, tf.Tensor]],
                       batch: np.ndarray, body: bytes) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("POST", "/v1/models/digits:predict", body=body)
    served = np.asarray(json.loads(conn.getresponse().read())["predictions"])
    conn.close()
    direct = function(image=batch)["digit"].numpy()
    gap = float(np.max(np.abs(served - direct)))
    if gap > 1e-6:
        sys.exit(f"HTTP and direct answers differ by {gap}")


if __name__ == "__main__":
    main()
