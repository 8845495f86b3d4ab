"""What a spec means, checked before it runs (issue 23, items 4 and 5).

A param's value (declared, or given by `--set`) is checked against the range of every
place it reaches, as a literal there is; a callback's `monitor` against the names the
spec logs; a `ModelCheckpoint` path against Keras 3's rule; a loss against the units
and activation of the layer that makes its output. The Keras tests at the end check
that the rules are Keras's own: what is called an error here fails (or cannot learn)
in Keras.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tfspec.lang.validate import validate_text

DATA = """\
data {
  source = csv("data/iris.csv", label = "species")
  split { validation = 0.2, seed = 42 }
  batch = BATCH
}
"""


def spec(*, params: str = "", batch: str = "16", last: str = 'Dense(3, activation = "softmax")',
         loss: str = '"sparse_categorical_crossentropy"', metrics: str = '["accuracy"]',
         epochs: str = "10", callbacks: str = "[]", validation: bool = True) -> str:
    """A small sequential spec on the Iris CSV; each argument is DSL text."""
    data = DATA.replace("BATCH", batch)
    if not validation:
        data = data.replace("  split { validation = 0.2, seed = 42 }\n", "")
    return (f"tfspec 1\n{params}\n{data}\n"
            "model M sequential {\n  input x: float32[4]\n  Dense(8, activation = \"relu\")\n"
            f"  {last}\n}}\n\n"
            f"train {{\n  loss = {loss}\n  metrics = {metrics}\n  epochs = {epochs}\n"
            f"  callbacks = {callbacks}\n}}\n")


def diagnostics(text: str, overrides: dict | None = None) -> list:
    return list(validate_text(text, "m.tfspec", overrides).diagnostics)


def only(text: str, overrides: dict | None = None):
    found = diagnostics(text, overrides)
    assert len(found) == 1, [(d.code, d.message) for d in found]
    return found[0]


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.split("\n"), 1) if needle in ln)


# -- item 4: params' values against the schema's ranges -------------------------------------


def test_a_declared_param_out_of_range_is_located_at_its_use():
    text = spec(params="param epochs = 0", epochs="epochs")
    d = only(text)
    assert (d.code, d.span.line) == ("E204", line_of(text, "  epochs = epochs"))
    assert d.message == "`train.epochs` must be ≥ 1. Received: 0 (from `epochs`)"
    assert d.hint == f"`epochs` is declared at line {line_of(text, 'param epochs')}"


def test_a_literal_and_a_param_give_the_same_error():
    literal = only(spec(epochs="0"))
    via_param = only(spec(params="param epochs = 0", epochs="epochs"))
    assert literal.code == via_param.code == "E204"
    assert via_param.message.startswith(literal.message)


def test_set_out_of_range_names_the_set():
    text = spec(params="param epochs = 10", epochs="epochs")
    d = only(text, {"epochs": -1})
    assert d.code == "E204" and d.span.line == line_of(text, "  epochs = epochs")
    assert "Received: -1 (from `--set epochs=-1`)" in d.message
    assert d.hint == (f"`--set epochs=-1` replaces the 10 declared at line "
                      f"{line_of(text, 'param epochs')}")


def test_set_batch_to_zero():
    text = spec(params="param bs = 16", batch="bs")
    d = only(text, {"bs": 0})
    assert (d.code, d.span.line) == ("E204", line_of(text, "batch = bs"))
    assert d.message == "`data.batch` must be ≥ 1. Received: 0 (from `--set bs=0`)"


def test_arithmetic_over_params_is_checked_too():
    text = spec(params="param bs = 16", batch="bs - 16")
    d = only(text)
    assert d.code == "E204" and "Received: 0 (from `bs`)" in d.message


def test_a_fraction_from_a_param():
    text = spec(params="param held_out = 0.2").replace("validation = 0.2", "validation = held_out")
    assert diagnostics(text) == []
    d = only(text, {"held_out": 20})
    assert d.code == "E204" and d.message.startswith("`data.split.validation` must be < 1")


def test_valid_sets_still_pass():
    text = spec(params="param epochs = 10\nparam bs = 16", epochs="epochs", batch="bs")
    assert diagnostics(text, {"epochs": 3, "bs": 8}) == []


def test_a_null_param_is_left_to_set():
    text = spec(params="param steps = null").replace("  epochs = 10\n",
                                                     "  epochs = 10\n  steps_per_epoch = steps\n")
    assert diagnostics(text) == []
    assert only(text, {"steps": 0}).code == "E204"


def test_a_keras_argument_from_set_names_the_set():
    text = spec(params="param hidden = 8").replace("Dense(8,", "Dense(hidden,")
    d = only(text, {"hidden": 0})
    assert d.code == "E305" and d.span.line == line_of(text, "Dense(hidden,")
    assert d.message.endswith("Received: units=0 (from `--set hidden=0`)")
    assert d.hint == (f"`--set hidden=0` replaces the 8 declared at line "
                      f"{line_of(text, 'param hidden')}")


def test_the_command_line_exits_1_without_a_traceback(tmp_path: Path):
    path = tmp_path / "epochs.tfspec"
    path.write_text(spec(params="param epochs = 10", epochs="epochs"), encoding="utf-8")
    for command in ("validate", "run"):
        done = subprocess.run([sys.executable, "-m", "tfspec", command, "--set", "epochs=-1",
                               str(path)], capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)
        assert done.returncode == 1, done
        out = done.stdout + done.stderr
        assert "Traceback" not in out
        assert f"{path}:{line_of(path.read_text(), '  epochs = epochs')}:" in out
        assert "(from `--set epochs=-1`)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epochs.tfspec"]  # nothing written


# -- item 5 (a): a callback's monitor --------------------------------------------------------


def test_monitor_typo_has_a_did_you_mean():
    text = spec(callbacks='[EarlyStopping(monitor = "val_los")]')
    d = only(text)
    assert (d.code, d.severity) == ("E411", "error")
    assert d.message == "`EarlyStopping` monitors `val_los`, which this spec never logs"
    assert d.hint == 'did you mean "val_loss"?'
    assert text.split("\n")[d.span.line - 1][d.span.col - 1:].startswith('"val_los"')


@pytest.mark.parametrize("callback", [
    'EarlyStopping(monitor = "val_accuracy", mode = "max")',
    'ReduceLROnPlateau(monitor = "loss")',
    "EarlyStopping()",  # val_loss, logged: the data holds out a validation set
    # keeping every epoch, a checkpoint reads `monitor` only to direct it, as `mode` does
    'ModelCheckpoint("runs/m/best.keras", monitor = "val_acuracy", mode = "max")',
    'ModelCheckpoint("runs/m/best.keras", save_best_only = true, monitor = "val_accuracy")',
    'EarlyStopping(monitor = "learning_rate")',
    "BackupAndRestore(\"runs/m/backup\")",
])
def test_monitors_that_are_logged_or_unused_pass(callback):
    assert diagnostics(spec(callbacks=f"[{callback}]")) == []


def test_a_checkpoint_of_every_epoch_still_needs_a_direction():
    text = spec(callbacks='[ModelCheckpoint("runs/m/last.keras", monitor = "val_acuracy")]')
    d = only(text)
    assert d.code == "E411" and d.hint == 'did you mean "val_accuracy"?'


def test_the_default_monitor_without_validation():
    text = spec(callbacks="[ReduceLROnPlateau(factor = 0.5)]", validation=False)
    d = only(text)
    assert d.code == "E411"
    assert d.message == ("`ReduceLROnPlateau` monitors `val_loss` (its default), which is never "
                         "logged: the data section holds out no validation set")
    assert "validation = 0.2" in d.hint


def test_best_only_checkpoint_monitor_and_a_param():
    text = spec(params='param watch = "val_acc"',
                callbacks='[ModelCheckpoint("runs/m/best.keras", save_best_only = true, '
                          "monitor = watch)]")
    d = only(text)
    assert d.code == "E411" and "`val_acc` (from `watch`)" in d.message
    assert d.hint == 'this spec logs "val_loss", "val_accuracy"'
    assert diagnostics(text, {"watch": "val_accuracy"}) == []


def test_a_metric_named_by_a_param_is_not_guessed():
    text = spec(params='param m = "accuracy"', metrics="[m]",
                callbacks='[EarlyStopping(monitor = "val_anything", mode = "max")]')
    assert [d.code for d in diagnostics(text)] == []


MULTI = """\
tfspec 1

