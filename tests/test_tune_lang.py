"""The `tune` section: normalization (tunespace), its checks (checktune), best.tfspec's
rewriting (paramvalues), round trips, plan's summary, and agreement with KerasTuner."""

from __future__ import annotations

import difflib
import json
import subprocess
import sys

import pytest

from tfspec.lang.formatter import format_spec
from tfspec.lang.tunespace import (
    Hyperparameter,
    Tuning,
    metric_names,
    space_size,
    tuning,
    values,
    with_param_values,
)
from tfspec.lang.validate import validate_text

SPEC = """\
# Iris, searched.
tfspec 1
name "iris-tune"

param hidden = 32  # the width KerasTuner starts from
param lr = 0.001
param dropout = 0.1
param activation = "relu"
param epochs = 30

data {
  source = csv("data/iris.csv", label = "species")
  split { validation = 0.2, seed = 42 }
  batch = 16
}

model Iris sequential {
  input features: float32[4]
  Dense(hidden, activation = activation)
  Dropout(dropout)
  Dense(3, activation = "softmax")
}

train {
  optimizer = Adam(learning_rate = lr)
  loss = "sparse_categorical_crossentropy"
  metrics = ["accuracy", AUC(name = "roc")]
  epochs = epochs
}

tune {
  objective = "val_accuracy"
  algorithm = "bayesian"
  max_trials = 20
  seed = 7
  num_initial_points = 4
  space {
    hidden = Int(16, 128, step = 16)  # 8 widths
    lr = Float(0.0001, 0.01, sampling = "log")
    dropout = Choice([0.1, 0.3, 0.5])
    activation = Choice(["relu", "tanh"])
  }
}
"""


def check(text: str, name: str = "t.tfspec"):
    result = validate_text(text, name)
    return result, [d for d in result.diagnostics if d.code != "W401"]


def test_valid_spec_normalizes_to_the_documented_tuning():
    result, diags = check(SPEC)
    assert diags == []
    assert tuning(result.ir) == Tuning(
        algorithm="bayesian", objective="val_accuracy", direction="max", max_trials=20,
        seed=7, options={"num_initial_points": 4},
        space=(
            Hyperparameter("hidden", "Int", {"min_value": 16, "max_value": 128, "step": 16,
                                             "sampling": "linear", "default": 32}),
            Hyperparameter("lr", "Float", {"min_value": 0.0001, "max_value": 0.01,
                                           "step": None, "sampling": "log", "default": 0.001}),
            Hyperparameter("dropout", "Choice", {"values": [0.1, 0.3, 0.5], "default": 0.1}),
            Hyperparameter("activation", "Choice", {"values": ["relu", "tanh"],
                                                    "default": "relu"}),
        ))
    untuned = check(SPEC[:SPEC.index("tune {")])[0].ir
    assert "tune" not in untuned and tuning(untuned) is None


def test_defaults_objective_direction_and_hyperband_epochs():
    text = SPEC.replace('  objective = "val_accuracy"\n', "").replace(
        'algorithm = "bayesian"\n  max_trials = 20\n  seed = 7\n  num_initial_points = 4',
        'algorithm = "hyperband"\n  factor = 2').replace(
        "param epochs = 30", "param epochs = 9")
    text = text.replace("  epochs = epochs\n", "  epochs = 9\n").replace(
        "param epochs = 9\n", "")
    result, diags = check(text)
    assert diags == []
    t = tuning(result.ir)
    assert (t.objective, t.direction, t.max_trials, t.tuner) == (
        "val_loss", "min", None, "Hyperband")
    assert t.options == {"factor": 2, "max_epochs": 9}


def test_space_size_counts_keras_tuner_values():
    result, _ = check(SPEC)
    assert space_size(tuning(result.ir)) is None  # lr is continuous
    finite = SPEC.replace('Float(0.0001, 0.01, sampling = "log")',
                          'Float(0.0001, 0.01, step = 10, sampling = "log")')
    t = tuning(check(finite)[0].ir)
    assert [values(h) for h in t.space][0] == [16, 32, 48, 64, 80, 96, 112, 128]
    assert space_size(t) == 8 * 3 * 3 * 2


