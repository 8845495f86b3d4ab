"""Model files a spec loads that are not there (yet): E500 at the call.

`tfspec validate` never requires the file of a `load_model(…)` or `TFSMLayer(…)`
call to exist (another spec's export may write it, see `transfer`); just before a
model is built, `missing_files` reports each missing one at its call, naming the
spec whose export writes it when there is one. Finding that spec means checking
the specs nearby, so this module sits above `validate`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .diagnostics import Diagnostics, SpecError
from .located import Positions
from .transfer import model_files
from .validate import validate_file

# How far up from a missing file to look for the spec whose export writes it.
_PRODUCER_LEVELS = 4


def producer(target: Path) -> tuple[Path, str] | None:
    """(spec, export format) of a spec near `target` whose `export` writes it.

    Looks at the specs in the folders above `target` (a spec writes its exports
    relative to itself): `keras "runs/iris/model.keras"` writes that file, and
    `saved_model "runs/iris/serving"` writes `runs/iris/serving/<version>`.
    """
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
