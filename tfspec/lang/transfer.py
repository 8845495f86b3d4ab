"""Transfer learning: saved models used as layers (`load_model(…)`, `TFSMLayer(…)`).

`load_model("runs/iris/model.keras", trainable = false, output = "dense_2")` is the
one name tfspec adds to the Keras layer vocabulary: Keras has no layer that loads a
`.keras` file, so a spec calls Keras's own function, `keras.saving.load_model`, where
a layer goes. Its entry below has the catalog's format, so the usual argument checks
(did-you-mean, missing or mistyped arguments) apply to it.

The file a model loads is named relative to the spec, like every path in a spec.
`tfspec validate` never requires it to exist (it may be written by another spec's
export); it is looked for just before the model is built, and a missing one is
reported at the call (`missing_files`), naming the spec whose export writes it.

Standard library only: checking and compiling a spec never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .ir import escape

LOAD_MODEL = "load_model"

# tfspec's own layer calls, in the catalog's entry format
CALLS: dict[str, dict[str, Any]] = {
    LOAD_MODEL: {
        "kind": "loader",
        "doc": "a saved `.keras` model used as a layer (keras.saving.load_model)",
        "var_keyword": False,
        "params": [
            {"name": "filepath", "required": True, "positional": True, "type": "string"},
            # None: as saved. true/false: every layer of the model (un)frozen.
            {"name": "trainable", "required": False, "positional": False,
             "type": {"any_of": ["bool", "null"]}, "default": None},
            # the name of the layer whose output becomes the model's output
            {"name": "output", "required": False, "positional": False,
             "type": {"any_of": ["string", "null"]}, "default": None},
            {"name": "name", "required": False, "positional": False,
             "type": {"any_of": ["string", "null"]}, "default": None},
        ],
    },
}

# Layer calls whose first argument is a file or folder, relative to the spec.
PATH_ARG = {LOAD_MODEL: "filepath", "TFSMLayer": "filepath"}


def lookup(name: str) -> dict[str, Any] | None:
    """The entry of one of tfspec's own layer calls (with its `name`), or None."""
    entry = CALLS.get(name)
    return {**entry, "name": name} if entry is not None else None


def path_argument(call: dict[str, Any]) -> tuple[str, Any] | None:
    """(pointer suffix, value) of the path argument of a model-loading call, or None."""
    key = PATH_ARG.get(call.get("call")) if isinstance(call.get("call"), str) else None
    if key is None:
        return None
    args, kwargs = call.get("args"), call.get("kwargs")
    if isinstance(args, list) and args:
        return "args/0", args[0]
    if isinstance(kwargs, dict) and key in kwargs:
        return f"kwargs/{escape(key)}", kwargs[key]
    return None


def calls(value: Any, at: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every call in `value` (nested ones too), with its JSON pointer."""
    if isinstance(value, dict):
        if "call" in value:
            yield at, value
        for key, v in value.items():
            yield from calls(v, f"{at}/{escape(key)}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from calls(v, f"{at}/{i}")


def _path_args(ir: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str, Any]]:
    """(pointer of the call, call, pointer suffix, value) of the path argument of every
    model-loading call in the model, its blocks and the data's preprocessing."""
    places = [(ir.get("model"), "/model"), (ir.get("blocks"), "/blocks"),
              ((ir.get("data") or {}).get("preprocess"), "/data/preprocess")]
    for value, root in places:
        for at, call in calls(value, root):
            arg = path_argument(call)
            if arg is not None:
                yield at, call, *arg


def model_files(ir: dict[str, Any], params: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(pointer of the path value, path, callee) of every file the model loads.

    A path given through a param is read from `params` (with `--set` values); one
    given through a block parameter is not known before run time and is skipped.
    """
    found = []
    for at, call, suffix, path in _path_args(ir):
        if isinstance(path, dict) and isinstance(params.get(path.get("ref")), str):
            path = params[path["ref"]]
        if isinstance(path, str):
            found.append((f"{at}/{suffix}", path, call["call"]))
    return found


def absolute_paths(ir: dict[str, Any], spec_dir: Path) -> None:
    """Make the model's file paths absolute (in place), for a copy of the spec that is
    compiled in another folder (`run --dry-run`)."""
    params = ir.get("params") or {}
    for _, call, suffix, path in _path_args(ir):
        if isinstance(path, dict) and isinstance(params.get(path.get("ref")), str):
            params[path["ref"]] = str(spec_dir / params[path["ref"]])
        elif isinstance(path, str) and suffix == "args/0":
            call["args"][0] = str(spec_dir / path)
        elif isinstance(path, str):
            call["kwargs"][PATH_ARG[call["call"]]] = str(spec_dir / path)