data {
  source = npz("data/digits.npz", x = "images", y = "labels")
  split { validation = 0.2 }
}

model M functional {
  input image: float32[64]
  h = image |> Dense(16, activation = "relu")
  output digit = Dense(10, activation = "softmax")(h)
  output even = Dense(1, activation = "sigmoid")(h)
}

train {
  loss { digit = "sparse_categorical_crossentropy", even = LOSS }
  metrics { digit = ["accuracy"] }
  callbacks = [EarlyStopping(monitor = MONITOR, mode = "max")]
}
"""


def test_multi_output_names():
    ok = MULTI.replace("LOSS", '"binary_crossentropy"')
    assert diagnostics(ok.replace("MONITOR", '"val_digit_accuracy"')) == []
    assert diagnostics(ok.replace("MONITOR", '"val_even_loss"')) == []
    d = only(ok.replace("MONITOR", '"val_accuracy"'))
    assert d.code == "E411" and d.hint == 'did you mean "val_digit_accuracy"?'


# -- item 5 (b): ModelCheckpoint's path ------------------------------------------------------


@pytest.mark.parametrize(("args", "hint"), [
    ('"runs/m/best.keras", save_weights_only = true', 'write "runs/m/best.weights.h5"'),
    ('"runs/m/best.h5", save_weights_only = true', 'write "runs/m/best.weights.h5"'),
    ('"runs/m/ckpt"', 'write "runs/m/ckpt.keras", or save the weights only: '
                      '`save_weights_only = true` with "runs/m/ckpt.weights.h5"'),
])
def test_checkpoint_paths_keras_rejects(args, hint):
    text = spec(callbacks=f"[ModelCheckpoint({args})]")
    d = only(text)
    assert (d.code, d.hint) == ("E412", hint)
    assert text.split("\n")[d.span.line - 1][d.span.col - 1:].startswith('"runs/m/')


@pytest.mark.parametrize("args", [
    '"runs/m/best.weights.h5", save_weights_only = true',
    '"runs/m/{epoch:02d}.keras"',
    '"runs/m/legacy.h5"',
    '"runs/m/best.weights.h5"',  # a whole model in the legacy format: Keras takes it
    'filepath = "runs/m/best.keras", save_weights_only = false',
])
def test_checkpoint_paths_keras_takes(args):
    assert diagnostics(spec(callbacks=f"[ModelCheckpoint({args})]")) == []


def test_checkpoint_path_from_a_param():
    text = spec(params='param ckpt = "runs/m/best.keras"',
                callbacks="[ModelCheckpoint(ckpt, save_weights_only = true)]")
    d = only(text)
    assert d.code == "E412" and d.message.endswith('Received: "runs/m/best.keras" (from `ckpt`)')


# -- item 5 (c): a loss against its output layer ---------------------------------------------


@pytest.mark.parametrize(("last", "loss", "code"), [
    ('Dense(1, activation = "sigmoid")', '"categorical_crossentropy"', "E413"),
    ("Dense(1)", 'CategoricalCrossentropy(from_logits = true)', "E413"),
    ('Dense(1, activation = "sigmoid")', '"sparse_categorical_crossentropy"', "E413"),
    ('Dense(1, activation = "softmax")', '"binary_crossentropy"', "E413"),
    ('Dense(2, activation = "softmax")', '"binary_crossentropy"', "W405"),
    ('Dense(2, activation = "softmax")', '"bce"', "W405"),
    ("Dense(3)", '"sparse_categorical_crossentropy"', "W405"),
    ("Dense(1)", '"binary_crossentropy"', "W405"),
    ('Dense(1, activation = "sigmoid")', "BinaryCrossentropy(from_logits = true)", "W405"),
])
def test_losses_that_do_not_fit(last, loss, code):
    text = spec(last=last, loss=loss)
    d = only(text)
    assert d.code == code, d.message
    assert d.severity == ("error" if code.startswith("E") else "warning")
    assert d.span.line in (line_of(text, "  loss = "), line_of(text, last))


@pytest.mark.parametrize(("last", "loss"), [
    ('Dense(1, activation = "sigmoid")', '"binary_crossentropy"'),
    ('Dense(5, activation = "sigmoid")', '"binary_crossentropy"'),  # multi-label
    ("Dense(1)", "BinaryCrossentropy(from_logits = true)"),
    ("Dense(3)", "SparseCategoricalCrossentropy(from_logits = true)"),
    ('Dense(3, activation = "softmax")', '"sparse_categorical_crossentropy"'),
    ('Dense(3, activation = "softmax")', "CategoricalCrossentropy()"),
    ("Dense(1)", '"mse"'),
    ('Dense(3, activation = "softmax")', '"crossentropy"'),
    ('Activation("softmax")', '"sparse_categorical_crossentropy"'),
])
def test_losses_that_fit(last, loss):
    assert diagnostics(spec(last=last, loss=loss)) == []


def test_units_from_a_param_and_a_per_output_loss():
    text = spec(params="param classes = 3", last='Dense(classes, activation = "softmax")')
    assert diagnostics(text) == []
    d = only(text, {"classes": 1})
    assert d.code == "E413" and "softmax over one unit" in d.message
    bad = MULTI.replace("LOSS", '"categorical_crossentropy"').replace(
        "MONITOR", '"val_digit_accuracy"')
    d = only(bad)
    assert d.code == "E413" and "output `even`" in d.message
    assert d.span.line == line_of(bad, "  loss {")


def test_a_hint_for_binary_crossentropy_over_a_softmax():
    d = only(spec(last='Dense(2, activation = "softmax")', loss='"binary_crossentropy"'))
    assert d.hint.startswith('use "sparse_categorical_crossentropy" for integer labels with a '
                             "softmax over 2 classes")


# -- the rules are Keras's ---------------------------------------------------------------------


def test_the_checkpoint_rule_is_keras(tmp_path):
    keras = pytest.importorskip("keras")
    for path in ["a.keras", "a.h5", "a.weights.h5", "a", "a.ckpt", "{epoch}.keras"]:
        for weights_only in (True, False):
            try:
                keras.callbacks.ModelCheckpoint(str(tmp_path / path),
                                                save_weights_only=weights_only)
                accepted = True
            except ValueError:
                accepted = False
            flag = "true" if weights_only else "false"
            text = spec(callbacks=f'[ModelCheckpoint("runs/{path}", save_weights_only = {flag})]')
            assert (diagnostics(text) == []) == accepted, (path, weights_only)


def test_what_is_an_error_fails_or_cannot_learn_in_keras(tmp_path):
    keras = pytest.importorskip("keras")
    import numpy as np

    x = np.random.default_rng(0).random((16, 4), dtype="float32")
    y = np.arange(16) % 2

    def fit(units, activation, loss, callbacks=(), **kw):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation)])
        model.compile("adam", loss)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(x, y, epochs=2, verbose=0, callbacks=list(callbacks), **kw)

    # categorical crossentropy over one unit is 0, whatever the labels and weights
    history = fit(1, "sigmoid", "categorical_crossentropy")
    assert history.history["loss"] == [0.0, 0.0]
    with pytest.raises(Exception, match="label value of 1"):  # sparse over one unit
        fit(1, "sigmoid", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="same rank"):  # binary over a softmax, int labels
        fit(2, "softmax", "binary_crossentropy")
    with pytest.raises(ValueError, match="monitor=val_los"):  # E411's example
        fit(1, "sigmoid", "binary_crossentropy", validation_split=0.25,
            callbacks=[keras.callbacks.EarlyStopping(monitor="val_los")])
    every_epoch = str(tmp_path / "last.keras")
    with pytest.raises(ValueError, match="monitor=val_acuracy"):  # not best-only, mode auto
        fit(1, "sigmoid", "binary_crossentropy", validation_split=0.25,
            callbacks=[keras.callbacks.ModelCheckpoint(every_epoch, monitor="val_acuracy")])
    fit(1, "sigmoid", "binary_crossentropy", validation_split=0.25,  # with a mode, it runs
        callbacks=[keras.callbacks.ModelCheckpoint(every_epoch, monitor="val_acuracy",
                                                   mode="max")])
