"""A backup is resumed only by the experiment that wrote it: the same spec, params
(`--set` included) and data. Another experiment trains from the start and says why;
the same one says where it resumes, and its run ends with the whole history and log.

Real `tfspec run` processes (tests/run_processes.py), killed as they begin epoch 3,
on a tiny model of the digits in examples/data, in all three loops. The backup is
the one tfspec adds, in `runs/resume/checkpoints/` whatever the params.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from run_processes import EPOCH_HEADER, EPOCH_SUMMARY, run_and_kill, run_to_completion

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4
KILL_AT = 3  # killed as epoch 3 begins: epochs 1 and 2 are backed up (1, if the kill
# comes while the second epoch's backup is written in the background)

SPEC = """\
tfspec 1
name "resume"
param lr = 0.01
param epochs = {epochs}

data {{
  source = npz("data/digits.npz", x = "flat", y = "labels")
  split {{ validation = 0.2, seed = 7 }}
  batch = 128
}}

model Tiny sequential {{
  input pixels: float32[64]
  Rescaling(1 / 16)
  Dense(16, activation = "relu")
  Dense(10, activation = "softmax")
}}

train {{
  loop = "{loop}"
  optimizer = Adam(learning_rate = lr)
  loss = "sparse_categorical_crossentropy"
  epochs = epochs
  seed = 1
}}
"""


def write_spec(folder: Path, loop: str) -> Path:
    (folder / "data").mkdir(parents=True)
    shutil.copyfile(ROOT / "examples" / "data" / "digits.npz", folder / "data" / "digits.npz")
    spec = folder / "resume.tfspec"
    spec.write_text(SPEC.format(loop=loop, epochs=EPOCHS), encoding="utf-8")
    return spec


def headers(stdout: str) -> list[int]:
    """The epochs a run trained, by their `Epoch N/M` lines."""
    return [int(m.group(1)) for line in stdout.splitlines() if (m := EPOCH_HEADER.match(line))]


# fit and on_batch share the backup callback, the custom loop checkpoints itself: each
# scenario runs the callback once and the custom loop once (about 16 s a case)
@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_another_experiments_backup_is_not_resumed(loop, tmp_path):
    spec = write_spec(tmp_path, loop)
    checkpoints = tmp_path / "runs" / "resume" / "checkpoints"
    run_and_kill(spec, KILL_AT, "--set", "epochs=6")
    assert checkpoints.is_dir()  # the killed run's backup
    other = run_to_completion(spec, "--set", "lr=0.05")
    assert other.returncode == 0, other.stderr[-3000:]
    lines = other.stdout.splitlines()
    (why,) = [line for line in lines if line.startswith("not resuming")]
    assert why.startswith(f"not resuming: the backup in {checkpoints} is of another "
                          "experiment (params lr: 0.01 -> 0.05, epochs: 6 -> 4)")
    assert not any(line.startswith("resuming") for line in lines)
    assert headers(other.stdout) == list(range(1, EPOCHS + 1))  # from the start
    (run_dir,) = {p.parent for p in (tmp_path / "runs" / "resume").glob("*/model.keras")}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == EPOCHS
    assert "resumed_after_epoch" not in metrics
    # the other experiment's backup is kept aside (named in the line), not resumed later
    (aside,) = checkpoints.parent.glob("checkpoints.*")
    assert why.endswith(f"moved to {aside}")
    assert not checkpoints.exists()  # this run's own, removed when training ended


@pytest.mark.parametrize("loop", ["on_batch", "custom"])
def test_the_same_experiment_resumes_with_its_whole_history(loop, tmp_path):
    spec = write_spec(tmp_path, loop)
    run_dir = tmp_path / "the-run"
    args = ("--set", "lr=0.02", "--run-dir", str(run_dir))
    killed = run_and_kill(spec, KILL_AT, *args)
    done = len([line for line in killed if EPOCH_SUMMARY.match(line)])
    assert done == KILL_AT - 1
    resumed = run_to_completion(spec, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    checkpoints = tmp_path / "runs" / "resume" / "checkpoints"
    (said,) = [line for line in resumed.stdout.splitlines() if "resum" in line]
    match = re.fullmatch(rf"resuming after epoch (\d) from {re.escape(str(checkpoints))}", said)
    assert match, said
    after = int(match.group(1))
    assert after in (done - 1, done) if loop != "custom" else after == done
    assert headers(resumed.stdout) == list(range(after + 1, EPOCHS + 1))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # every epoch: those before the kill (from the backup) and the resumed ones
    assert len(metrics["history"]["loss"]) == EPOCHS
    assert len(metrics["history"]["val_loss"]) == EPOCHS
    assert metrics["resumed_after_epoch"] == after
    # the run's log goes on after the killed run's lines
    log = (run_dir / "log.txt").read_text()
    logged = headers(log)  # the killed run's "Epoch 3" may be cut off by the kill
    assert logged[:KILL_AT - 1] == list(range(1, KILL_AT))
    assert logged[after - EPOCHS:] == list(range(after + 1, EPOCHS + 1))
    assert log.index(said) > log.index(f"Epoch {KILL_AT - 1}/{EPOCHS}")
