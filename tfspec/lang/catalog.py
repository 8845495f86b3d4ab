"""What the checker knows about Keras, read from spec/catalog/*.json.

The catalog is generated from the installed Keras by tools/gen_catalog.py and
checked in, so checking a spec never imports TensorFlow or Keras (docs/architecture.md, rule 3).
This module only reads it: standard library only, each file parsed once per process.

Each `<category>.json` holds `entries` (public name -> {"kind", "params",
"var_keyword", ...}), `aliases` (alias -> entry name), `base_kwargs`, and for
string-capable categories `strings` (identifier -> entry name) and `compile_strings`
(identifiers `model.compile` resolves per loss, such as "accuracy").
`docs/<category>.json` holds Keras's docstring summaries and `Args:` texts for the
editor (`documentation`), loaded only when asked for.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

from .resources import data_path

__all__ = [
    "CATEGORIES",
    "base_kwargs",
    "check_value",
    "data_path",
    "documentation",
    "kind_for_param",
    "lookup",
    "names",
]

# category -> the Keras namespace it mirrors (generated code writes `<namespace>.<Name>`)
NAMESPACES: dict[str, str] = {
    "layers": "keras.layers",
    "optimizers": "keras.optimizers",
    "losses": "keras.losses",
    "metrics": "keras.metrics",
    "callbacks": "keras.callbacks",
    "activations": "keras.activations",
    "initializers": "keras.initializers",
    "regularizers": "keras.regularizers",
    "constraints": "keras.constraints",
    "schedules": "keras.optimizers.schedules",
}
CATEGORIES: tuple[str, ...] = tuple(NAMESPACES)

# Types whose values are Keras objects: a nested call is how a spec writes one, and
# the checker validates that call against this category instead of check_value.
TYPE_CATEGORY = {
    "activation": "activations", "initializer": "initializers",
    "regularizer": "regularizers", "constraint": "constraints", "layer": "layers",
    "learning_rate": "schedules",
}
# Strings these object types accept; "dtype" is checked against layers.json.
_STRING_KIND = {
    "activation": "activations", "initializer": "initializers",
    "regularizer": "regularizers", "constraint": "constraints", "dtype": "dtype",
}
_EXAMPLES = {
    "activations": "relu", "initializers": "glorot_uniform", "regularizers": "l2",
    "constraints": "max_norm",
}

# The "data_format" shorthand; the generator writes the enum itself.
_DATA_FORMAT = {"enum": ["channels_last", "channels_first"], "ignore_case": True}

# (singular, plural) phrases completing "`x` must be …".
_PHRASES: dict[str, tuple[str, str]] = {
    "int": ("an integer", "integers"),
    "positive_int": ("a positive integer", "positive integers"),
    "non_negative_int": ("a non-negative integer", "non-negative integers"),
    "number": ("a number", "numbers"),
    "positive_number": ("a positive number", "positive numbers"),
    "non_negative_number": ("a non-negative number", "non-negative numbers"),
    "rate": ("a number in [0, 1)", "numbers in [0, 1)"),
    "probability": ("a number in [0, 1]", "numbers in [0, 1]"),
    "bool": ("a boolean (true or false)", "booleans"),
    "string": ("a string", "strings"),
    "size": ("a positive integer or a list of positive integers", "sizes"),
    "shape": ("a shape: a list of integers (null for an unknown size)", "shapes"),
    "axis": ("an integer or a list of integers", "axes"),
    "activation": ('a Keras activation name such as "relu"', "activation names"),
    "initializer": ('a Keras initializer name such as "glorot_uniform"',
                    "initializer names"),
    "regularizer": ('a Keras regularizer name such as "l2"', "regularizer names"),
    "constraint": ('a Keras constraint name such as "max_norm"', "constraint names"),
    "layer": ("a layer such as `LSTM(32)`", "layers such as `LSTM(32)`"),
    "learning_rate": ("a number or a learning-rate schedule such as `ExponentialDecay(…)`",
                      "learning rates"),
    "dtype": ('a dtype name such as "float32"', "dtype names"),
    "null": ("null", "nulls"),
}


# -- loading ---------------------------------------------------------------------------


@functools.cache
def _load(category: str) -> dict[str, Any]:
    """The parsed `<category>.json`; raises KeyError for an unknown category."""
    if category not in CATEGORIES:
        raise KeyError(f"unknown catalog category {category!r}")
    path = data_path("catalog", f"{category}.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# -- lookups ---------------------------------------------------------------------------


def lookup(category: str, name: str) -> dict[str, Any] | None:
    """The entry for a public name, alias or string identifier of `category`.

    The result is a copy of the entry with `"name"` set to the canonical entry name;
    an alias adds `"alias"`, a string identifier adds `"string"` (e.g. "mse" ->
    name "mean_squared_error"). Strings that `model.compile` resolves per loss
    ("accuracy", "acc", "crossentropy", "ce") return `{"name": None, "string": …,
    "candidates": [entry names], "params": []}`. None when unknown.
    """
    doc = _load(category)
    entries = doc["entries"]
    if name in entries:
        return {**entries[name], "name": name}
    alias = doc.get("aliases", {}).get(name)
    if alias is not None:
        return {**entries[alias], "name": alias, "alias": name}
    compile_strings = doc.get("compile_strings", {})
    if name.lower() in compile_strings:  # compile_utils compares str(x).lower()
        return {"name": None, "string": name, "candidates": compile_strings[name.lower()],
                "params": [], "var_keyword": False}
    strings = doc.get("strings", {})
    key = name.lower() if doc.get("strings_ignore_case") else name
    target = strings.get(key)
    if target is not None:
        return {**entries[target], "name": target, "string": name}
    return None


def names(category: str) -> list[str]:
    """Every name `lookup` accepts in `category`, sorted (for did-you-mean hints)."""
    return list(_names(category))


@functools.cache
def _names(category: str) -> tuple[str, ...]:
    doc = _load(category)
    found = set(doc["entries"]) | set(doc.get("aliases", {}))
    found |= set(doc.get("strings", {})) | set(doc.get("compile_strings", {}))
    return tuple(sorted(found))


def base_kwargs(category: str) -> list[dict[str, Any]]:
    """Keywords the category's base class takes through `**kwargs` (`name`, `dtype`…).

    They apply to entries whose `var_keyword` is true; an entry's own params win.
    """
    return list(_load(category).get("base_kwargs", []))


def documentation(category: str, name: str) -> dict[str, Any]:
    """Keras's own words on an entry (its canonical name), for the editor.

    `{"summary": first paragraph of the docstring, "args": {param: its `Args:`
    text}}`, both Markdown, either absent when Keras documents none; `args`
    includes the base keywords' texts. Read from `docs/<category>.json`, a file
    apart that only the language server loads: checking never parses the prose.
    """
    docs = _load_docs(category)
    found = docs.get("entries", {}).get(name, {})
    out: dict[str, Any] = {"args": {**docs.get("base_kwargs", {}), **found.get("args", {})}}
    if "summary" in found:
        out["summary"] = found["summary"]
    return out


@functools.cache
def _load_docs(category: str) -> dict[str, Any]:
    if category not in CATEGORIES:
        raise KeyError(f"unknown catalog category {category!r}")
    try:
        with open(data_path("catalog", "docs", f"{category}.json"), encoding="utf-8") as f:
            return json.load(f)
    except OSError:  # the prose is extra: without it hover shows signatures only
        return {}


@functools.cache
def _param_kinds() -> dict[str, str]:
    """Parameter name -> category, from the types recorded in the catalog."""
    seen: dict[str, set[str]] = {}
    for category in CATEGORIES:
        doc = _load(category)
        params = [p for e in doc["entries"].values() for p in e.get("params", [])]
        for p in params + doc.get("base_kwargs", []):
            for kind in _kinds_in(p.get("type")):
                seen.setdefault(p["name"], set()).add(kind)
    # A name used for different kinds of object is left to the naming rules.
    return {name: next(iter(kinds)) for name, kinds in seen.items() if len(kinds) == 1}


def _kinds_in(type_spec: Any) -> list[str]:
    if isinstance(type_spec, str):
        return [TYPE_CATEGORY[type_spec]] if type_spec in TYPE_CATEGORY else []
    if isinstance(type_spec, dict):
        if "any_of" in type_spec:
            return [k for t in type_spec["any_of"] for k in _kinds_in(t)]
        if "list_of" in type_spec:
            return _kinds_in(type_spec["list_of"])
    return []


def kind_for_param(param_name: str) -> str | None:
    """The category a nested call passed as `param_name` belongs to, or None.

    E.g. "activation" -> "activations", "kernel_initializer" -> "initializers",
    "layer"/"backward_layer"/"cell" -> "layers", "learning_rate" -> "schedules".
    """
    kind = _param_kinds().get(param_name)
    if kind is not None:
        return kind
    if param_name in ("activation", "recurrent_activation"):
        return "activations"
    for suffix, category in (("_initializer", "initializers"),
                             ("_regularizer", "regularizers"),
                             ("_constraint", "constraints")):
        if param_name.endswith(suffix):
            return category
    if param_name in ("layer", "backward_layer", "cell", "cells", "layers"):
        return "layers"
    if param_name == "learning_rate":
        return "schedules"
    if param_name in ("optimizer", "inner_optimizer"):
        return "optimizers"
    return None


def argument_category(owner: str, param: dict[str, Any] | None, call: dict[str, Any]
                      ) -> str | None:
    """The category of `call`, a nested call passed to `owner`'s parameter `param`
    (None: not a parameter this catalog knows, or one that takes no call).

    The checker checks the call in this category and the generator builds it from
    it: deciding it once here keeps them from disagreeing. `activation =
    LeakyReLU(0.2)` is a layer (Keras takes a layer where an activation goes), and
    `LearningRateScheduler(schedule = ExponentialDecay(…))` a schedule object (the
    program turns it into the function of the epoch Keras wants there).
    """
    if param is None:
        return None
    ptype = param.get("type")
    kind = TYPE_CATEGORY.get(ptype) if isinstance(ptype, str) else None
    kind = kind or kind_for_param(param["name"])
    if owner == "LearningRateScheduler" and param["name"] == "schedule":
        kind = "schedules"
    if kind == "activations" and _layer_as_activation(call.get("call")):
        kind = "layers"
    return kind


def _layer_as_activation(name: Any) -> bool:
    """A Keras layer class that is not also an activation's name (`LeakyReLU`, not `relu`)."""
    return isinstance(name, str) and lookup("activations", name) is None and (
        lookup("layers", name) or {}).get("kind") == "class"


