"""`tfspec tune`: real KerasTuner searches, in this process and in real processes.

One uninterrupted search of examples/iris_tune.tfspec (shared) is the reference: its
best trial beats the example's deliberately bad params, its best spec differs from
the example only in them and trains the winner again with `tfspec run`; a search
interrupted (Ctrl-C, then SIGKILL) and resumed, and a distributed one (a chief and
two workers), run the same trials with the same results.
"""

from __future__ import annotations

import difflib
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from run_processes import subprocess_env

import tfspec
import tfspec.cli

ROOT = Path(__file__).resolve().parent.parent
TRIALS = 3
pytestmark = pytest.mark.slow


def copy_example(folder: Path) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "examples" / "data" / "iris.csv", folder / "data")
    shutil.copy(ROOT / "examples" / "iris_tune.tfspec", folder / "iris_tune.tfspec")
    return folder / "iris_tune.tfspec"


def tune_command(spec: Path, *extra: str) -> list[str]:
    """`tfspec tune` in a process of its own."""
    return [sys.executable, "-m", "tfspec", "tune", str(spec), "--max-trials", str(TRIALS),
            *extra]


def records(run_dir: Path) -> dict[str, dict]:
    """KerasTuner's trial records of a search: id -> (status, values, score)."""
    out = {}
    for path in sorted((run_dir / "search").glob("trial_*/trial.json")):
        record = json.loads(path.read_text())
        out[record["trial_id"]] = {"status": record["status"], "score": record["score"],
                                   "values": record["hyperparameters"]["values"],
                                   "message": record.get("message")}
    return out


def searches(spec: Path) -> list[Path]:
    return sorted((spec.parent / "runs" / "iris-tune").glob("tune-*"))


