"""Checks of the `tune` section: the space against the params, KerasTuner's rules, the objective.

Called by `check.Checker.run` after the rest of the spec is checked, so every use
of a param (`Dense(hidden)`, `train.epochs = epochs`) is known: a space must give
values that fit the param's declared kind and every one of its uses. What KerasTuner
would reject at run time (min > max, a log range from 0, a Choice of mixed types, an
objective it cannot direct, Hyperband without epochs) is reported here, located, with
KerasTuner's own names. Never imports KerasTuner.
"""

from __future__ import annotations

import math
from typing import Any

from . import catalog
from .diagnostics import did_you_mean
from .ir import escape
from .schema import resolved_problems, show
from .tunespace import (
    ALGORITHM_OPTIONS,
    COMMON_OPTIONS,
    HP_CALLS,
    OBJECTIVE_CALL,
    SECTION_KEYS,
    TAKES_MAX_TRIALS,
    TUNERS,
    Hyperparameter,
    direction_of,
    has_validation,
    hyperparameter,
    metric_names,
    param_value,
    stepped,
    values,
)

# `ck` below is the running `check.Checker` (its params, the uses of each param, its
# error reporting and argument checker); not imported, as check imports this module.
Checker = Any

__all__ = ["HP_CALLS", "OBJECTIVE_CALL", "check_tune", "unlogged"]

_AT = "/tune"


def check_tune(ck: Checker, tune: Any) -> None:
    """Report every problem of the `tune` section (a dict, or the schema reported it)."""
    if not isinstance(tune, dict):
        return
    algorithm = tune.get("algorithm", "random")
    if algorithm not in TUNERS:
        return  # the schema reported it
    _check_options(ck, tune, algorithm)
    _check_objective(ck, tune.get("objective"))
    space = tune.get("space")
    if not isinstance(space, dict):
        return
    if not space:
        ck.error("E604", "the search space is empty: nothing to tune", f"{_AT}/space",
                 hint="name the params to search, e.g. `space { hidden = Int(32, 256, "
                      "step = 32) }`")
        return
    data_refs = _refs_at(ck.ir.get("data"), "/data")
    hps: list[tuple[Hyperparameter, str]] = []
    for name, call in space.items():
        at = f"{_AT}/space/{escape(name)}"
        h = _check_entry(ck, name, call, at, data_refs)
        if h is not None:
            hps.append((h, at))
    if algorithm == "grid":
        for h, at in hps:
            if values(h) is None:
                ck.error("E604", f"a grid search needs a finite grid, but `{h.name}` = "
                         f"{h.kind}(…) is continuous (KerasTuner's GridSearch would try 10 "
                         "values of its own choosing)", f"{at}/call",
                         hint="give it `step = …`, or list the values with `Choice([…])`")
    if algorithm == "hyperband":
        for h, at in hps:
            if _is_epochs(ck.ir, h.name):
                ck.error("E604", f"Hyperband sets each trial's epochs itself; `{h.name}` "
                         "(train.epochs) cannot be tuned with it", at, key=True,
                         hint="remove it from the space; `max_epochs` bounds the epochs")


# -- the tuner's settings ------------------------------------------------------------------


def _check_options(ck: Checker, tune: dict[str, Any], algorithm: str) -> None:
    where = f"{_AT}/algorithm" if "algorithm" in tune else _AT
    own = ALGORITHM_OPTIONS[algorithm]
    for key in tune:
        if key in SECTION_KEYS or key in COMMON_OPTIONS or key in own:
            continue
        owner = next((a for a, opts in ALGORITHM_OPTIONS.items() if key in opts), None)
        if owner is None:
            continue  # not an option at all: the schema reported it
        takes = ", ".join(f"`{o}`" for o in own) or "no options of its own"
        ck.error("E604", f"`{key}` is an option of {owner}; {TUNERS[algorithm]} does not "
                 f"take it", f"{_AT}/{escape(key)}", key=True,
                 hint=f'`algorithm = "{algorithm}"` takes {takes}')
    if algorithm == "hyperband":
        if "max_trials" in tune:
            ck.error("E604", "Hyperband does not take `max_trials`: its trials follow from "
                     "`max_epochs`, `factor` and `hyperband_iterations`",
                     f"{_AT}/max_trials", key=True,
                     hint="remove it, or lower `max_epochs` for a shorter search")
        if "max_epochs" not in tune and _train_epochs(ck.ir) is None:
            ck.error("E604", "Hyperband needs the most epochs a model may train: set "
                     "`max_epochs` here or `epochs` in `train`", where,
                     hint="e.g. `max_epochs = 30`")
    elif algorithm in TAKES_MAX_TRIALS and algorithm != "grid" and "max_trials" not in tune \
            and not any(did_you_mean(k, ["max_trials"]) for k in tune if k not in SECTION_KEYS):
        ck.error("E604", f"{TUNERS[algorithm]} needs `max_trials`: how many models to try",
                 where, hint="e.g. `max_trials = 20` (`tfspec tune --max-trials N` "
                             "overrides it)")