# -- values ----------------------------------------------------------------------------


def check_value(type_spec: Any, value: Any) -> str | None:
    """None when `value` fits `type_spec` (or cannot be decided), else what was expected.

    `value` is an IR value. `{"ref"}`, `{"op"}` and `{"pipe"}` dicts are not literals
    and are not judged; a `{"call"}` is accepted where the type is a Keras object
    (activation, initializer, regularizer, constraint, layer, learning_rate) because
    the call is checked against its own category. The result completes a sentence:
    "`units` must be <result>. Received: units=-1".
    """
    if _check(type_spec, value, _known) is False:
        return _phrase(type_spec)
    return None


def _known(kind: str, text: str) -> bool:
    """Whether `text` is a string identifier of `kind` (a category, or "dtype")."""
    if kind == "dtype":
        doc = _load("layers")
        return (text in doc.get("dtypes", []) or text in doc.get("dtype_policies", [])
                or text.startswith(tuple(doc.get("quantization_modes", [])) or ("\0",)))
    doc = _load(kind)
    if doc.get("strings_ignore_case"):
        text = text.lower()
    return text in doc.get("strings", {})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # JSON true is not 1


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_SCALARS: dict[str, Callable[[Any], bool]] = {
    "int": _is_int,
    "positive_int": lambda v: _is_int(v) and v > 0,
    "non_negative_int": lambda v: _is_int(v) and v >= 0,
    "number": _is_number,
    "positive_number": lambda v: _is_number(v) and v > 0,
    "non_negative_number": lambda v: _is_number(v) and v >= 0,
    "rate": lambda v: _is_number(v) and 0 <= v < 1,
    "probability": lambda v: _is_number(v) and 0 <= v <= 1,
    "bool": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "null": lambda v: v is None,
    "learning_rate": _is_number,
    "size": lambda v: (_is_int(v) and v > 0) or (
        isinstance(v, list) and bool(v) and all(_is_int(x) and x > 0 for x in v)),
    "shape": lambda v: isinstance(v, list) and all(x is None or _is_int(x) for x in v),
    "axis": lambda v: _is_int(v) or (isinstance(v, list) and all(_is_int(x) for x in v)),
    "layer": lambda v: False,  # only a call (or a named layer) is a layer
}
# Item checks of the list-valued scalar types, for lists that hold refs.
_ITEMS: dict[str, Callable[[Any], bool]] = {
    "size": lambda v: _is_int(v) and v > 0,
    "shape": lambda v: v is None or _is_int(v),
    "axis": _is_int,
}


