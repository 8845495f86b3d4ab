"""Distribution strategies as a spec's `distribute { strategy = … }` names them, and
what a multi-worker job's processes need to know about themselves.

Each function makes its `tf.distribute` strategy; the program calls one first thing
in `train()`, before any other TensorFlow op (splitting the CPU into logical devices
must come before TensorFlow starts).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence

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
    return json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})


def is_chief() -> bool:
    """Worker 0 (or the chief) keeps checkpoints, the model and metrics; the others
    write to scratch space, as the multi-worker guide says."""
    here = task()
    return here.get("type") == "chief" or here.get("index", 0) == 0


def worker_dir(run_dir: str | os.PathLike) -> pathlib.Path:
    """Where a worker that is not the chief writes its model and metrics:
    `run_dir/worker-<index>`."""
    return pathlib.Path(run_dir) / f"worker-{task()['index']}"
