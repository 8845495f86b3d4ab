"""Checks of what training means: settings Keras accepts, then fails on or ignores.

A callback that monitors a metric nothing logs (Keras stops after the first epoch
with "cannot determine mode", or warns every epoch and never acts), a
`ModelCheckpoint` path Keras 3 rejects, a loss its output layer cannot feed (a
crossentropy over one unit, a softmax over one unit). Each rule is Keras's own,
written here from the Keras source it names, so `validate` finds the mistake
without importing Keras. Errors where training certainly fails or cannot learn;
warnings (W405) where the setup is almost always a mistake but can be meant.

Called by `check.Checker.run` once the rest of the spec is checked; `ck` is that
checker (its params' values, as declared or given by `--set`, and its reporting).
"""

from __future__ import annotations

from typing import Any

from . import catalog
from .checktune import unlogged
from .ir import escape
from .schema import expression_value, show
from .tunespace import metric_names

Checker = Any  # check.Checker (not imported: check imports this module)
# (call, its pointer, words for the output, the output's name): check.output_layers
OutputLayer = tuple[dict[str, Any], str, str, str | None]

# Names `fit` logs that no metric declares: ReduceLROnPlateau and LearningRateScheduler
# add the optimizer's rate to the epoch's logs.
_ALSO_LOGGED = {"learning_rate"}


def check_meaning(ck: Checker, train: dict[str, Any], outputs: list[OutputLayer]) -> None:
    """Report callbacks and losses that cannot work as written."""
    callbacks = train.get("callbacks")
    for i, cb in enumerate(callbacks if isinstance(callbacks, list) else []):
        name = cb.get("call") if isinstance(cb, dict) else None
        entry = catalog.lookup("callbacks", name) if isinstance(name, str) else None
        if entry is None:
            continue  # not a call, or an unknown callback: reported already
        at = f"/train/callbacks/{i}"
        args = bind(entry, cb, at)
        _check_monitor(ck, name, entry, args, at)
        if entry.get("name") == "ModelCheckpoint":
            _check_checkpoint_path(ck, args)
    for call, at, what, output in outputs:
        loss, lat = _loss_of(train, output)
        if loss is not None:
            _check_loss(ck, loss, lat, call, at, what)


def bind(entry: dict[str, Any], call: dict[str, Any], at: str) -> dict[str, tuple[Any, str]]:
    """A call's arguments by the catalog's parameter names -> (value, pointer)."""
    positional = [p["name"] for p in entry.get("params", []) if p.get("positional", True)]
    out = {name: (value, f"{at}/args/{i}")
           for i, (name, value) in enumerate(zip(positional, call.get("args") or [],
                                                 strict=False))}
    kwargs = call.get("kwargs") if isinstance(call.get("kwargs"), dict) else {}
    out.update({k: (v, f"{at}/kwargs/{escape(k)}") for k, v in kwargs.items()})
    return out


def known(ck: Checker, value: Any) -> Any:
    """A literal, or the value a param (as declared or `--set`) or arithmetic over
    params gives; UNRESOLVED when the checker cannot know it."""
    if isinstance(value, (str, bool)) or value is None:
        return value
    values = {n: v for n, v in ck.param_values.items()
              if isinstance(v, (str, int, float, bool)) or v is None}
    return expression_value(value, values)


def _via(ck: Checker, value: Any) -> str:
    """" (from `m`)" when a value comes from a param."""
    if isinstance(value, dict) and value.get("ref") in ck.params:
        return f" (from {ck.param_origin([value['ref']])[0]})"
    return ""


# -- callbacks ---------------------------------------------------------------------------


