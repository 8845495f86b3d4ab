"""Distribution strategies as a spec's `distribute { strategy = … }` names them, and
what a multi-worker job's processes need to know about themselves.

Each function makes its `tf.distribute` strategy; the program calls one first thing
in `train()`, before any other TensorFlow op (splitting the CPU into logical devices
must come before TensorFlow starts).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence

import tensorflow as tf


def default() -> tf.distribute.Strategy:
    """No distribution: the default strategy, one device."""
    return tf.distribute.get_strategy()


def one_device(device: str = "/cpu:0") -> tf.distribute.Strategy:
    """Variables and steps on one named device."""
    return tf.distribute.OneDeviceStrategy(device)


def mirrored(devices: Sequence[str] | None = None,
             communication: str = "auto") -> tf.distribute.Strategy:
    """Synchronous data parallelism over the local GPUs, or over `devices`.

    Several "/cpu:N" devices split the CPU into that many logical devices (while
    TensorFlow has not started). A device the machine lacks is an error now: training
    would wait for it forever. `communication`: "ring" or "nccl" all-reduce, or
    "auto" (TensorFlow's choice).
    """
    kwargs = {}
    if devices is not None:
        devices = list(devices)
        cpus = [d for d in devices if d.lower().startswith("/cpu:")]
        if len(cpus) > 1:
            try:
                tf.config.set_logical_device_configuration(
                    tf.config.list_physical_devices("CPU")[0],
                    [tf.config.LogicalDeviceConfiguration()] * len(cpus),
                )
            except RuntimeError:  # TensorFlow has started: too late
                pass
        here = {d.name.lower().replace("/device:", "/") for d in tf.config.list_logical_devices()}
        missing = [d for d in devices if d.lower() not in here]
        if missing:
            raise ValueError(f"no device {missing} on this machine; it has {sorted(here)}")
        kwargs["devices"] = devices
    if communication == "nccl":
        kwargs["cross_device_ops"] = tf.distribute.NcclAllReduce()
    elif communication == "ring":
        kwargs["cross_device_ops"] = tf.distribute.HierarchicalCopyAllReduce()
    return tf.distribute.MirroredStrategy(**kwargs)


def multi_worker_mirrored(workers: Sequence[str] | None = None,
                          communication: str = "auto") -> tf.distribute.Strategy:
    """Synchronous data parallelism over several worker processes.

    The cluster comes from TF_CONFIG (set by `tfspec launch`, or per host); `workers`
    ("host:port" each) is the cluster where TF_CONFIG is not set, this process being
    worker TFSPEC_WORKER (default 0). `communication`: "ring", "nccl" or "auto".
    """
    if workers is not None:
        os.environ.setdefault("TF_CONFIG", json.dumps({
            "cluster": {"worker": list(workers)},
            "task": {"type": "worker", "index": int(os.environ.get("TFSPEC_WORKER", "0"))},
        }))
    kind = {"ring": "RING", "nccl": "NCCL"}.get(communication, "AUTO")
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=getattr(tf.distribute.experimental.CommunicationImplementation, kind),
    )
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def tpu(name: str = "") -> tf.distribute.Strategy:
    """The TPU named `name` ("" : the one this VM is attached to)."""
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def task() -> dict:
    """This process's task in TF_CONFIG (`{}` when there is none)."""
    return json.loads(os.environ.get("TF_CONFIG") or "{}").get("task") or {}


def is_chief() -> bool:
    """Whether this process writes the run directory (the model, metrics, exports,
    checkpoints): the `chief` task, or worker 0 in a cluster without one, or a process
    with no TF_CONFIG at all. Any real TF_CONFIG is read: the Kubeflow TFJob
    operator's and Vertex AI's name a chief and `"environment": "cloud"`; under
    MultiWorkerMirroredStrategy the chief is a worker like the others that also writes.
    The others still take part in every collective op (saving and evaluating too),
    but write to scratch space (`output_dir`), as TensorFlow's multi-worker guide says.
    """
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    here = config.get("task") or {}
    if not here:
        return True
    kind = str(here.get("type", "worker")).lower()
    if kind == "chief":
        return True
    if "chief" in (config.get("cluster") or {}):
        return False
    return kind == "worker" and int(here.get("index", 0)) == 0


def worker_dir(run_dir: str | os.PathLike) -> pathlib.Path:
    """The folder of a task that is not the chief, for its log: `run_dir/<type>-<index>`
    (`worker-1`; `worker-0` when a chief is worker 0's neighbour)."""
    here = task()
    return pathlib.Path(run_dir) / f"{str(here.get('type', 'worker')).lower()}-{here['index']}"


@contextlib.contextmanager
def output_dir(run_dir: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Where this process saves its model and metrics: `run_dir` on the chief; on the
    others a temporary folder, removed afterwards (they save too: evaluating a
    distributed model is collective, so every worker must run it)."""
    if is_chief():
        yield pathlib.Path(run_dir)
        return
    scratch = tempfile.mkdtemp(prefix="tfspec-worker-")
    try:
        yield pathlib.Path(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
