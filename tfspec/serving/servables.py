"""The exports `tfspec serve` serves: finding them, and loading them as TF Serving would.

`find_export` resolves PATH (a TF Serving base directory `<base>/<version>/saved_model.pb`,
one SavedModel directory, or a run directory's `exports.json`) and the model's name
(`--name`, else the spec's name recorded with the export, else the folder's) without
importing TensorFlow, so a bad PATH fails in milliseconds. `load_model` loads every
version: its signature functions, each input's dtype and shape, and TF Serving's JSON
of its SignatureDefs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..lang.diagnostics import TfspecError

PREDICT_METHOD = "tensorflow/serving/predict"  # a predict SignatureDef's method_name
# What tfspec's saved_model export records beside the SavedModel, inside the version
# folder: TF Serving reads only `assets.extra/tf_serving_warmup_requests` there, and
# the SavedModel loader nothing at all (tfspec/codegen/export.py writes it).
RECORD = Path("assets.extra") / "tfspec.json"


class ServeError(TfspecError):
    """PATH, the model name or the address cannot be served (one line for the user)."""


# ---------------------------------------------------------------------------
# Finding the export (no TensorFlow)


# Where the served name comes from (`name_from`), and how the start line says it
NAMED_BY_OPTION, NAMED_BY_SPEC, NAMED_BY_FOLDER = "--name", "spec", "folder"
NAME_SOURCES = {NAMED_BY_OPTION: "--name", NAMED_BY_SPEC: "the spec's name",
                NAMED_BY_FOLDER: "the folder's name"}


@dataclass(frozen=True)
class Export:
    """What to serve: the model's name and its SavedModel directory per version."""

    name: str
    base: Path  # TF Serving's --model_base_path (or the one SavedModel)
    versions: dict[int, Path]
    name_from: str = NAMED_BY_FOLDER  # a key of NAME_SOURCES


def find_export(path: str | os.PathLike[str], name: str | None = None) -> Export:
    """Resolve PATH: a TF Serving base directory (`<base>/<version>/saved_model.pb`),
    one SavedModel directory, or a run directory holding `exports.json`. The name is
    `name`, else the spec's name recorded with the export (the run's `exports.json`,
    or `assets.extra/tfspec.json` in the default version), else the folder's name."""
    try:
        return _find_export(path, name)
    except OSError as exc:  # unreadable folders
        raise ServeError(f"{path}: {exc.strerror or exc}") from None


def _find_export(path: str | os.PathLike[str], name: str | None) -> Export:
    given = Path(path).expanduser()
    if not given.exists():
        raise ServeError(f"{path}: no such file or directory")
    if given.is_file():
        if given.name == "exports.json":
            return _from_run(given.parent, name)
        if given.name in ("saved_model.pb", "saved_model.pbtxt"):
            given = given.parent
        else:
            raise ServeError(_not_an_export(path))
    if (given / "exports.json").is_file() and not _is_saved_model(given):
        return _from_run(given, name)
    export = _export_at(given, name)
    if export is None:
        raise ServeError(_not_an_export(path))
    return export


def _export_at(directory: Path, name: str | None, name_from: str = NAMED_BY_OPTION
               ) -> Export | None:
    """The SavedModel `directory` is, or the versions under it; None when neither.
    `name_from`: where `name` comes from, when there is one."""
    if _is_saved_model(directory):
        numbered = directory.name.isdigit()
        base = directory.parent if numbered else directory
        versions = {int(directory.name) if numbered else 1: directory}
    else:
        base, versions = directory, _versions(directory)
        if not versions:
            return None
    if not name:
        # the default version's record: TF Serving serves the highest version
        name, name_from = _recorded_name(versions[max(versions)]), NAMED_BY_SPEC
    if not name:
        name, name_from = base.resolve().name, NAMED_BY_FOLDER
    return Export(_model_name(name, name_from), base, versions, name_from)