def _check(type_spec: Any, value: Any, known: Callable[[str, str], bool]) -> bool | None:
    """True: fits; False: does not; None: cannot tell (not a literal, unknown type)."""
    if type_spec == "data_format":
        type_spec = _DATA_FORMAT
    if isinstance(value, dict):
        if "ref" in value or "op" in value or "pipe" in value:
            return None
        if "call" in value and isinstance(type_spec, str):
            return None if type_spec in TYPE_CATEGORY else False
    if isinstance(type_spec, dict):
        if "any_of" in type_spec:
            results = [_check(t, value, known) for t in type_spec["any_of"]]
            return True if True in results else (None if None in results else False)
        if "list_of" in type_spec:
            if not isinstance(value, list):
                return False
            results = [_check(type_spec["list_of"], v, known) for v in value]
            return False if False in results else (None if None in results else True)
        if "enum" in type_spec:
            return _in_enum(type_spec, value)
        return None
    if isinstance(value, list) and type_spec in _ITEMS and _has_non_literal(value):
        # e.g. kernel_size=[k, k] with k a ref: judge only the literal items.
        literal = [v for v in value if not _has_non_literal(v)]
        return None if all(_ITEMS[type_spec](v) for v in literal) else False
    if type_spec in _STRING_KIND:
        if isinstance(value, str):
            return known(_STRING_KIND[type_spec], value)
        # activations/regularizers/constraints.get(None) are valid (linear / none)
        return value is None and type_spec in ("activation", "regularizer", "constraint")
    scalar = _SCALARS.get(type_spec)
    return None if scalar is None else scalar(value)