def _train_epochs(ir: dict[str, Any]) -> Any:
    train = ir.get("train") if isinstance(ir.get("train"), dict) else {}
    params = ir.get("params") if isinstance(ir.get("params"), dict) else {}
    return param_value(train.get("epochs"), params)


def _is_epochs(ir: dict[str, Any], name: str) -> bool:
    train = ir.get("train") if isinstance(ir.get("train"), dict) else {}
    epochs = train.get("epochs")
    return isinstance(epochs, dict) and epochs.get("ref") == name


# -- the objective ---------------------------------------------------------------------------


def _check_objective(ck: Checker, objective: Any) -> None:
    if objective is None:
        return
    at = f"{_AT}/objective"
    name, direction, name_at = objective, None, at
    if isinstance(objective, dict):
        if ck.call(objective, at, "objectives") is None:
            return
        args, kwargs = objective.get("args") or [], objective.get("kwargs") or {}
        name = args[0] if args else kwargs.get("name")
        name_at = f"{at}/args/0" if args else f"{at}/kwargs/name"
        direction = args[1] if len(args) > 1 else kwargs.get("direction")
    if not isinstance(name, str):
        return
    produced = metric_names(ck.ir)
    if name not in produced:
        _unknown_objective(ck, name, name_at, produced)
        return
    if direction is None and direction_of(name, produced) is None:
        ck.error("E603", f"cannot tell whether to maximize or minimize `{name}`: KerasTuner "
                 "would minimize it (it maximizes only accuracies, AUC, precision, recall "
                 "and true positives/negatives)", name_at,
                 hint=f'say it: `objective = Objective("{name}", direction = "max")`')


def _unknown_objective(ck: Checker, name: str, at: str, produced: dict[str, str]) -> None:
    without_validation, hint = unlogged(ck.ir, name, produced)
    if without_validation:
        ck.error("E603", f"`{name}` is never logged: the data section holds out no "
                 "validation set", at, hint)
        return
    ck.error("E603", f"no metric of this spec is logged as `{name}`", at, hint)


def unlogged(ir: dict[str, Any], name: str, produced: dict[str, str]) -> tuple[bool, str]:
    """Why `name`, not among `produced` (`metric_names`), is never logged: whether it is
    a `val_` name of a spec that holds out no validation set, and the hint (the name
    meant, or the names logged). For the objective here and callbacks' `monitor`."""
    validation = has_validation(ir)
    if name.startswith("val_") and not validation and name[4:] in produced:
        return True, f'add `split {{ validation = 0.2 }}` to `data`, or use "{name[4:]}"'
    hint = did_you_mean(name, produced, string=True)
    if hint is None and not name.startswith("val_") and validation and (
            f"val_{name}" not in produced):
        hint = did_you_mean(f"val_{name}", produced, string=True)
    if hint is None:
        shown = [n for n in produced if n.startswith("val_")] or list(produced)
        hint = "this spec logs " + ", ".join(f'"{n}"' for n in shown[:8])
    return False, hint


# -- one space entry --------------------------------------------------------------------------


def _check_entry(ck: Checker, name: str, call: Any, at: str,
                 data_refs: dict[str, str]) -> Hyperparameter | None:
    if name not in ck.params:
        hint = did_you_mean(name, ck.params) or (
            f"declare it first: `param {name} = …`" if ck.params else
            f"this spec declares no params; declare one: `param {name} = …`")
        ck.error("E600", f"`{name}` is not a param of this spec; only params can be tuned",
                 at, hint, key=True)
        return None
    if name in data_refs:
        line = ck.pos.value(data_refs[name])
        where = f" (line {line.line})" if line else ""
        ck.error("E605", f"`{name}` is used in `data`{where}, which is built once for the "
                 "whole search: the search cannot change it", at, key=True,
                 hint="tune the model's and training's params; compare data settings "
                      f"with `tfspec run --set {name}=…`")
        return None
    if not isinstance(call, dict) or not isinstance(call.get("call"), str):
        return None  # the schema reported it
    if ck.call(call, at, "hyperparameters") is None:
        return None
    errors = len(ck.diags.items)
    args = _bound(call)
    for key, value in args.items():
        if _non_literal(value):
            ck.error("E602", f"a search space holds literal values. Received: "
                     f"{key}={show(value)}", args_at(call, at, key),
                     hint="write the numbers themselves")
    if len(ck.diags.items) > errors or _missing(call):
        return None
    kind = call["call"]
    if kind in ("Int", "Float"):
        _check_range(ck, kind, args, call, at)
    elif kind == "Choice":
        _check_choice(ck, args, call, at)
    if len(ck.diags.items) > errors:
        return None
    h = hyperparameter(name, call, ck.ir.get("params", {}).get(name))
    _check_fits(ck, h, call, at)
    return h


