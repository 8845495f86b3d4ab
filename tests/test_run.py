"""`tfspec run` for real: the run directory, `--dry-run` on every example, callbacks in
the `fit` loop, resume after SIGKILL, located training errors, and MirroredStrategy.

Everything trains real (tiny) Keras models on the data shipped in examples/data, copied
into tmp folders beside tmp specs. In-process runs go through `tfspec.cli.main`, whose
stdout pytest captures (not a terminal: Keras prints one line per epoch). Resume and
MirroredStrategy run in real processes: the first is killed with SIGKILL, the second
needs two logical CPU devices, which only a fresh process can configure.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from run_processes import (
    EPOCH_HEADER,
    EPOCH_SUMMARY,
    run_and_kill,
    run_to_completion,
    subprocess_env,
    tfspec_run,
)
from tf_state import restore_global_state  # noqa: F401 (autouse)
from transfer_fixtures import examples_with_exports

import tfspec
from tfspec import cli
from tfspec.codegen.program import compile_file
from tfspec.jobs.build import quiet_tensorflow
from tfspec.lang.validate import validate_file

quiet_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = EXAMPLES / "data"

# What `tfspec run` may refuse with E503 (nothing else may be refused).
NOT_YET_LOOPS = {"custom", "on_batch"}
NOT_YET_STRATEGIES = {"multi_worker_mirrored", "tpu", "parameter_server"}



# -- helpers --------------------------------------------------------------------------------


def write_spec(directory: Path, text: str, name: str = "spec.tfspec") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def with_data(directory: Path, *names: str) -> Path:
    """Copy shipped data files into `directory/data/`; returns `directory`."""
    (directory / "data").mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(DATA / name, directory / "data" / name)
    return directory


def lines(text: str, indent: int = 2) -> str:
    """Spec lines for a block body: dedented, each on its own line, indented."""
    text = textwrap.dedent(text).strip("\n")
    return "".join("\n" + " " * indent + line for line in text.splitlines())


def tiny_digits_spec(directory: Path, *, train: str, model: str = "", data: str = "",
                     name: str = "tiny", split: str = "validation = 0.2, test = 0.1, seed = 7",
                     distribute: str = "") -> Path:
    """A softmax regression (or `model`) on the flattened 8x8 digits."""
    with_data(directory, "digits.npz")
    model = model or """
        Rescaling(1 / 16)
        Dense(10, activation = "softmax")"""
    text = (
        f'tfspec 1\nname "{name}"\n\n'
        f'data {{\n  source = npz("data/digits.npz", x = "flat", y = "labels")\n'
        f"  split {{ {split} }}\n  batch = 128{lines(data)}\n}}\n\n"
        f"model Tiny sequential {{\n  input pixels: float32[64]{lines(model)}\n}}\n\n"
        f"train {{{lines(train)}\n}}\n"
    )
    if distribute:
        text += f"\n{textwrap.dedent(distribute).strip()}\n"
    return write_spec(directory, text)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(["run", *args])
    out, err = capsys.readouterr()
    return status, out, err


def only_run_dir(spec: Path, name: str) -> Path:
    runs = sorted((spec.parent / "runs" / name).iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))


def line_of(spec: Path, startswith: str) -> int:
    for number, line in enumerate(spec.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip().startswith(startswith):
            return number
    raise AssertionError(f"no line starting with {startswith!r} in {spec}")


def block_lines(spec: Path, block: str) -> range:
    """The line numbers of `block { … }` (a top-level block)."""
    text = spec.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(text, 1) if line.startswith(f"{block} "))
    end = next(i for i, line in enumerate(text, 1) if i > start and line == "}")
    return range(start, end + 1)


def located(err: str, spec: Path, code: str) -> tuple[int, int]:
    """(line, col) of the `file:line:col: error[code]` diagnostic in `err`."""
    match = re.search(rf"^{re.escape(str(spec))}:(\d+):(\d+): error\[{code}\]", err, re.M)
    assert match, err
    return int(match.group(1)), int(match.group(2))



# -- 1. the run directory --------------------------------------------------------------------


def test_run_writes_a_complete_run_directory(tmp_path, capsys):
    with_data(tmp_path, "iris.csv")
    text = (EXAMPLES / "iris_mlp.tfspec").read_text(encoding="utf-8")
    assert "epochs = 30" in text and "param hidden" in text  # no epochs param: edit a copy
    spec = tmp_path / "iris_mlp.tfspec"
    spec.write_text(text.replace("epochs = 30", "epochs = 2"), encoding="utf-8")

    status, out, err = run_cli(capsys, str(spec), "--set", "hidden=8")

    assert status == 0, err
    run_dir = only_run_dir(spec, "iris-mlp")
    assert re.fullmatch(r"\d{8}-\d{6}", run_dir.name)
    assert f"run directory: {run_dir}" in err
    assert {p.name for p in run_dir.iterdir()} >= {
        "spec.tfspec", "program.py", "versions.json", "log.txt", "metrics.json", "model.keras"}

    # the resolved spec: valid, with the `--set` value in its params
    resolved = validate_file(run_dir / "spec.tfspec")
    assert resolved.ok, [str(d) for d in resolved.diagnostics]
    assert resolved.ir["params"] == {"hidden": 8}
    assert resolved.ir["train"]["epochs"] == 2

    # exactly the program `tfspec compile --set hidden=8` prints
    program = (run_dir / "program.py").read_text(encoding="utf-8")
    assert program == compile_file(str(spec), {"hidden": 8}).source
    assert "HIDDEN = 8" in program

    versions = json.loads((run_dir / "versions.json").read_text(encoding="utf-8"))
    assert versions["tensorflow"] == tf.__version__
    assert versions["keras"] == keras.__version__
    assert versions["python"] == platform.python_version()
    assert versions["tfspec"] == tfspec.__version__

    # not a terminal: an `Epoch i/n` line and one summary line per epoch, no progress bars
    log = (run_dir / "log.txt").read_text(encoding="utf-8")
    assert log == out  # the log is what was printed
    lines = log.splitlines()
    assert [line for line in lines if EPOCH_HEADER.match(line)] == ["Epoch 1/2", "Epoch 2/2"]
    assert len([line for line in lines if EPOCH_SUMMARY.match(line)]) == 2
    assert "\r" not in log and "━" not in log

    metrics = metrics_of(run_dir)
    assert len(metrics["history"]["loss"]) == 2
    assert all(math.isfinite(v) for v in metrics["history"]["loss"])
    assert len(metrics["history"]["val_loss"]) == 2
    assert "test" not in metrics  # iris has no test split

    model = keras.models.load_model(run_dir / "model.keras")
    assert model.get_layer("dense").units == 8
    rows = np.loadtxt(tmp_path / "data" / "iris.csv", delimiter=",", skiprows=1)
    probabilities = model.predict(rows[:, :4].astype("float32"), verbose=0)
    assert probabilities.shape == (len(rows), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_test_split_metrics_are_written(tmp_path, capsys):
    spec = tiny_digits_spec(tmp_path, train="""
        optimizer = SGD(learning_rate = 0.1)
        loss = "sparse_categorical_crossentropy"
        metrics = ["accuracy"]
        epochs = 1""")
    status, _, err = run_cli(capsys, str(spec))
    assert status == 0, err
    metrics = metrics_of(only_run_dir(spec, "tiny"))
    assert set(metrics["test"]) == {"loss", "accuracy"}
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0


@pytest.mark.parametrize("late", ["test split", "export"])
def test_a_failure_after_training_leaves_the_trained_model(tmp_path, capsys, late):
    """A label the model cannot have, only in the test split, fails its evaluation; a
    target that cannot be written fails the export. Either way model.keras and the
    history are saved first, and the error is at the spec line responsible."""
    spec = tiny_digits_spec(tmp_path, train="""
        optimizer = SGD(learning_rate = 0.1)
        loss = "sparse_categorical_crossentropy"
        metrics = ["accuracy"]
        epochs = 1""")
    if late == "test split":
        with np.load(DATA / "digits.npz") as archive:
            arrays = dict(archive)
        # the test split's examples (data.split_arrays: seeded, the last 10 %)
        order = np.random.default_rng(7).permutation(len(arrays["labels"]))
        arrays["labels"][order[-1]] = 12  # of 10 classes
        np.savez(tmp_path / "data" / "digits.npz", **arrays)
    else:
        (tmp_path / "blocked").write_text("a file where the export's folder goes")
        with open(spec, "a", encoding="utf-8") as text:
            text.write('\nexport {\n  keras "blocked/model.keras"\n}\n')
    status, _, err = run_cli(capsys, str(spec))
    assert status == 1, err
    run_dir = only_run_dir(spec, "tiny")
    if late == "test split":
        assert located(err, spec, "E502")[0] == line_of(spec, "split {"), err
        assert "evaluating it on the test split failed" in err
        assert "label value of 12" in err
        assert "test" not in metrics_of(run_dir)
    else:
        assert located(err, spec, "E504")[0] == line_of(spec, "keras "), err
    assert "Traceback" not in err
    keras.models.load_model(run_dir / "model.keras")  # the trained model, whole
    assert list(metrics_of(run_dir)["history"]) == ["accuracy", "loss", "val_accuracy",
                                                    "val_loss"]
    assert err.splitlines()[-1] == f"run directory: {run_dir}"


def test_a_run_ends_with_a_short_summary_and_no_litert_chatter(tmp_path):
    """In a real process, whose file descriptor 2 is the user's terminal: LiteRT's C++
    `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` must not reach it."""
    spec = tiny_digits_spec(tmp_path, train="""
        optimizer = SGD(learning_rate = 0.1)
        loss = "sparse_categorical_crossentropy"
        metrics = ["accuracy"]
        epochs = 1""")
    with open(spec, "a", encoding="utf-8") as text:
        text.write('\nexport {\n  tflite "out/model.tflite"\n'
                   '  keras "out/model.keras" { verify = false }\n}\n')

    done = run_to_completion(spec)

    assert done.returncode == 0, done.stderr
    assert "XNNPACK" not in done.stdout + done.stderr
    assert "INFO: " not in done.stdout + done.stderr
    run_dir = only_run_dir(spec, "tiny")
    test = metrics_of(run_dir)["test"]
    (tflite,) = json.loads((run_dir / "verify.json").read_text(encoding="utf-8"))
    assert tflite["passed"]
    # the end of the run, read from metrics.json and verify.json
    assert done.stderr.splitlines()[-4:] == [
        f"test split: accuracy {test['accuracy']:.4g}, loss {test['loss']:.4g}",
        f"export tflite out/model.tflite: passed, max abs error {tflite['max_abs_error']:.3g}"
        f" <= tolerance {tflite['tolerance']:.3g}",
        "export keras out/model.keras: not checked (verify = false)",
        f"run directory: {run_dir}",
    ]


def test_runs_in_the_same_second_get_their_own_directories(tmp_path, capsys):
    # fails fast (E501) after its run directory is made: several runs fit in one second
    spec = tiny_digits_spec(tmp_path, data="", model="""
        Dense(10, activation = "softmax")""", train="""
        loss = "categorical_crossentropy"
        epochs = 1""")
    for _ in range(4):
        status, _, err = run_cli(capsys, str(spec))
        assert status == 1 and "error[E501]" in err, err
        assert "run directory" not in err  # no summary: training did not finish
    assert len(list((tmp_path / "runs" / "tiny").iterdir())) == 4


# -- 2. --dry-run on every example -----------------------------------------------------------


EXAMPLE_SPECS = sorted(EXAMPLES.glob("*.tfspec")) + sorted(EXAMPLES.glob("*.tfspec.json"))


def refused_key(spec: Path) -> str | None:
    """`/train/loop` or `/distribute/strategy` where `tfspec run` may refuse the spec."""
    ir = validate_file(spec).ir
    if (ir.get("train") or {}).get("loop", "fit") in NOT_YET_LOOPS:
        return "loop"
    if (ir.get("distribute") or {}).get("strategy", "default") in NOT_YET_STRATEGIES:
        return "strategy"
    return None


def files_under(folder: Path) -> dict[Path, str | None]:
    """Every path under `folder`, with a digest of each file's bytes (None: a folder)."""
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else None for p in folder.rglob("*")}