def _has_non_literal(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k in value for k in ("ref", "op", "pipe", "call"))
    if isinstance(value, list):
        return any(_has_non_literal(v) for v in value)
    return False


def _in_enum(type_spec: dict[str, Any], value: Any) -> bool:
    for option in type_spec["enum"]:
        if type(option) is bool or type(value) is bool:
            if option is value:
                return True
        elif isinstance(option, str) and isinstance(value, str):
            if option == value or (type_spec.get("ignore_case") and
                                   option.lower() == value.lower()):
                return True
        elif option == value and not isinstance(value, str):
            return True
    return False


def _phrase(type_spec: Any, plural: bool = False) -> str:
    if type_spec == "data_format":
        type_spec = _DATA_FORMAT
    if isinstance(type_spec, str):
        words = _PHRASES.get(type_spec, (f"a {type_spec}", f"{type_spec} values"))
        return words[plural]
    if "any_of" in type_spec:
        parts: list[str] = []
        for t in type_spec["any_of"]:
            p = _phrase(t, plural)
            if p not in parts:
                parts.append(p)
        return " or ".join(parts)
    if "list_of" in type_spec:
        return ("lists of " if plural else "a list of ") + _phrase(type_spec["list_of"], True)
    if "enum" in type_spec:
        options = ", ".join(json.dumps(v) for v in type_spec["enum"])
        if len(type_spec["enum"]) == 1:
            return options
        return f"one of {options}"
    return "a valid value"


def class_of(function: str) -> str:
    """`add` -> `Add`: the layer class behind one of Keras's merge functions."""
    for name in names("layers"):
        if name.lower() == function.lower() and name != function:
            return name
    return function


def snake_case(name: str) -> str:
    """Keras's `to_snake_case` (`keras.src.utils.naming`), the rule behind its default
    names: `MaxPooling2D` -> `max_pooling2d`, `ReLU` -> `re_lu`, `AUC` -> `auc`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
