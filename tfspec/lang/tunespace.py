"""The `tune` section as KerasTuner sees it: the search space, the objective, the tuner.

`tuning(ir)` normalizes a checked spec's `tune` section into a `Tuning`: KerasTuner's
own names throughout (`hp.Int(name, min_value, max_value, step, sampling)`, the
tuners' constructor arguments), so the program writes `getattr(hp, h.kind)(h.name,
**h.kwargs)` and `keras_tuner.<Tuner>(objective=keras_tuner.Objective(t.objective,
t.direction), max_trials=…, seed=…, **t.options)`. `space_size` counts the points
of a finite space the way KerasTuner enumerates them. The tables here (the calls'
arguments, the algorithms' options, which metrics are maximized) follow KerasTuner
1.4.8; tests/test_tune_lang.py compares them with the installed KerasTuner.

Standard library only: `validate` never imports KerasTuner or TensorFlow.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

from . import catalog
from .ir import OUTPUTS, declared

# -- the vocabulary --------------------------------------------------------------------

# algorithm -> the KerasTuner tuner class
TUNERS: dict[str, str] = {
    "random": "RandomSearch",
    "bayesian": "BayesianOptimization",
    "hyperband": "Hyperband",
    "grid": "GridSearch",
}
# Every tuner's arguments (its oracle's, and `Tuner`'s own) besides objective/max_trials/seed.
COMMON_OPTIONS = ("executions_per_trial", "max_retries_per_trial",
                  "max_consecutive_failed_trials", "max_model_size")
# The algorithm's own arguments, as the tuner's constructor names them.
ALGORITHM_OPTIONS: dict[str, tuple[str, ...]] = {
    "random": (),
    "bayesian": ("num_initial_points", "alpha", "beta"),
    "hyperband": ("max_epochs", "factor", "hyperband_iterations"),
    "grid": (),
}
# Which tuners take `max_trials` (Hyperband's trials follow from max_epochs and factor).
TAKES_MAX_TRIALS = ("random", "bayesian", "grid")
# The keys of `tune { … }` that are not options.
SECTION_KEYS = ("objective", "algorithm", "max_trials", "seed", "space")


def _p(name: str, required: bool = False, type: Any = None, positional: bool = True,
       **default: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "required": required, "positional": positional}
    if type is not None:
        out["type"] = type
    if "default" in default:
        out["default"] = default["default"]
    return out


_SAMPLING = {"enum": ["linear", "log", "reverse_log"]}
# The hp methods a space entry calls, in the catalog's format (so the argument checker
# reports unknown, missing and misplaced arguments as for a layer). `name` is the space's
# key and `default` the param's own value, so neither is written.
HP_CALLS: dict[str, dict[str, Any]] = {
    "Int": {
        "doc": "an integer from min_value to max_value (hp.Int)",
        "params": [
            _p("min_value", True, "int"),
            _p("max_value", True, "int"),
            _p("step", type={"any_of": ["int", "null"]}, default=None),
            _p("sampling", type=_SAMPLING, default="linear"),
        ],
    },
    "Float": {
        "doc": "a number from min_value to max_value (hp.Float)",
        "params": [
            _p("min_value", True, "number"),
            _p("max_value", True, "number"),
            _p("step", type={"any_of": ["number", "null"]}, default=None),
            _p("sampling", type=_SAMPLING, default="linear"),
        ],
    },
    "Choice": {
        "doc": "one of the listed values (hp.Choice)",
        "params": [
            _p("values", True, {"list_of": {"any_of": ["number", "string", "bool"]}}),
            _p("ordered", type={"any_of": ["bool", "null"]}, default=None),
        ],
    },
    "Boolean": {"doc": "true or false (hp.Boolean)", "params": []},
    "Fixed": {
        "doc": "one value, not searched (hp.Fixed)",
        "params": [_p("value", True, {"any_of": ["number", "string", "bool"]})],
    },
}
OBJECTIVE_CALL: dict[str, Any] = {
    "doc": "a metric and whether to maximize or minimize it (keras_tuner.Objective)",
    "params": [
        _p("name", True, "string"),
        _p("direction", True, {"enum": ["min", "max"]}),
    ],
}

# Metrics KerasTuner maximizes when the objective names them (metrics_tracking's
# _MAX_METRICS and _MAX_METRIC_FNS, plus "acc"), by the class a name resolves to.
MAX_METRICS = frozenset({
    "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "TruePositives",
    "TrueNegatives", "Precision", "Recall", "AUC", "SensitivityAtSpecificity",
    "SpecificityAtSensitivity",
    # the metric functions KerasTuner maximizes (the top-k ones resolve to their classes)
    "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
})
# Metrics where higher is better but KerasTuner infers "min" (or fails): tfspec asks
# for `Objective(…, direction = "max")` rather than silently minimizing them.
AMBIGUOUS_METRICS = frozenset({
    "F1Score", "FBetaScore", "R2Score", "IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU",
    "BinaryIoU", "PrecisionAtRecall", "RecallAtPrecision", "PearsonCorrelation",
    "ConcordanceCorrelation", "CosineSimilarity",
})


# -- the normalized section -----------------------------------------------------------


@dataclass(frozen=True)
class Hyperparameter:
    """One searched param: `getattr(hp, kind)(name, **kwargs)`.

    kwargs, by kind: Int/Float: min_value, max_value, step (None: none), sampling;
    Choice: values (and ordered when the spec says); Boolean: nothing; Fixed: value.
    Plus "default": the param's value in the spec, when it lies in the space
    (KerasTuner's first trial then trains the spec as written).
    """

    name: str
    kind: str  # "Int" | "Float" | "Choice" | "Boolean" | "Fixed": KerasTuner's hp methods
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def default(self) -> Any:
        """The value KerasTuner starts from (its own rule when the spec's lies outside)."""
        if "default" in self.kwargs:
            return self.kwargs["default"]
        if self.kind in ("Int", "Float"):
            return self.kwargs["min_value"]
        if self.kind == "Choice":
            return self.kwargs["values"][0]
        if self.kind == "Fixed":
            return self.kwargs["value"]
        return False


@dataclass(frozen=True)
class Tuning:
    """A spec's `tune` section, normalized (see docs/language.md, "tune")."""

    algorithm: str  # "random" | "bayesian" | "hyperband" | "grid"
    objective: str  # e.g. "val_accuracy"
    direction: str  # "max" | "min"
    max_trials: int | None
    seed: int | None
    # the tuner's other keyword arguments, KerasTuner's names (max_epochs, factor,
    # num_initial_points, executions_per_trial …); hyperband's max_epochs is always set
    options: dict[str, Any]
    space: tuple[Hyperparameter, ...]

    @property
    def tuner(self) -> str:
        """The KerasTuner class: RandomSearch, BayesianOptimization, Hyperband, GridSearch."""
        return TUNERS[self.algorithm]

    def hyperparameter(self, name: str) -> Hyperparameter | None:
        return next((h for h in self.space if h.name == name), None)


def tuning(ir: dict[str, Any]) -> Tuning | None:
    """The checked spec's `tune` section, normalized; None without one.

    Call it on a spec that validates: a malformed section raises ValueError.
    """
    tune = ir.get("tune")
    if tune is None:
        return None
    if not isinstance(tune, dict):
        raise ValueError("`tune` is not a section")
    params = ir.get("params") if isinstance(ir.get("params"), dict) else {}
    algorithm = tune.get("algorithm", "random")
    objective, direction = objective_of(tune.get("objective"), ir)
    if direction is None:
        raise ValueError(f"cannot infer whether to maximize {objective!r}")
    options = {k: v for k, v in tune.items() if k not in SECTION_KEYS}
    if algorithm == "hyperband" and "max_epochs" not in options:
        epochs = param_value((ir.get("train") or {}).get("epochs"), params)
        if epochs is not None:
            options["max_epochs"] = epochs
    space = tuple(hyperparameter(name, call, params.get(name))
                  for name, call in (tune.get("space") or {}).items())
    return Tuning(
        algorithm=algorithm,
        objective=objective,
        direction=direction,
        max_trials=tune.get("max_trials"),
        seed=tune.get("seed"),
        options=options,
        space=space,
    )


def hyperparameter(name: str, call: dict[str, Any], declared: Any = None) -> Hyperparameter:
    """A space entry `Int(32, 256, step = 32)` as KerasTuner's keyword arguments."""
    kind = call["call"]
    entry = HP_CALLS[kind]
    kwargs: dict[str, Any] = {}
    names = [p["name"] for p in entry["params"]]
    for i, arg in enumerate(call.get("args") or []):
        kwargs[names[i]] = arg
    kwargs.update(call.get("kwargs") or {})
    if kind in ("Int", "Float"):
        cast = int if kind == "Int" else float
        kwargs = {
            "min_value": cast(kwargs["min_value"]),
            "max_value": cast(kwargs["max_value"]),
            "step": None if kwargs.get("step") is None else cast(kwargs["step"]),
            "sampling": kwargs.get("sampling") or "linear",
        }
    elif kind == "Choice":
        kwargs = {"values": list(kwargs["values"]),
                  **({"ordered": kwargs["ordered"]} if kwargs.get("ordered") is not None
                     else {})}
    h = Hyperparameter(name, kind, kwargs)
    if kind != "Fixed" and in_space(h, declared):
        kwargs["default"] = float(declared) if kind == "Float" else declared
    return h


def param_value(value: Any, params: dict[str, Any]) -> Any:
    """A literal, or the value of the param a `{"ref"}` names (None otherwise)."""
    if isinstance(value, dict) and isinstance(value.get("ref"), str):
        value = params.get(value["ref"])
    return value if isinstance(value, (int, float, str, bool)) else None


# -- points of the space ------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def stepped(h: Hyperparameter) -> bool:
    """Whether an Int/Float has finitely many values (KerasTuner: a step, or Int linear)."""
    if h.kind == "Int":
        return h.kwargs.get("step") is not None or h.kwargs.get("sampling") == "linear"
    return h.kind == "Float" and h.kwargs.get("step") is not None


def values(h: Hyperparameter) -> list[Any] | None:
    """The values KerasTuner enumerates for `h` (its `values` property), in its order;
    None for a continuous Int/Float. Mirrors `Numerical._get_n_values` and
    `_get_value_by_index`, floating-point floor division included."""
    if h.kind == "Boolean":
        return [True, False]
    if h.kind == "Fixed":
        return [h.kwargs["value"]]
    if h.kind == "Choice":
        return list(h.kwargs["values"])
    if not stepped(h):
        return None
    lo, hi = h.kwargs["min_value"], h.kwargs["max_value"]
    step = h.kwargs.get("step")
    if step is None:
        step = 1
    sampling = h.kwargs.get("sampling") or "linear"
    if sampling == "linear":
        n = int((hi - lo) // step + 1)
        out = [lo + i * step for i in range(n)]
    else:
        n = int(math.log(hi / lo, step) + 1e-8) + 1
        if sampling == "log":
            out = [lo * math.pow(step, i) for i in range(n)]
        else:
            out = [hi + lo - lo * math.pow(step, i) for i in range(n)]
    return [int(v) for v in out] if h.kind == "Int" else out


def count(h: Hyperparameter) -> int | None:
    """How many values `h` takes; None when continuous."""
    vals = values(h)
    return None if vals is None else len(vals)


def space_size(t: Tuning) -> int | None:
    """Points of a finite space (the product of each param's count); None when continuous."""
    total = 1
    for h in t.space:
        n = count(h)
        if n is None:
            return None
        total *= n
    return total


def in_space(h: Hyperparameter, value: Any) -> bool:
    """Whether `value` is one of `h`'s values (on the step grid for a stepped Int/Float)."""
    if h.kind == "Boolean":
        return isinstance(value, bool)
    if h.kind == "Fixed":
        return same(value, h.kwargs["value"])
    if h.kind == "Choice":
        return any(same(value, v) for v in h.kwargs["values"])
    if not _is_number(value) or (h.kind == "Int" and not _is_int(value)):
        return False
    if not h.kwargs["min_value"] <= value <= h.kwargs["max_value"]:
        return False
    vals = values(h)
    return vals is None or any(math.isclose(value, v, rel_tol=1e-9, abs_tol=1e-12)
                               for v in vals)


def same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return type(a) is type(b) and a == b or (_is_number(a) and _is_number(b) and a == b)


def describe(h: Hyperparameter) -> str:
    """`Int(32, 256, step = 32): 8 values` — one line of `tfspec plan`."""
    kw = h.kwargs
    if h.kind in ("Int", "Float"):
        parts = [_num(kw["min_value"]), _num(kw["max_value"])]
        if kw.get("step") is not None:
            parts.append(f"step = {_num(kw['step'])}")
        if kw.get("sampling", "linear") != "linear":
            parts.append(f'sampling = "{kw["sampling"]}"')
    elif h.kind == "Choice":
        parts = ["[" + ", ".join(_lit(v) for v in kw["values"]) + "]"]
    elif h.kind == "Fixed":
        parts = [_lit(kw["value"])]
    else:
        parts = []
    n = count(h)
    size = "continuous" if n is None else f"{n} value{'s' if n != 1 else ''}"
    return f"{h.kind}({', '.join(parts)}): {size}, starts at {_lit(h.default)}"


def _num(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def _lit(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return _num(v)


# -- the objective ------------------------------------------------------------------------


def objective_of(value: Any, ir: dict[str, Any]) -> tuple[str, str | None]:
    """(name, direction) of `objective = "val_accuracy"` or `Objective("val_auc", "max")`;
    the direction is None when it cannot be inferred (the checker reports that)."""
    if isinstance(value, dict) and value.get("call") == "Objective":
        args = list(value.get("args") or [])
        kwargs = dict(value.get("kwargs") or {})
        names = [p["name"] for p in OBJECTIVE_CALL["params"]]
        bound = dict(zip(names, args, strict=False)) | kwargs
        return bound.get("name"), bound.get("direction")
    if not isinstance(value, str):
        value = "val_loss" if has_validation(ir) else "loss"
    produced = metric_names(ir)
    return value, direction_of(value, produced)


def direction_of(name: str, produced: dict[str, str] | None = None) -> str | None:
    """"max" or "min" for an objective name, as KerasTuner infers it; None when unknown
    or when KerasTuner would minimize a metric where higher is better (F1Score …).

    `produced` maps the spec's logged names to the metric class (or "loss") that logs
    them, which also covers names KerasTuner cannot read (`val_digit_accuracy`,
    `AUC(name = "roc")`)."""
    identity = (produced or {}).get(name) or _identity(name)
    if identity is None or identity in AMBIGUOUS_METRICS:
        return None
    return "max" if identity in MAX_METRICS else "min"


def _identity(name: str) -> str | None:
    """KerasTuner's reading of a plain name: strip `val_` and `weighted_`, then resolve."""
    base = name.removeprefix("val_").removeprefix("weighted_")
    if base in ("loss", "crossentropy", "ce"):
        return "loss"
    if base == "acc":
        return "Accuracy"
    return _metric_classes().get(base)


@functools.cache
def _metric_classes() -> dict[str, str]:
    """Identifier or class name -> the class, for the metrics and losses of the catalog."""

    out: dict[str, str] = {}
    for category in ("metrics", "losses"):  # KerasTuner tries the metrics first
        for name in catalog.names(category):
            entry = catalog.lookup(category, name) or {}
            # "accuracy" and "crossentropy" name a class chosen per loss by compile
            fallback = "Accuracy" if name.lower() in ("accuracy", "acc") else "loss"
            out.setdefault(name, entry.get("name") or fallback)
    return out


def has_validation(ir: dict[str, Any]) -> bool:
    """Whether training logs `val_…` metrics: the data section holds out a validation set."""
    data = ir.get("data") if isinstance(ir.get("data"), dict) else {}
    split = data.get("split") if isinstance(data.get("split"), dict) else {}
    return split.get("validation") is not None


def metric_names(ir: dict[str, Any]) -> dict[str, str]:
    """The names `fit` logs for this spec -> the metric class (or "loss") behind each:
    "loss", "<output>_loss" for several outputs, each metric under its Keras name
    (the identifier as written, or the call's `name`, or its class in snake case),
    prefixed by its output's name for several outputs; all again with `val_` when the
    data section holds out a validation set."""
    train = ir.get("train") if isinstance(ir.get("train"), dict) else {}
    outputs = _outputs(ir)
    names: dict[str, str] = {"loss": "loss"}
    if len(outputs) > 1:
        for out in outputs:
            names[f"{out}_loss"] = "loss"
    metrics = train.get("metrics")
    per_output: dict[str | None, list[Any]] = {}
    if isinstance(metrics, list):
        per_output = {None: metrics} if len(outputs) <= 1 else {o: metrics for o in outputs}
    elif isinstance(metrics, dict) and "call" not in metrics and "ref" not in metrics:
        per_output = {k: v if isinstance(v, list) else [v] for k, v in metrics.items()}
    classes = _metric_classes()
    for out, items in per_output.items():
        for m in items:
            named = _metric_name(m, classes)
            if named is None:
                continue
            name, cls = named
            names[f"{out}_{name}" if out else name] = cls
    if has_validation(ir):
        names.update({f"val_{k}": v for k, v in list(names.items())})
    return names


def _metric_name(m: Any, classes: dict[str, str]) -> tuple[str, str] | None:
    if isinstance(m, str):
        return m, classes.get(m) or ("Accuracy" if m == "acc" else m)
    if isinstance(m, dict) and isinstance(m.get("call"), str):
        cls = classes.get(m["call"], m["call"])
        name = (m.get("kwargs") or {}).get("name")
        return (name if isinstance(name, str) else catalog.snake_case(cls)), cls
    return None


def _outputs(ir: dict[str, Any]) -> list[str]:
    model = ir.get("model") if isinstance(ir.get("model"), dict) else {}
    if model.get("kind") == "sequential":
        return []
    return [n for n in declared(model.get("body") or [], *OUTPUTS) if isinstance(n, str)]


__all__ = [
    "ALGORITHM_OPTIONS", "COMMON_OPTIONS", "HP_CALLS", "OBJECTIVE_CALL", "TUNERS",
    "Hyperparameter", "Tuning", "count", "describe", "direction_of", "has_validation",
    "in_space", "metric_names", "objective_of", "space_size", "tuning", "values",
    "with_param_values",
]


def with_param_values(text: str, values: dict[str, Any], *, json: bool) -> str:
    """The spec's text with those params' values as their declared values (best.tfspec);
    see `paramvalues.with_param_values`."""
    from .paramvalues import with_param_values as rewrite

    return rewrite(text, values, json=json)