def _check_monitor(ck: Checker, name: str, entry: dict[str, Any],
                   args: dict[str, tuple[Any, str]], at: str) -> None:
    """`monitor` names a logged metric (keras/src/callbacks/monitor_callback.py: a name
    not in the logs is "not available" every epoch, and with `mode = "auto"` one
    Keras cannot direct stops training after the first epoch)."""
    params = {p["name"]: p for p in entry.get("params", [])}
    if "monitor" not in params:
        return

    def given(key: str) -> Any:
        return known(ck, args.get(key, (params.get(key, {}).get("default"),))[0])

    value, mat = args.get("monitor", (params["monitor"].get("default"), f"{at}/call"))
    monitor = known(ck, value)
    if not isinstance(monitor, str) or not _names_known(ck.ir):
        return
    produced = metric_names(ck.ir)
    if monitor in produced or monitor in _ALSO_LOGGED:
        return
    # A checkpoint that keeps every epoch reads `monitor` only to direct it: with mode
    # "auto", Keras fails on a name that is neither a loss nor a compiled metric.
    if "save_best_only" in params and given("save_best_only") is not True and not (
            given("mode") == "auto" and monitor.removeprefix("val_") not in produced):
        return
    without_validation, hint = unlogged(ck.ir, monitor, produced)
    what = f"`{name}` monitors `{monitor}`" + (
        " (its default)" if "monitor" not in args else _via(ck, value))
    if without_validation:
        ck.error("E411", f"{what}, which is never logged: the data section holds out no "
                 "validation set", mat, hint)
    else:
        ck.error("E411", f"{what}, which this spec never logs", mat, hint)


def _names_known(ir: dict[str, Any]) -> bool:
    """Whether `metric_names` knows every name `fit` logs: each metric is an identifier,
    or a call whose `name`, if given, is a string (not a param)."""
    train = ir.get("train") if isinstance(ir.get("train"), dict) else {}
    metrics = train.get("metrics", [])
    if isinstance(metrics, dict) and "call" not in metrics and "ref" not in metrics:
        metrics = [m for v in metrics.values() for m in (v if isinstance(v, list) else [v])]
    if not isinstance(metrics, list):
        return False
    for m in metrics:
        if isinstance(m, str):
            continue
        if not (isinstance(m, dict) and isinstance(m.get("call"), str)):
            return False
        kwargs = m.get("kwargs") if isinstance(m.get("kwargs"), dict) else {}
        if "name" in kwargs and not isinstance(kwargs["name"], str):
            return False
        if m.get("args"):  # a metric's name may be given by position
            return False
    return True


_CHECKPOINT_SUFFIXES = (".weights.h5", ".keras", ".h5", ".hdf5", ".ckpt", ".tf")


def _check_checkpoint_path(ck: Checker, args: dict[str, tuple[Any, str]]) -> None:
    """Keras 3's rule (ModelCheckpoint.__init__ in keras/src/callbacks/model_checkpoint.py):
    weights go to a path ending in `.weights.h5`, a whole model to `.keras` (or `.h5`)."""
    if "filepath" not in args:
        return  # E302 reported it
    value, pat = args["filepath"]
    path = known(ck, value)
    weights_only = known(ck, args.get("save_weights_only", (False,))[0])
    if not isinstance(path, str) or not isinstance(weights_only, bool):
        return
    stem = next((path[: -len(s)] for s in _CHECKPOINT_SUFFIXES if path.endswith(s)), path)
    stem = stem + "model" if stem.endswith("/") else stem
    via = _via(ck, value)
    if weights_only and not path.endswith(".weights.h5"):
        ck.error("E412", "with `save_weights_only = true`, Keras 3's `ModelCheckpoint` needs "
                 f"a path ending in `.weights.h5`. Received: {show(path)}{via}", pat,
                 f'write "{stem}.weights.h5"')
    elif not weights_only and not path.endswith((".keras", ".h5")):
        ck.error("E412", "Keras 3's `ModelCheckpoint` saves the whole model, to a path "
                 f"ending in `.keras`. Received: {show(path)}{via}", pat,
                 f'write "{stem}.keras", or save the weights only: `save_weights_only = '
                 f'true` with "{stem}.weights.h5"')


# -- a loss against its output layer -----------------------------------------------------

_FAMILIES = {
    "binary_crossentropy": "binary", "BinaryCrossentropy": "binary",
    "binary_focal_crossentropy": "binary", "BinaryFocalCrossentropy": "binary",
    "categorical_crossentropy": "categorical", "CategoricalCrossentropy": "categorical",
    "categorical_focal_crossentropy": "categorical",
    "CategoricalFocalCrossentropy": "categorical",
    "sparse_categorical_crossentropy": "sparse", "SparseCategoricalCrossentropy": "sparse",
}
# the activation each family's `from_logits = true` applies itself
_LOGITS_ACTIVATION = {"binary": "sigmoid", "categorical": "softmax", "sparse": "softmax"}


