"""A program accepts any real TF_CONFIG: a `chief` task beside the workers, as the
Kubeflow TFJob operator and Vertex AI write it, `"environment": "cloud"`, host names.
Real `tfspec run` processes, one per task, on this machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from run_processes import all_succeed

from tfspec.jobs.launch import free_ports

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_a_chief_and_a_worker_with_host_names(tmp_path: Path):
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "examples" / "data" / "digits.npz", tmp_path / "data")
    shutil.copy(ROOT / "examples" / "multi_worker.tfspec", tmp_path / "job.tfspec")
    chief_port, worker_port = free_ports(2)
    cluster = {"chief": [f"localhost:{chief_port}"], "worker": [f"localhost:{worker_port}"]}
    run_dir = tmp_path / "run"
    processes = []
    for kind in ("chief", "worker"):
        config = {"cluster": cluster, "task": {"type": kind, "index": 0},
                  "environment": "cloud"}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tfspec", "run", "job.tfspec", "--run-dir", str(run_dir),
             "--set", "epochs=1"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "TF_CONFIG": json.dumps(config)},
        ))
    all_succeed(processes)
    # the chief wrote the run; worker 0 (not the chief here) wrote its log and nothing else
    for name in ("model.keras", "metrics.json", "log.txt", "program.py", "spec.tfspec",
                 "versions.json"):
        assert (run_dir / name).is_file(), name
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == ["worker-0"]
    assert sorted(p.name for p in (run_dir / "worker-0").iterdir()) == ["log.txt"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 1
    assert "val_loss" in (run_dir / "log.txt").read_text()  # the chief logs its epochs
    # the chief checkpointed in the spec's runs/ folder, and removed it when done
    assert not (tmp_path / "runs" / "digits-multi-worker" / "checkpoints").exists()