def tune_here(spec: Path, *extra: str) -> tuple[int, str, str]:
    """`tfspec tune` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = tfspec.cli.main(["tune", str(spec), "--max-trials", str(TRIALS), *extra])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path, str]:
    """The uninterrupted search: its spec, run directory and output."""
    spec = copy_example(tmp_path_factory.mktemp("reference"))
    status, out, err = tune_here(spec)
    assert status == 0, out[-3000:] + err[-3000:]
    (run_dir,) = searches(spec)
    return spec, run_dir, out + err


def best_val_accuracy(run_dir: Path) -> float:
    return max(json.loads((run_dir / "metrics.json").read_text())["history"]["val_accuracy"])


def test_the_search_beats_the_bad_default_and_its_best_spec_trains_it(reference, tmp_path):
    spec, run_dir, output = reference
    found = records(run_dir)
    assert sorted(found) == [str(i) for i in range(TRIALS)]
    assert all(r["status"] == "COMPLETED" for r in found.values())
    # one line per finished trial, then the table and where the best spec is
    assert sum(line.startswith("trial ") for line in output.splitlines()) == TRIALS
    assert "best trials by val_accuracy (max):" in output
    best_spec = spec.with_name("iris_tune.best.tfspec")
    assert f"best spec: {best_spec}" in output
    best = max(found.values(), key=lambda r: r["score"])

    # best.tfspec validates and differs from the example only in the tuned params
    assert tfspec.validate_file(best_spec).ok
    diff = [line for line in difflib.unified_diff(
        spec.read_text().splitlines(), best_spec.read_text().splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert sorted(diff) == sorted(
        ["-param hidden = 2", "-param lr = 0.0001", "-param dropout = 0.5",
         f"+param hidden = {best['values']['hidden']}",
         f"+param lr = {best['values']['lr']!r}",
         f"+param dropout = {best['values']['dropout']!r}"]), diff

    # `tfspec run` trains the winner again, and it beats the example's own params
    # (which train without KerasTuner: `run` does not need it)
    block = "import sys; sys.modules['keras_tuner'] = None; import tfspec.cli as c; "
    out = subprocess.run(
        [sys.executable, "-c", block + "sys.exit(c.main(['run', 'iris_tune.tfspec', "
         "'--run-dir', 'runs/iris_tune.tfspec']))"],
        cwd=spec.parent, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert tfspec.cli.main(["run", str(best_spec), "--run-dir",
                            str(spec.parent / "runs" / "iris_tune.best.tfspec")]) == 0
    default = best_val_accuracy(spec.parent / "runs" / "iris_tune.tfspec")
    winner = best_val_accuracy(spec.parent / "runs" / "iris_tune.best.tfspec")
    assert winner == pytest.approx(best["score"], abs=1e-6)  # the same training, seeded
    assert winner > default + 0.1, (winner, default)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    start = time.monotonic()
    while not path.exists():
        assert process.poll() is None, "the search ended before it was interrupted"
        assert time.monotonic() - start < timeout, f"{path} never appeared"
        time.sleep(0.05)


def test_an_interrupted_search_resumes_with_the_same_trials(reference, tmp_path):
    """Ctrl-C in trial 1, SIGKILL in trial 2, then the same command: the trials (ids,
    values, results) of the uninterrupted search, each finished trial run once."""
    spec = copy_example(tmp_path)
    process = subprocess.Popen(tune_command(spec), cwd=tmp_path, env=subprocess_env(),
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(tmp_path / "runs" / "iris-tune", process)
    (run_dir,) = searches(spec)
    wait_for(run_dir / "search" / "trial_1" / "trial.json", process)
    process.send_signal(signal.SIGINT)  # as Ctrl-C does
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert f"interrupted: the search is saved in {run_dir}" in stderr
    assert f"`tfspec tune {spec} --max-trials {TRIALS}` resumes it" in stderr

    process = subprocess.Popen(tune_command(spec), cwd=tmp_path, env=subprocess_env(),
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(run_dir / "search" / "trial_2" / "trial.json", process)
    process.send_signal(signal.SIGKILL)
    resumed_once = process.communicate(timeout=60)[0]
    assert f"resuming the search in {run_dir}" in resumed_once

    status, resumed, stderr = tune_here(spec)
    assert status == 0, stderr[-3000:]
    assert searches(spec) == [run_dir]  # resumed, not started again
    lines = [line for line in (stdout + resumed_once + resumed).splitlines()
             if line.startswith("trial ")]
    assert sorted(line.split()[1] for line in lines) == [str(i) for i in range(TRIALS)]
    found, expected = records(run_dir), records(reference[1])
    assert {k: r["values"] for k, r in found.items()} == {
        k: r["values"] for k, r in expected.items()}
    for key, record in expected.items():
        assert found[key]["status"] == "COMPLETED"
        assert found[key]["score"] == pytest.approx(record["score"], abs=1e-6), key


def test_a_chief_and_two_workers_run_every_trial_once(reference, tmp_path):
    spec = copy_example(tmp_path)
    out = subprocess.run(tune_command(spec, "--workers", "2"), cwd=tmp_path,
                         env=subprocess_env(), capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines()
             if line.startswith("[worker ") and " trial " in line]
    by_worker = {w: [line for line in lines if line.startswith(f"[worker {w}] trial ")]
                 for w in (0, 1)}
    assert all(by_worker.values()), out.stdout  # each worker ran some
    ran = sorted(line.split()[3] for line in lines)
    assert ran == [str(i) for i in range(TRIALS)]  # every trial once
    (run_dir,) = searches(spec)
    found, expected = records(run_dir), records(reference[1])
    assert {k: (r["status"], r["values"]) for k, r in found.items()} == {
        k: ("COMPLETED", r["values"]) for k, r in expected.items()}
    assert f"search done: {TRIALS} trials ({TRIALS} completed, 0 failed)" in out.stdout


FAILING = """tfspec 1
name "diverging"

param lr = 0.01

data {
  source = csv("data/iris.csv", label = "species")
  split { validation = 0.3, seed = 42 }
  batch = 16
}

model M sequential {
  input features: float32[4]
  Dense(3)
}

train {
  optimizer = SGD(learning_rate = lr)
  loss = SparseCategoricalCrossentropy(from_logits = true)
  metrics = ["accuracy"]
  epochs = 2
  seed = 1
}

tune {
  objective = "val_accuracy"
  algorithm = "grid"
  space {
    lr = Choice([1e38, 0.01])
  }
}
"""


def search_here(folder: Path, file: str, text: str, capsys, *extra: str) -> tuple[Path, Any]:
    """`tfspec tune` in this process of a spec written beside a copy of iris.csv: the
    spec, and what was printed (it must succeed)."""
    (folder / "data").mkdir()
    shutil.copy(ROOT / "examples" / "data" / "iris.csv", folder / "data")
    spec = folder / file
    spec.write_text(text)
    status = tfspec.cli.main(["tune", str(spec), *extra])
    out = capsys.readouterr()
    assert status == 0, out.err
    return spec, out


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path, capsys):
    spec, out = search_here(tmp_path, "diverging.tfspec", FAILING, capsys)
    (run_dir,) = (tmp_path / "runs" / "diverging").glob("tune-*")
    found = {r["values"]["lr"]: r for r in records(run_dir).values()}
    assert found[1e38]["status"] == "FAILED"
    assert "the loss became nan" in found[1e38]["message"]
    assert found[0.01]["status"] == "COMPLETED"
    assert any(line.startswith("trial ") and "failed (the loss became nan in epoch 1)" in line
               for line in out.out.splitlines()), out.out
    assert "2 trials (1 completed, 1 failed)" in out.out
    assert "param lr = 0.01" in spec.with_name("diverging.best.tfspec").read_text()


LOOPS = """tfspec 1
name "loops"