def _loss_of(train: dict[str, Any], output: str | None) -> tuple[Any, str]:
    """The loss of one output (None for a sequential model's) and its pointer."""
    loss = train.get("loss")
    if isinstance(loss, dict) and "call" not in loss and "ref" not in loss:
        if output is None or output not in loss:
            return None, ""
        return loss[output], f"/train/loss/{escape(output)}"
    return loss, "/train/loss"


def _check_loss(ck: Checker, loss: Any, lat: str, layer: dict[str, Any], at: str,
                what: str) -> None:
    """A crossentropy against the `Dense` that makes its output: its units and activation."""
    resolved = known(ck, loss) if not isinstance(loss, dict) or "call" not in loss else loss
    name = resolved.get("call") if isinstance(resolved, dict) else resolved
    entry = catalog.lookup("losses", name) if isinstance(name, str) else None
    dense = catalog.lookup("layers", layer.get("call"))
    if entry is None or dense is None or dense.get("name") != "Dense":
        return  # another layer (or a block) makes the output: its own units decide
    layer_args = bind(dense, layer, at)
    units = known(ck, layer_args.get("units", (None,))[0])
    act_value, act_at = layer_args.get("activation", (None, at + "/call"))
    activation = known(ck, act_value)
    activation = "linear" if activation is None else activation
    if not isinstance(units, int) or isinstance(units, bool):
        return
    span = ck.pos.value(at)
    what += f" (`Dense({units}, …)`, line {span.line})" if span else ""
    if activation == "softmax" and units == 1:
        ck.error("E413", f"a softmax over one unit is always 1: {what} cannot learn", act_at,
                 'for a yes/no label, use `activation = "sigmoid"` with "binary_crossentropy"')
        return
    family = _FAMILIES.get(entry.get("name") or name)
    if family is None:
        return
    logits, logits_at = False, lat
    if isinstance(resolved, dict):
        loss_args = bind(entry, resolved, lat)
        logits = known(ck, loss_args.get("from_logits", (False,))[0])
        logits_at = loss_args.get("from_logits", (None, lat))[1]
    if not isinstance(logits, bool) or not isinstance(activation, str):
        return
    shown = name if isinstance(name, str) else "the loss"
    if units == 1 and family != "binary":
        _one_unit(ck, shown, family, lat, what)
    elif family == "binary" and activation == "softmax":
        ck.error("W405", f"`{shown}` scores each unit as its own yes/no label, but {what} is a "
                 f"softmax over {units} units (one choice among them): integer labels fail "
                 "with a shape error", lat,
                 f'use "sparse_categorical_crossentropy" for integer labels with a softmax '
                 f'over {units} classes ("categorical_crossentropy" for one-hot labels); '
                 f'for {units} independent yes/no labels, `activation = "sigmoid"`')
    elif not logits and activation == "linear":
        act = _LOGITS_ACTIVATION[family]
        ck.error("W405", f"`{shown}` expects probabilities, but {what} has no activation: "
                 f"`Dense({units})` gives logits", lat,
                 f'add `activation = "{act}"`, or give the loss `from_logits = true`')
    elif logits and activation in ("sigmoid", "softmax"):
        ck.error("W405", f"`from_logits = true` makes `{shown}` apply a "
                 f"{_LOGITS_ACTIVATION[family]} itself, but {what} already has "
                 f'`activation = "{activation}"`', logits_at,
                 "remove the activation, or write `from_logits = false`")


def _one_unit(ck: Checker, loss: str, family: str, at: str, what: str) -> None:
    """A categorical crossentropy over one unit: always 0 (Keras divides the output by
    its sum), or labels out of range."""
    if family == "categorical":
        ck.error("E413", f"`{loss}` over one unit is always 0 (Keras divides the output by "
                 f"its sum): {what} cannot learn", at,
                 'for a yes/no label, use "binary_crossentropy" with `Dense(1, activation = '
                 '"sigmoid")`; for N classes, `Dense(N, activation = "softmax")`')
    else:
        ck.error("E413", f"`{loss}` needs one unit per class, but {what} has one: any "
                 "label but 0 is out of range", at,
                 'for two classes, use `Dense(2, activation = "softmax")`, or `Dense(1, '
                 'activation = "sigmoid")` with "binary_crossentropy"')
