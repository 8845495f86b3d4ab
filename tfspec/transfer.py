"""Transfer learning: saved models used as layers (`load_model(…)`, `TFSMLayer(…)`).

`load_model("runs/iris/model.keras", trainable = false, output = "dense_2")` is the
one name tfspec adds to the Keras layer vocabulary: Keras has no layer that loads a
`.keras` file, so a spec calls Keras's own function, `keras.saving.load_model`, where
a layer goes. Its entry below has the catalog's format, so the usual argument checks
(did-you-mean, missing or mistyped arguments) apply to it.

The file a model loads is named relative to the spec, like every path in a spec.
`tfspec validate` never requires it to exist (it may be written by another spec's
export); it is looked for just before the model is built, and a missing one is
reported at the call, naming the spec whose export writes it when there is one.

Standard library only: checking and compiling a spec never imports TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .diagnostics import Diagnostics, SpecError
from .located import Positions, escape

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

# How far up from a missing file to look for the spec whose export writes it.
_PRODUCER_LEVELS = 4


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


def producer(target: Path) -> tuple[Path, str] | None:
    """(spec, export format) of a spec near `target` whose `export` writes it.

    Looks at the specs in the folders above `target` (a spec writes its exports
    relative to itself): `keras "runs/iris/model.keras"` writes that file, and
    `saved_model "runs/iris/serving"` writes `runs/iris/serving/<version>`.
    """
    from .validate import validate_file  # the checker imports this module

    target = Path(os.path.abspath(target))
    for folder in list(target.parents)[:_PRODUCER_LEVELS]:
        if not folder.is_dir():
            continue
        specs = sorted(folder.glob("*.tfspec")) + sorted(folder.glob("*.tfspec.json"))
        for spec in specs:
            ir = validate_file(spec).ir or {}
            exports = ir.get("export")
            for t in exports if isinstance(exports, list) else []:
                if not isinstance(t, dict) or not isinstance(t.get("path"), str):
                    continue
                written = Path(os.path.abspath(folder / t["path"]))
                version = t.get("version", 1)
                if written == target or (t.get("format") == "saved_model" and
                                         written / str(version) == target):
                    return spec, str(t.get("format"))
    return None


def _shown(path: Path) -> str:
    """`path` as the user would type it here: relative to the working directory."""
    rel = os.path.relpath(path)
    return path.as_posix() if rel.startswith("..") else Path(rel).as_posix()


def missing_files(spec_file: str, source: str, ir: dict[str, Any], positions: Positions,
                  overrides: dict[str, Any]) -> SpecError | None:
    """E500 at each model-loading call of a spec whose file does not exist, or None."""
    spec_dir = Path(spec_file).resolve().parent
    diags = Diagnostics(spec_file)
    params = {**(ir.get("params") or {}), **overrides}
    for at, path, callee in model_files(ir, params):
        full = spec_dir / path
        if full.exists():
            continue
        found = producer(full)
        if found is not None:
            spec, fmt = found
            hint = (f"it is written by the `{fmt}` export of {_shown(spec)}: run "
                    f"`tfspec run {_shown(spec)}` first")
        else:
            folder = _shown(spec_dir)
            hint = "paths in a spec are relative to its folder" + (
                f", {folder}/" if folder != "." else ", here the working directory")
        diags.add("E500", f"`{callee}` cannot load the model: no such file: {path}",
                  positions.value(at), hint)
    return SpecError(diags, source) if diags.has_errors else None