def test_metric_names_per_output_and_validation():
    result, _ = check(SPEC)
    assert metric_names(result.ir) == {
        "loss": "loss", "accuracy": "Accuracy", "roc": "AUC",
        "val_loss": "loss", "val_accuracy": "Accuracy", "val_roc": "AUC"}


# Each check: (what to replace, by what) -> (code, line, col) of the diagnostic.
BAD = {
    "not_a_param": (("    lr = Float", "    lrr = Float"), ("E600", 39, 5)),
    "float_units": (("Int(16, 128, step = 16)", "Float(16, 128)"), ("E601", 38, 14)),
    "negative_dropout": (("Choice([0.1, 0.3, 0.5])", "Choice([0.1, -0.3])"), ("E601", 40, 28)),
    "dropout_one": (("Choice([0.1, 0.3, 0.5])", "Float(0.0, 1.0)"), ("E601", 40, 15)),
    "string_for_number": (("Choice([0.1, 0.3, 0.5])", 'Choice(["a"])'), ("E601", 40, 23)),
    "bad_activation": (('Choice(["relu", "tanh"])', 'Choice(["relu", "tahn"])'),
                       ("E601", 41, 34)),
    "schema_epochs": (("    lr = Float", "    epochs = Choice([0, 3])\n    lr = Float"),
                      ("E601", 39, 22)),
    "mixed_choice": (("Choice([0.1, 0.3, 0.5])", "Choice([0.1, 1])"), ("E602", 40, 28)),
    "min_above_max": (("Int(16, 128, step = 16)", "Int(128, 16)"), ("E602", 38, 23)),
    "step_zero": (("Int(16, 128, step = 16)", "Int(16, 128, step = 0)"), ("E602", 38, 34)),
    "log_from_zero": (("Float(0.0001, 0.01", "Float(0, 0.01"), ("E602", 39, 16)),
    "log_step": (('Float(0.0001, 0.01, sampling = "log")',
                  'Float(0.0001, 0.01, step = 0.5, sampling = "log")'), ("E602", 39, 37)),
    "empty_choice": (('Choice(["relu", "tanh"])', "Choice([])"), ("E602", 41, 25)),
    "ordered_strings": (('Choice(["relu", "tanh"])', 'Choice(["relu"], ordered = true)'),
                        ("E602", 41, 45)),
    "ref_in_space": (("Int(16, 128, step = 16)", "Int(16, epochs)"), ("E602", 38, 22)),
    "objective_typo": (('"val_accuracy"', '"val_acuracy"'), ("E603", 32, 15)),
    "objective_no_val": (("split { validation = 0.2, seed = 42 }", "split { seed = 42 }"),
                         ("E603", 32, 15)),
    "objective_direction": (('"val_accuracy"', '"val_roc_x"'), ("E603", 32, 15)),
    "objective_call": (('"val_accuracy"', 'Objective("val_rocc", direction = "max")'),
                       ("E603", 32, 25)),
    "objective_bad_direction": (('"val_accuracy"', 'Objective("val_roc", direction = "up")'),
                                ("E305", 32, 48)),
    "max_trials_missing": (("  max_trials = 20\n", ""), ("E604", 33, 15)),
    "other_algorithms_option": (("  seed = 7\n", "  seed = 7\n  factor = 3\n"),
                                ("E604", 36, 3)),
    "hyperband_max_trials": (('"bayesian"', '"hyperband"'), ("E604", 34, 3)),
    "grid_continuous": (('"bayesian"', '"grid"'), ("E604", 37, 10)),
    "hyperband_tunes_epochs": (('"bayesian"', '"hyperband"'), ("E604", 37, 5)),
    "empty_space": (("    hidden = Int(16, 128, step = 16)  # 8 widths\n"
                     "    lr = Float(0.0001, 0.01, sampling = \"log\")\n"
                     "    dropout = Choice([0.1, 0.3, 0.5])\n"
                     "    activation = Choice([\"relu\", \"tanh\"])\n", ""), ("E604", 37, 3)),
    "data_param": (("  batch = 16", "  batch = epochs"), ("E605", 39, 5)),
    "unknown_kind": (("Int(16, 128, step = 16)", "Integer(16, 128)"), ("E300", 38, 14)),
    "default_argument": (("Int(16, 128, step = 16)", "Int(16, 128, default = 64)"),
                         ("E301", 38, 27)),
    "step_misses_max": (("Int(16, 128, step = 16)", "Int(16, 120, step = 16)"),
                        ("W404", 38, 34)),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_check_is_located(case):
    (old, new), expected = BAD[case]
    if case in ("hyperband_max_trials", "grid_continuous", "hyperband_tunes_epochs"):
        text = SPEC.replace("  num_initial_points = 4\n", "").replace(old, new)
        if case == "grid_continuous":
            text = text.replace("  max_trials = 20\n", "")
        if case == "hyperband_tunes_epochs":
            text = text.replace("  max_trials = 20\n", "").replace(
                "    lr = Float", "    epochs = Int(5, 30)\n    lr = Float")
    elif case == "data_param":
        text = SPEC.replace(old, new).replace("    lr = Float", "    epochs = Int(5, 30)\n"
                                              "    lr = Float")
    elif case == "objective_direction":
        text = SPEC.replace(old, new).replace('AUC(name = "roc")', 'F1Score(name = "roc_x")')
    else:
        assert old in SPEC, case
        text = SPEC.replace(old, new)
    _, diags = check(text)
    assert [(d.code, d.span.line, d.span.col) for d in diags] == [expected], (
        case, [(d.code, d.message, d.span) for d in diags])


def test_hint_names_the_near_param_and_metric():
    _, diags = check(SPEC.replace("    lr = Float", "    lrr = Float"))
    assert diags[0].hint == "did you mean `lr`?"
    _, diags = check(SPEC.replace('"val_accuracy"', '"val_accurcy"'))
    assert diags[0].hint == 'did you mean "val_accuracy"?'


def test_same_diagnostics_from_json():
    bad = SPEC.replace("Int(16, 128, step = 16)", "Float(16, 128)")
    result, dsl = check(bad)
    as_json = json.dumps(result.ir, indent=2)
    _, js = check(as_json, "t.tfspec.json")
    assert [(d.code, d.message) for d in js] == [(d.code, d.message) for d in dsl]
    where = js[0].span
    assert as_json.split("\n")[where.line - 1][where.col - 1:].startswith('"Float"')


# -- best.tfspec ------------------------------------------------------------------------------

BEST = {"hidden": 96, "lr": 0.0031622776601683794, "dropout": 0.3, "activation": "tanh"}


def _changed_lines(a: str, b: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def test_with_param_values_dsl_changes_only_the_params():
    assert format_spec(check(SPEC)[0].ir) == SPEC  # the example is formatted
    best = with_param_values(SPEC, BEST, json=False)
    assert _changed_lines(SPEC, best) == [
        "-param hidden = 32  # the width KerasTuner starts from",
        "-param lr = 0.001",
        "-param dropout = 0.1",
        '-param activation = "relu"',
        "+param hidden = 96  # the width KerasTuner starts from",
        "+param lr = 0.0031622776601683794",
        "+param dropout = 0.3",
        '+param activation = "tanh"',
    ]
    result, diags = check(best)
    assert diags == [] and format_spec(result.ir) == best
    assert "# 8 widths" in best and "tune {" in best


def test_with_param_values_json_and_crlf():
    ir = check(SPEC)[0].ir
    text = (json.dumps(ir, indent=2, ensure_ascii=False) + "\n").replace("\n", "\r\n")
    best = with_param_values(text, {"hidden": 64}, json=True)
    assert "\r\n" in best
    assert _changed_lines(text.replace("\r\n", "\n"), best.replace("\r\n", "\n")) == [
        '-    "hidden": 32,', '+    "hidden": 64,']
    result, diags = check(best.replace("\r\n", "\n"), "best.tfspec.json")
    assert diags == [] and tuning(result.ir).space[0].kwargs["default"] == 64


def test_with_param_values_rejects_unknown_params():
    with pytest.raises(ValueError, match="no param `width`"):
        with_param_values(SPEC, {"width": 3}, json=False)


def test_round_trip_dsl_json_dsl_and_fmt_idempotent():
    ir = check(SPEC)[0].ir
    text = json.dumps(ir, indent=2)
    back = check(text, "t.tfspec.json")[0].ir
    assert format_spec(back) == SPEC
    assert format_spec(check(format_spec(back))[0].ir) == SPEC


def test_plan_states_the_space_and_its_size():
    from tfspec.inspect.plan import tune_plan

    finite = SPEC.replace('Float(0.0001, 0.01, sampling = "log")', "Choice([0.001, 0.01])")
    plan = tune_plan(check(finite)[0].ir)
    assert (plan["tuner"], plan["size"]) == ("BayesianOptimization", 8 * 2 * 3 * 2)
    assert plan["space"][0]["text"] == "Int(16, 128, step = 16): 8 values, starts at 32"


def test_validate_with_a_tune_section_needs_no_tensorflow(tmp_path):
    spec = tmp_path / "t.tfspec"
    spec.write_text(SPEC)
    code = ("import sys; from tfspec.lang.validate import validate_file; "
            f"r = validate_file({str(spec)!r}); assert r.ok, r.diagnostics.items; "
            "bad = [m for m in ('tensorflow', 'keras', 'keras_tuner', 'numpy') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- agreement with the installed KerasTuner ----------------------------------------------------


def test_tables_agree_with_keras_tuner():
    """Directions, enumerated values and the tuners' argument names are KerasTuner's."""
    kt = pytest.importorskip("keras_tuner")
    import inspect

    from keras_tuner.src.engine.metrics_tracking import infer_metric_direction

    from tfspec.lang import tunespace

    for name in ("val_accuracy", "accuracy", "val_auc", "val_loss", "mae", "val_mse",
                 "precision", "val_recall", "sparse_categorical_accuracy",
                 "val_categorical_crossentropy", "acc", "val_top_k_categorical_accuracy"):
        assert tunespace.direction_of(name) == infer_metric_direction(name), name
    for name in ("val_f1_score", "r2_score"):  # KerasTuner minimizes these: tfspec asks
        assert infer_metric_direction(name) == "min" and tunespace.direction_of(name) is None
    hps = kt.HyperParameters()
    for h in (Hyperparameter("a", "Int", {"min_value": 16, "max_value": 120, "step": 16}),
              Hyperparameter("b", "Int", {"min_value": 1, "max_value": 64, "step": 2,
                                          "sampling": "log"}),
              Hyperparameter("c", "Float", {"min_value": 0.1, "max_value": 0.7, "step": 0.2}),
              Hyperparameter("d", "Float", {"min_value": 0.001, "max_value": 1.0,
                                            "step": 10, "sampling": "reverse_log"})):
        hp = getattr(hps, h.kind)(h.name, **h.kwargs)
        theirs = next(p for p in hps.space if p.name == h.name)
        assert values(h) == list(theirs.values), h
        assert hp == theirs.default
    for algorithm, cls in tunespace.TUNERS.items():
        accepted = set(inspect.signature(getattr(kt, cls)).parameters) | set(
            inspect.signature(kt.Tuner).parameters)
        mine = set(tunespace.ALGORITHM_OPTIONS[algorithm]) | set(tunespace.COMMON_OPTIONS)
        assert mine <= accepted, (algorithm, mine - accepted)
        assert ("max_trials" in accepted) == (algorithm in tunespace.TAKES_MAX_TRIALS)