def test_the_examples_are_discovered():
    names = {p.name for p in EXAMPLE_SPECS}
    assert {"digits_cnn.tfspec", "iris_mlp.tfspec", "everything.tfspec"} <= names
    assert any(refused_key(p) is None for p in EXAMPLE_SPECS)


@pytest.mark.parametrize("spec", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_dry_run_every_example(spec, tmp_path, capsys, monkeypatch, tmp_path_factory):
    # from a copy of examples/ where iris_mlp has run: iris_finetune loads its export
    folder = examples_with_exports(tmp_path_factory)
    spec = folder / spec.name
    # the throw-away run directory is made under tmp_path, so that we see it removed
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = files_under(folder)

    if '"mirrored"' in spec.read_text(encoding="utf-8"):
        # its CPU devices are made as logical devices before TensorFlow starts: that
        # needs a fresh process (this one started TensorFlow long ago)
        done = subprocess.run(
            [sys.executable, "-m", "tfspec", "run", "--dry-run", str(spec)],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "TMPDIR": str(tmp_path)},
        )
        status, err = done.returncode, done.stderr
    else:
        status, _, err = run_cli(capsys, "--dry-run", str(spec))

    key = refused_key(spec)
    if status == 1 and "error[E503]" in err:
        # refused: only what is not supported yet, at the key that says it
        assert key is not None, err
        line, _ = located(err, spec, "E503")
        assert spec.read_text(encoding="utf-8").splitlines()[line - 1].strip().startswith(
            key), err
    else:
        assert status == 0, err
        assert "dry run passed" in err
    assert "Traceback" not in err
    # nothing left behind (no run directory, no file written by a callback), and
    # nothing overwritten (the exports iris_finetune loads)
    assert files_under(folder) == before
    assert list(tmp_path.glob("tfspec-dry-run-*")) == []  # the throw-away run directory