def _bound(call: dict[str, Any]) -> dict[str, Any]:
    names = [p["name"] for p in HP_CALLS[call["call"]]["params"]]
    out = dict(zip(names, call.get("args") or [], strict=False))
    out.update(call.get("kwargs") or {})
    return out


def args_at(call: dict[str, Any], at: str, key: str) -> str:
    """The pointer of argument `key`, written by position or by keyword."""
    if key in (call.get("kwargs") or {}):
        return f"{at}/kwargs/{escape(key)}"
    names = [p["name"] for p in HP_CALLS[call["call"]]["params"]]
    return f"{at}/args/{names.index(key)}"


def _missing(call: dict[str, Any]) -> bool:
    args = _bound(call)
    return any(p.get("required") and p["name"] not in args
               for p in HP_CALLS[call["call"]]["params"])


def _non_literal(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)


def _check_range(ck: Checker, kind: str, args: dict[str, Any], call: dict[str, Any],
                 at: str) -> None:
    lo, hi = args["min_value"], args["max_value"]
    step, sampling = args.get("step"), args.get("sampling") or "linear"
    if not all(_number(v) for v in (lo, hi)) or not (step is None or _number(step)):
        return  # the argument checker reported it
    if lo > hi:
        ck.error("E602", f"min_value {show(lo)} is greater than max_value {show(hi)}",
                 args_at(call, at, "max_value"), hint="swap them")
        return
    if sampling != "linear":
        if lo <= 0:
            ck.error("E602", f'sampling = "{sampling}" needs a positive min_value. '
                     f"Received: min_value={show(lo)}", args_at(call, at, "min_value"),
                     hint='start above 0 (e.g. 1e-5), or use sampling = "linear"')
            return
        if step is not None and step <= 1:
            ck.error("E602", f'with sampling = "{sampling}", step multiplies: expected '
                     f"step > 1. Received: step={show(step)}", args_at(call, at, "step"),
                     hint="e.g. step = 2 tries min_value, 2 × min_value, 4 × min_value, …")
        return
    if step is not None and step <= 0:
        ck.error("E602", f"step must be positive. Received: step={show(step)}",
                 args_at(call, at, "step"),
                 hint="leave it out for every value" if kind == "Int" else
                      "leave it out for a continuous range")
        return
    h = Hyperparameter("", kind, {"min_value": lo, "max_value": hi, "step": step,
                                  "sampling": sampling})
    vals = values(h) if stepped(h) else None
    if vals and not math.isclose(vals[-1], hi, rel_tol=1e-9, abs_tol=1e-12):
        tried = ", ".join(show(v) for v in vals[:3]) + (", …" if len(vals) > 3 else "")
        ck.error("W404", f"KerasTuner tries {tried} up to {show(vals[-1])}: "
                 f"max_value {show(hi)} is never tried (min_value + k × step)",
                 args_at(call, at, "step" if step is not None else "max_value"),
                 hint=f"make max_value {show(vals[-1])}" + (
                     ", or list the values with Choice([…])" if kind == "Float" else ""))


def _check_choice(ck: Checker, args: dict[str, Any], call: dict[str, Any], at: str) -> None:
    vals = args["values"]
    vat = args_at(call, at, "values")
    if not isinstance(vals, list):
        return  # the argument checker reported it
    if not vals:
        ck.error("E602", "a Choice needs at least one value", vat,
                 hint="e.g. Choice([0.1, 0.3, 0.5])")
        return
    first = _type_word(vals[0])
    for i, v in enumerate(vals[1:], 1):
        if _type_word(v) != first:
            hint = ("write every number with a decimal point (1.0), as KerasTuner "
                    "compares types" if {first, _type_word(v)} == {"an integer", "a float"}
                    else None)
            ck.error("E602", f"a Choice holds values of one type: {show(vals[0])} is "
                     f"{first}, {show(v)} is {_type_word(v)}", f"{vat}/{i}", hint)
            return
    ordered = args.get("ordered")
    if ordered is True and first in ("a string", "a boolean"):
        ck.error("E602", "`ordered = true` needs numbers; these choices are "
                 f"{first[2:]}s", args_at(call, at, "ordered"), hint="remove `ordered`")