def _recorded_name(saved_model: Path) -> str | None:
    """The spec's name that tfspec's export recorded in the SavedModel's folder."""
    record = saved_model / RECORD
    if not record.is_file():
        return None  # not written by tfspec (or by an older one)
    try:
        name = json.loads(record.read_text(encoding="utf-8"))["name"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ServeError(f"{record}: cannot read the model's name: {exc} (pass --name)"
                         ) from None
    return name if isinstance(name, str) else None


def _not_an_export(path: str | os.PathLike[str]) -> str:
    return (f"{path} is not a SavedModel, a SavedModel base directory "
            "(<base>/<version>/saved_model.pb) or a run directory with exports.json")


def _is_saved_model(directory: Path) -> bool:
    return (directory / "saved_model.pb").is_file() or (
        directory / "saved_model.pbtxt").is_file()


def _versions(base: Path) -> dict[int, Path]:
    """TF Serving's versions: subfolders named by a number that hold a SavedModel."""
    found = {}
    for child in base.iterdir():
        if child.name.isdigit() and child.is_dir() and _is_saved_model(child):
            found.setdefault(int(child.name), child)
    return dict(sorted(found.items()))


def _from_run(run_dir: Path, name: str | None) -> Export:
    """The first `saved_model` target that a run's `exports.json` lists as written (a
    target whose export failed is recorded with `"written": false`)."""
    record_file = run_dir / "exports.json"
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
        targets = [t for t in record["targets"] if t.get("format") == "saved_model"]
        written = [t for t in targets if t.get("written", True) is not False]
        if targets and not written:
            why = (str(targets[0].get("error")).splitlines() or ["?"])[0]
            raise ServeError(f"{record_file}: its saved_model export was not written (the "
                             f"export failed: {why})")
        target = next(iter(written))
        base = Path(target["path"])
    except StopIteration:
        raise ServeError(f"{record_file} lists no saved_model export") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ServeError(f"{record_file}: cannot read the exports: {exc}") from None
    base = base if base.is_absolute() else run_dir / base
    # the run's spec name (exports.json records it) when --name does not say
    name, name_from = (name, NAMED_BY_OPTION) if name else (record.get("name"), NAMED_BY_SPEC)
    export = _export_at(base, name, name_from) if base.is_dir() else None
    if export is None:
        raise ServeError(f"{record_file}: its saved_model export {base} holds no SavedModel "
                         "(<base>/<version>/saved_model.pb)")
    return export


def _model_name(name: Any, name_from: str) -> str:
    # the name is one URL path segment: /v1/models/NAME:predict
    if not isinstance(name, str) or not name or "/" in name or ":" in name:
        raise ServeError(f"invalid model name {name!r} ({NAME_SOURCES[name_from]}): it may "
                         "not be empty or hold '/' or ':' (pass --name)")
    return name


# ---------------------------------------------------------------------------
# Loading (TensorFlow from here on)


@dataclass(frozen=True)
class Input:
    """One input of a signature: what JSON values it takes and its shape."""

    dtype: np.dtype[Any]
    dtype_name: str  # as TF Serving names it in errors: float, double, int32, string
    shape: tuple[int | None, ...] | None  # None: unknown rank

    @property
    def kind(self) -> str:
        return "S" if self.dtype == np.dtype(object) else self.dtype.kind


@dataclass(frozen=True)
class Signature:
    name: str
    function: Callable[..., Any]  # the SavedModel's ConcreteFunction
    inputs: dict[str, Input]
    method_name: str


@dataclass(frozen=True)
class Servable:
    """One loaded version: its signatures and TF Serving's JSON of them."""

    version: int
    signatures: dict[str, Signature]
    signature_defs: dict[str, Any]
    keep_alive: Any  # the loaded object, which owns the functions' variables


@dataclass(frozen=True)
class Model:
    name: str
    base: Path
    versions: dict[int, Servable]  # ascending
    name_from: str = NAMED_BY_FOLDER  # as Export.name_from

    @property
    def latest(self) -> Servable:
        return self.versions[max(self.versions)]


def load_model(export: Export) -> Model:
    """Load every version of the export, as TF Serving would."""
    from ..jobs.build import quiet_tensorflow

    quiet_tensorflow()
    servables = {version: _load_version(version, path)
                 for version, path in sorted(export.versions.items())}
    return Model(export.name, export.base, servables, export.name_from)


def _load_version(version: int, path: Path) -> Servable:
    import tensorflow as tf
    from google.protobuf import json_format

    try:
        meta_graph = _serving_meta_graph(path)
        loaded = tf.saved_model.load(str(path), tags=list(meta_graph.meta_info_def.tags))
    except Exception as exc:  # a corrupt or foreign SavedModel: one line, no traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServeError(f"cannot load the SavedModel in {path}: {first}") from None
    defs = meta_graph.signature_def
    signatures = {
        key: Signature(key, function, _inputs(function), defs[key].method_name)
        for key, function in loaded.signatures.items() if key in defs
    }
    # as TF Serving prints a SignatureDef: proto field names, every field shown
    signature_defs = {
        key: json_format.MessageToDict(defs[key], preserving_proto_field_name=True,
                                       always_print_fields_with_no_presence=True)
        for key in sorted(defs)
    }
    return Servable(version, signatures, signature_defs, loaded)


def _serving_meta_graph(path: Path) -> Any:
    """The MetaGraphDef TF Serving loads: the one tagged `serve`."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    if (path / "saved_model.pb").is_file():
        saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    else:
        text_format.Parse((path / "saved_model.pbtxt").read_text(), saved_model)
    graphs = list(saved_model.meta_graphs)
    if not graphs:
        raise ValueError("it holds no MetaGraphDef")
    return next((g for g in graphs if "serve" in g.meta_info_def.tags), graphs[0])


def _inputs(function: Any) -> dict[str, Input]:
    specs = function.structured_input_signature[1]
    inputs = {}
    for key in sorted(specs):
        spec = specs[key]
        dtype = spec.dtype
        shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
        np_dtype = np.dtype(object) if dtype.name == "string" else np.dtype(dtype.as_numpy_dtype)
        inputs[key] = Input(np_dtype, _TF_SERVING_DTYPE_NAMES.get(dtype.name, dtype.name), shape)
    return inputs


# TensorFlow's DataTypeString(), which TF Serving's messages use
_TF_SERVING_DTYPE_NAMES = {"float32": "float", "float64": "double"}