def test_a_run_leaves_the_process_as_it_found_it(tmp_path, capsys):
    from tensorflow.python.framework import config

    spec = tiny_digits_spec(tmp_path, train="""
        loss = "sparse_categorical_crossentropy"
        epochs = 1
        mixed_precision = "mixed_bfloat16"
        deterministic = true""")
    status, _, err = run_cli(capsys, "--dry-run", str(spec))
    assert status == 0, err
    assert keras.mixed_precision.global_policy().name == "float32"
    assert not config.is_op_determinism_enabled()


# -- 3. callbacks in the fit loop ------------------------------------------------------------


def test_early_stopping_stops_before_epochs(tmp_path, capsys):
    # in "max" mode a falling loss never improves: patience 0 stops after the 2nd epoch
    spec = tiny_digits_spec(tmp_path, train="""
        optimizer = SGD(learning_rate = 0.1)
        loss = "sparse_categorical_crossentropy"
        epochs = 6
        callbacks = [EarlyStopping(monitor = "loss", mode = "max", patience = 0)]""")
    status, out, err = run_cli(capsys, str(spec))
    assert status == 0, err
    history = metrics_of(only_run_dir(spec, "tiny"))["history"]
    assert len(history["loss"]) == 2
    assert [line for line in out.splitlines() if EPOCH_HEADER.match(line)] == [
        "Epoch 1/6", "Epoch 2/6"]