def _type_word(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a float"
    if isinstance(v, str):
        return "a string"
    return "a value"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# -- the values against the param and its uses ----------------------------------------------


def _candidates(h: Hyperparameter, call: dict[str, Any], at: str) -> list[tuple[Any, str]]:
    """Values that stand for the whole space (each with where it is written): the ends of
    a range (a Float's as floats), every choice, both booleans, the fixed value."""
    kw = h.kwargs
    if h.kind in ("Int", "Float"):
        return [(kw["min_value"], args_at(call, at, "min_value")),
                (kw["max_value"], args_at(call, at, "max_value"))]
    if h.kind == "Choice":
        vat = args_at(call, at, "values")
        return [(v, f"{vat}/{i}") for i, v in enumerate(kw["values"])]
    if h.kind == "Fixed":
        return [(kw["value"], args_at(call, at, "value"))]
    return [(True, f"{at}/call"), (False, f"{at}/call")]


def _check_fits(ck: Checker, h: Hyperparameter, call: dict[str, Any], at: str) -> None:
    declared = ck.ir.get("params", {}).get(h.name)
    by_kind = h.kind in ("Float", "Boolean")  # the kind, not one value, is what is wrong
    for value, vat in _candidates(h, call, at):
        where = f"{at}/call" if by_kind else vat
        problem = _kind_problem(declared, value)
        if problem:
            pat = ck.params[h.name].at
            line = ck.pos.key(pat)
            ck.error("E601", f"`{h.name}` is declared as {problem} "
                     f"(line {line.line if line else '?'}); {_gives(h, value)}", where,
                     hint=_kind_hint(declared, h))
            return
        for owner, pname, ptype, use_at in ck.param_uses.get(h.name, []):
            wrong = catalog.check_value(ptype, value) if ptype is not None else None
            if wrong:
                line = ck.pos.value(use_at)
                ck.error("E601", f"`{h.name}` is `{pname}` of `{owner}` (line "
                         f"{line.line if line else '?'}), which must be {wrong}; "
                         f"{_gives(h, value)}", where,
                         hint=_kind_hint(declared, h) if by_kind else None)
                return
        wrong_at = _schema_problem(ck, h.name, value)
        if wrong_at:
            use_at, message = wrong_at
            line = ck.pos.value(use_at)
            ck.error("E601", f"`{h.name}` is used at line {line.line if line else '?'}, "
                     f"where {message}; {_gives(h, value)}", where)
            return


def _gives(h: Hyperparameter, value: Any) -> str:
    if h.kind == "Float":
        return f"{h.kind}(…) gives numbers such as {show(float(value))}"
    if h.kind == "Boolean":
        return "Boolean() gives true and false"
    return f"the space gives {show(value)}"


def _kind_problem(declared: Any, value: Any) -> str | None:
    """The declared kind a value cannot replace (the rule of `--set`), else None."""
    def kind(v: Any) -> str:
        return _type_word(v) if not isinstance(v, float) else "a number"

    if declared is None or isinstance(declared, (dict, list)):
        return None
    want, got = kind(declared), kind(value)
    if want == got or (want == "a number" and got == "an integer"):
        return None
    return want


def _kind_hint(declared: Any, h: Hyperparameter) -> str | None:
    if isinstance(declared, int) and not isinstance(declared, bool) and h.kind == "Float":
        kw = h.kwargs
        return f"search integers with Int({show(int(kw['min_value']))}, " \
               f"{show(int(kw['max_value']))})"
    return None


def _schema_problem(ck: Checker, name: str, value: Any) -> tuple[str, str] | None:
    """Where the schema rejects `value` put in place of every use of `name` outside
    calls (train.epochs, a shape's dimension…), and why; None when it fits."""
    for at, _, d in resolved_problems(ck.ir, ck.pos, {name: value}):
        return at, d.message
    return None


def _refs_at(value: Any, at: str) -> dict[str, str]:
    """Each param named in `value` -> the pointer of its first use."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        if isinstance(value.get("ref"), str):
            out.setdefault(value["ref"], at)
        for k, v in value.items():
            for n, p in _refs_at(v, f"{at}/{escape(k)}").items():
                out.setdefault(n, p)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            for n, p in _refs_at(v, f"{at}/{i}").items():
                out.setdefault(n, p)
    return out