param units = 4

data {
  source = csv("data/iris.csv", label = "species")
  split { validation = 0.3, seed = 42 }
  batch = 16
}

model M sequential {
  input features: float32[4]
  Dense(units, activation = "relu")
  Dense(3, activation = "softmax")
}

train {
  loop = "LOOP"
  loss = "sparse_categorical_crossentropy"
  metrics = ["accuracy"]
  epochs = 3
}

tune {
  objective = "val_accuracy"
  max_trials = 5
  space {
    units = Int(2, 8)
  }
}
"""


@pytest.mark.parametrize("loop", ["fit", "custom", "on_batch"])
def test_a_dry_run_searches_with_every_loop(tmp_path, capsys, loop):
    spec, out = search_here(tmp_path, "loops.tfspec", LOOPS.replace("LOOP", loop), capsys,
                            "--dry-run")
    assert sum(line.startswith("trial ") for line in out.out.splitlines()) == 2, out.out
    assert "2 trials (2 completed, 0 failed)" in out.out
    assert "dry run passed: two trials of one step on synthetic data" in out.err
    assert not (tmp_path / "runs").exists()  # nothing left behind
    assert not spec.with_name("loops.best.tfspec").exists()


def test_a_spec_error_stops_before_any_trial(tmp_path, capsys):
    spec = tmp_path / "shapes.tfspec"
    spec.write_text(
        LOOPS.replace("LOOP", "fit").replace('  Dense(3, activation = "softmax")',
                                             "  Conv2D(8, 3)"))
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "examples" / "data" / "iris.csv", tmp_path / "data")
    status = tfspec.cli.main(["tune", str(spec), "--max-trials", "1"])
    err = capsys.readouterr().err
    assert status == 1
    assert f"{spec}:15:3: error[E500]: Keras cannot build `conv2d`" in err, err
    assert "Traceback" not in err
    assert not list((tmp_path / "runs").rglob("trial_*"))


def test_a_spec_without_tune_is_refused(tmp_path, capsys):
    spec = tmp_path / "iris.tfspec"
    shutil.copy(ROOT / "examples" / "iris_mlp.tfspec", spec)
    status = tfspec.cli.main(["tune", str(spec)])
    err = capsys.readouterr().err
    assert status == 1
    assert f"{spec}:2:8: error[E503]: the spec has no `tune {{ … }}` section" in err, err
    assert not (tmp_path / "runs").exists()


def test_tune_without_keras_tuner_says_how_to_install_it(tmp_path):
    spec = copy_example(tmp_path)
    code = ("import sys; sys.modules['keras_tuner'] = None; import tfspec.cli as c; "
            "sys.exit(c.main(['tune', sys.argv[1]]))")
    out = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True,
                         text=True, env=subprocess_env(), timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == ('tfspec: error: `tfspec tune` needs KerasTuner: '
                                  'pip install "tfspec[tune]"')


HYPERBAND = LOOPS.replace('  max_trials = 5\n', '  algorithm = "hyperband"\n  max_epochs = 3\n'
                          '  factor = 3\n  seed = 2\n').replace("LOOP", "fit")


def test_hyperband_trains_the_better_models_on_from_where_they_stopped(tmp_path, capsys):
    """Hyperband's rounds: models trained a few epochs, the best of them trained on from
    their weights (`tuner/trial_id`) to `max_epochs`, through the program's `fit(…,
    epochs, initial_epoch)`."""
    spec, _ = search_here(tmp_path, "bands.tfspec", HYPERBAND, capsys)
    (run_dir,) = (tmp_path / "runs" / "loops").glob("tune-*")
    found = records(run_dir)
    assert found and all(r["status"] == "COMPLETED" for r in found.values()), found
    epochs = {r["values"]["tuner/epochs"] for r in found.values()}
    assert epochs == {1, 3}, epochs
    continued = [r for r in found.values() if r["values"].get("tuner/trial_id")]
    assert continued, found  # a model trained on from an earlier trial's weights
    for record in continued:  # from a finished trial, to more epochs than it had
        earlier = found[record["values"]["tuner/trial_id"]]
        assert earlier["status"] == "COMPLETED"
        assert record["values"]["tuner/initial_epoch"] == earlier["values"]["tuner/epochs"]
    assert spec.with_name("bands.best.tfspec").exists()