def test_csv_logger_and_model_checkpoint_write_beside_the_spec(tmp_path, capsys, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the paths are the spec's, not the working directory's
    spec = tiny_digits_spec(tmp_path / "project", train="""
        optimizer = SGD(learning_rate = 0.1)
        loss = "sparse_categorical_crossentropy"
        epochs = 3
        callbacks = [
          CSVLogger("training.csv"),
          ModelCheckpoint("checkpoints/last.keras"),
        ]""")
    status, _, err = run_cli(capsys, str(spec))
    assert status == 0, err
    assert list(elsewhere.iterdir()) == []

    rows = (spec.parent / "training.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].split(",")[:2] == ["epoch", "loss"]
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]
    history = metrics_of(only_run_dir(spec, "tiny"))["history"]
    np.testing.assert_allclose([float(row.split(",")[1]) for row in rows[1:]],
                               history["loss"], rtol=1e-6)

    checkpoint = keras.models.load_model(spec.parent / "checkpoints" / "last.keras")
    final = keras.models.load_model(only_run_dir(spec, "tiny") / "model.keras")
    for saved, last in zip(checkpoint.get_weights(), final.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, last)  # the checkpoint of the last epoch


def test_csv_logger_creates_its_folder(tmp_path, capsys):
    spec = tiny_digits_spec(tmp_path, train="""
        optimizer = SGD(learning_rate = 0.1)
        loss = "sparse_categorical_crossentropy"
        epochs = 1
        callbacks = [CSVLogger("logs/train.csv")]""")
    status, _, err = run_cli(capsys, str(spec))
    assert status == 0, err
    assert (tmp_path / "logs" / "train.csv").is_file()


def nan_spec(directory: Path, callbacks: str) -> Path:
    """Linear regression of the digit labels with a learning rate that makes it diverge."""
    return tiny_digits_spec(directory, model="""
        Dense(1)""", train="""
        optimizer = SGD(learning_rate = 10000000000.0)
        loss = "mse"
        epochs = 4""" + callbacks)


def test_terminate_on_nan_stops_a_diverging_run(tmp_path, capsys):
    spec = nan_spec(tmp_path / "with", "\n        callbacks = [TerminateOnNaN()]")
    status, out, err = run_cli(capsys, str(spec))
    assert status == 0, err
    assert "Invalid loss, terminating training" in out
    assert len(metrics_of(only_run_dir(spec, "tiny"))["history"]["loss"]) == 1

    # the same run without the callback trains every epoch (on NaN)
    spec = nan_spec(tmp_path / "without", "")
    status, out, err = run_cli(capsys, str(spec))
    assert status == 0, err
    losses = metrics_of(only_run_dir(spec, "tiny"))["history"]["loss"]
    assert len(losses) == 4 and math.isnan(losses[-1])


def test_reduce_lr_on_plateau_lowers_the_learning_rate(tmp_path, capsys):
    # in "max" mode a falling loss is a plateau every epoch after the first
    spec = tiny_digits_spec(tmp_path, train="""
        optimizer = SGD(learning_rate = 0.1)
        loss = "sparse_categorical_crossentropy"
        epochs = 3
        callbacks = [
          ReduceLROnPlateau(monitor = "loss", mode = "max", factor = 0.5, patience = 0),
        ]""")
    status, _, err = run_cli(capsys, str(spec))
    assert status == 0, err
    run_dir = only_run_dir(spec, "tiny")
    model = keras.models.load_model(run_dir / "model.keras")
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 0.1 * 0.5 ** 2, rtol=1e-6)
    np.testing.assert_allclose(metrics_of(run_dir)["history"]["learning_rate"],
                               [0.1, 0.1, 0.05], rtol=1e-6)


