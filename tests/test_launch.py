"""`tfspec launch`: multi-worker training in real worker processes on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def launch(spec: Path, *extra: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tfspec", "launch", str(spec), *extra],
        capture_output=True, text=True, timeout=timeout, cwd=spec.parent,
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "examples" / "data" / "digits.npz", tmp_path / "data")
    shutil.copy(ROOT / "examples" / "multi_worker.tfspec", tmp_path / "job.tfspec")
    return tmp_path


def test_two_workers_train_to_identical_weights(workspace: Path):
    import keras

    result = launch(workspace / "job.tfspec", "--workers", "2", "--set", "epochs=2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("[worker 0] Epoch 2/2") for line in lines), result.stdout
    assert any(line.startswith("[worker 1] ") for line in lines), result.stdout
    (run_dir,) = (workspace / "runs" / "digits-multi-worker").iterdir()
    for name in ("model.keras", "metrics.json", "log.txt", "program.py", "spec.tfspec"):
        assert (run_dir / name).exists(), name
    # the other worker saved too (to scratch space, thrown away): only its log is kept
    assert sorted(p.name for p in (run_dir / "worker-1").iterdir()) == ["log.txt"]
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == ["worker-1"]
    chief = keras.models.load_model(run_dir / "model.keras").get_weights()
    assert len(chief) == 4 and all(np.isfinite(w).all() for w in chief)


def test_two_workers_evaluate_the_test_split_as_keras_does(workspace: Path):
    """Keras 3's `evaluate` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585):
    the custom loop's distributed evaluation gives what `model.evaluate` of the saved
    model gives on the same test split in one process."""
    import keras

    from tfspec.codegen.program import API, compile_file
    from tfspec.jobs.build import load_program

    spec = workspace / "job.tfspec"
    spec.write_text(spec.read_text().replace("split { validation = 0.2, seed = 1 }",
                                             "split { validation = 0.2, test = 0.2, seed = 1 }"))
    result = launch(spec, "--workers", "2", "--set", "epochs=1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = (workspace / "runs" / "digits-multi-worker").iterdir()
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert f"accuracy {test['accuracy']:.4g}" in next(
        line for line in result.stdout.splitlines() if line.startswith("[worker 0] test split:"))
    model = keras.models.load_model(run_dir / "model.keras")
    datasets = load_program(compile_file(str(spec)))[API.make_datasets]()
    expected = model.evaluate(datasets["test"], return_dict=True, verbose=0)
    assert test == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_one_failing_worker_stops_the_others(tmp_path: Path):
    (tmp_path / "flaky.py").write_text(
        "import json, os\nimport numpy as np\n\n\ndef examples():\n"
        "    task = json.loads(os.environ['TF_CONFIG'])['task']\n"
        "    if task['index'] == 1:\n"
        "        raise RuntimeError('worker 1 cannot read its data')\n"
        "    rng = np.random.default_rng(0)\n"
        "    for _ in range(64):\n"
        "        yield rng.normal(size=(4,)).astype('float32'), int(rng.integers(0, 3))\n"
    )
    spec = tmp_path / "flaky.tfspec"
    spec.write_text(
        'tfspec 1\nname "flaky"\n\ndata {\n  source = generator("flaky:examples")\n'
        "  split { validation = 0.25, seed = 0 }\n  batch = 8\n}\n\n"
        "model M sequential {\n  input x: float32[4]\n  Dense(3, activation = \"softmax\")\n}\n\n"
        'train {\n  loss = "sparse_categorical_crossentropy"\n  epochs = 50\n}\n\n'
        'distribute { strategy = "multi_worker_mirrored" }\n'
    )
    start = time.monotonic()
    result = launch(spec, "--workers", "2", "--allow-module", "flaky", timeout=180)
    assert result.returncode != 0
    assert "[worker 1]" in result.stdout and "worker 1 cannot read its data" in result.stdout
    assert time.monotonic() - start < 170  # worker 0 was stopped, not left waiting


def test_launch_needs_a_multi_worker_spec(tmp_path: Path):
    shutil.copy(ROOT / "examples" / "iris_mlp.tfspec", tmp_path / "iris.tfspec")
    result = launch(tmp_path / "iris.tfspec", "--workers", "2")
    assert result.returncode == 1
    assert "error[E503]" in result.stderr and "multi_worker_mirrored" in result.stderr
    assert "Traceback" not in result.stderr