# -- 4. resume after SIGKILL -----------------------------------------------------------------

RESUME_EPOCHS = 6
RESUME_MODEL = """
    Rescaling(1 / 16)
    Dense(16, activation = "relu")
    Dense(10, activation = "softmax")"""


def resume_spec(directory: Path, data: str = "", model: str = RESUME_MODEL) -> Path:
    return tiny_digits_spec(directory, name="resume", split="validation = 0.2, seed = 7",
                            data=data, model=model, train=f"""
        optimizer = Adam(learning_rate = 0.01)
        loss = "sparse_categorical_crossentropy"
        epochs = {RESUME_EPOCHS}
        seed = 1
        deterministic = true
        callbacks = [BackupAndRestore("backup")]""")





def resume_case(root: Path, data: str = "", model: str = RESUME_MODEL) -> dict:
    """Kill-and-resume in one folder while an uninterrupted run trains in another."""
    interrupted = resume_spec(root / "interrupted", data, model)
    uninterrupted = resume_spec(root / "uninterrupted", data, model)
    with ThreadPoolExecutor(1) as pool:
        reference = pool.submit(run_to_completion, uninterrupted)
        killed = run_and_kill(interrupted, at_epoch=3)
        with np.load(interrupted.parent / "backup" / "backup.npz") as saved:
            backup = {"epoch": int(saved["epoch"])}
        resumed = run_to_completion(interrupted)
        reference = reference.result()
    assert resumed.returncode == 0, resumed.stderr
    assert reference.returncode == 0, reference.stderr

    def final(spec: Path) -> Path:
        models = list((spec.parent / "runs" / "resume").glob("*/model.keras"))
        assert len(models) == 1, models  # the killed run saved no model
        return models[0]

    return {"killed": killed, "backup": backup, "resumed": resumed,
            "interrupted": interrupted, "resumed_model": final(interrupted),
            "reference_model": final(uninterrupted)}


@pytest.fixture(scope="module")
def resume_shuffled(tmp_path_factory):
    """The spec as written: the training split is shuffled every epoch (the default)."""
    return resume_case(tmp_path_factory.mktemp("resume-shuffled"))


@pytest.fixture(scope="module")
def resume_in_order(tmp_path_factory):
    """The same spec with `shuffle = false`: every epoch sees the batches in one order."""
    return resume_case(tmp_path_factory.mktemp("resume-in-order"), data="shuffle = false")


def assert_same_weights(case: dict) -> None:
    resumed = keras.models.load_model(case["resumed_model"])
    reference = keras.models.load_model(case["reference_model"])
    for a, b in zip(resumed.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(resumed.optimizer.variables, reference.optimizer.variables, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    # and the resumed run's history (the backup's epochs, then the resumed ones) is the
    # uninterrupted run's
    history = json.loads((case["reference_model"].parent / "metrics.json").read_text())
    resumed_history = json.loads((case["resumed_model"].parent / "metrics.json").read_text())
    assert resumed_history["resumed_after_epoch"] == case["backup"]["epoch"]
    np.testing.assert_allclose(resumed_history["history"]["loss"],
                               history["history"]["loss"], rtol=1e-6)


def test_resume_after_sigkill_starts_after_the_last_completed_epoch(resume_shuffled):
    case = resume_shuffled
    completed = len([line for line in case["killed"] if EPOCH_SUMMARY.match(line)])
    assert completed == 2, case["killed"]
    # the backup is written while the next epoch trains: the kill may have come before
    # the last epoch's backup was whole, and then the one before it is the last
    backed_up = case["backup"]["epoch"]
    assert backed_up in (completed - 1, completed)
    headers = [line for line in case["resumed"].stdout.splitlines() if EPOCH_HEADER.match(line)]
    assert headers == [f"Epoch {e}/{RESUME_EPOCHS}" for e in range(backed_up + 1,
                                                                     RESUME_EPOCHS + 1)]
    history = json.loads((case["resumed_model"].parent / "metrics.json").read_text())
    assert len(history["history"]["loss"]) == RESUME_EPOCHS  # those before the kill too
    assert not (case["interrupted"].parent / "backup").exists()  # removed when training ends
    # the killed run left its record, but no model or metrics
    killed_dirs = [d for d in (case["interrupted"].parent / "runs" / "resume").iterdir()
                   if d != case["resumed_model"].parent]
    assert len(killed_dirs) == 1
    assert not (killed_dirs[0] / "model.keras").exists()


def test_resume_without_shuffling_equals_an_uninterrupted_run(resume_in_order):
    """BackupAndRestore brings back the weights, the optimizer's state and the epoch:
    with the batches in one fixed order, the resumed run ends where an uninterrupted
    one does (this is what the shuffled case below is missing)."""
    assert resume_in_order["backup"]["epoch"] in (1, 2)
    assert_same_weights(resume_in_order)


def test_resume_after_sigkill_equals_an_uninterrupted_run(resume_shuffled):
    assert_same_weights(resume_shuffled)


# resume with Dropout (its seed generators' state backed up too), in the fit and custom
# loops: tests/test_resume.py


# -- 5. training errors are located ----------------------------------------------------------


def test_a_training_error_is_located(tmp_path, capsys):
    # Precision() wants one probability per example; a 10-class softmax passes the data check
    spec = tiny_digits_spec(tmp_path, train="""
        optimizer = SGD(learning_rate = 0.1)
        loss = "sparse_categorical_crossentropy"
        metrics = [Precision()]
        epochs = 1""")
    status, _, err = run_cli(capsys, str(spec))
    assert status == 1, err
    line, _ = located(err, spec, "E502")
    assert line in block_lines(spec, "train")
    assert "Traceback" not in err
    assert "internal error" not in err


def test_a_training_error_names_its_cause_without_a_stack_dump(tmp_path, capsys):
    spec = tiny_digits_spec(tmp_path, train="""
        optimizer = SGD(learning_rate = 0.1)
        loss = "sparse_categorical_crossentropy"
        metrics = [Precision()]
        epochs = 1""")
    status, _, err = run_cli(capsys, str(spec))
    assert status == 1, err
    assert "Incompatible shapes" in err
    assert "most recent call last" not in err and 'File "' not in err


def test_a_data_mismatch_is_e501_at_the_source(tmp_path, capsys):
    # the 8x8x1 images feed an input declared flat
    spec = tiny_digits_spec(tmp_path, train="""
        loss = "sparse_categorical_crossentropy"
        epochs = 1""")
    text = spec.read_text(encoding="utf-8").replace('x = "flat"', 'x = "images"')
    spec.write_text(text, encoding="utf-8")
    status, _, err = run_cli(capsys, str(spec))
    assert status == 1, err
    source = line_of(spec, "source =")
    line_text = spec.read_text(encoding="utf-8").splitlines()[source - 1]
    assert located(err, spec, "E501") == (source, line_text.index("npz(") + 1)
    assert "(8, 8, 1)" in err and "Traceback" not in err


# -- 6. MirroredStrategy over two logical CPUs, in a real process ----------------------------

MIRRORED_WRAPPER = """
import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tfspec.cli import main  # noqa: E402
from tfspec.codegen.program import compile_file  # noqa: E402
from tfspec.jobs.build import load_program  # noqa: E402

spec, report = sys.argv[1], sys.argv[2]
status = main(["run", spec])
if status:
    sys.exit(status)
# train again through the program's own `train()`, to look at the replicas' variables
model, history, datasets = load_program(compile_file(spec))["train"](0)
variables = {}
for variable in model.variables + model.optimizer.variables:
    replicas = variable.value.values  # a tf.distribute MirroredVariable
    variables[variable.path] = {
        "devices": [v.device for v in replicas],
        "max_difference": max(float(tf.reduce_max(tf.abs(v - replicas[0]))) for v in replicas),
    }
with open(report, "w") as file:
    json.dump({"replicas": model.distribute_strategy.num_replicas_in_sync,
               "epochs": len(history.history["loss"]), "variables": variables}, file)
"""


def test_mirrored_on_two_logical_cpus(tmp_path):
    spec = tiny_digits_spec(tmp_path, name="mirrored", model=RESUME_MODEL, train="""
        optimizer = Adam(learning_rate = 0.01)
        loss = "sparse_categorical_crossentropy"
        metrics = ["accuracy"]
        epochs = 2""", distribute="""
        distribute { strategy = "mirrored", devices = ["/cpu:0", "/cpu:1"] }""")
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(MIRRORED_WRAPPER, encoding="utf-8")
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(wrapper), str(spec), str(report)], cwd=tmp_path,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    run_dir = only_run_dir(spec, "mirrored")
    metrics = metrics_of(run_dir)
    assert len(metrics["history"]["loss"]) == 2
    assert set(metrics["test"]) == {"loss", "accuracy"}
    assert 'strategy = distribute.mirrored(["/cpu:0", "/cpu:1"])' in (
        run_dir / "program.py").read_text(encoding="utf-8")  # the runtime's MirroredStrategy

    result = json.loads(report.read_text())
    assert result["replicas"] == 2
    assert result["epochs"] == 2
    assert len(result["variables"]) > 4  # the model's and Adam's
    for path, variable in result["variables"].items():
        assert [d.rsplit("/", 1)[-1] for d in variable["devices"]] == [
            "device:CPU:0", "device:CPU:1"], path
        assert variable["max_difference"] == 0.0, path


def test_mirrored_on_a_missing_device_is_a_located_error(tmp_path):
    # CPU devices beyond the first are made as logical devices; a GPU cannot be
    spec = tiny_digits_spec(tmp_path, name="mirrored", train="""
        loss = "sparse_categorical_crossentropy"
        epochs = 1""", distribute="""
        distribute { strategy = "mirrored", devices = ["/cpu:0", "/gpu:3"] }""")
    try:
        done = subprocess.run(tfspec_run(spec), cwd=tmp_path, env=subprocess_env(),
                              capture_output=True, text=True, timeout=25)
    except subprocess.TimeoutExpired:
        pytest.fail("`tfspec run` hangs")
    assert done.returncode == 1, done.stderr[-3000:]
    assert located(done.stderr, spec, "E50[0-9]")[0] == line_of(spec, "distribute")
