"""Keras model -> tfspec spec: what `tfspec import` runs.

The importer reads a Keras 3 model *config* (the JSON that `model.get_config()`
returns and that a `.keras` file keeps in its `config.json`) and writes the IR of
an equivalent spec: one `input` per `InputLayer`, one node per layer call, a
named `layer` for a layer called several times, and `output`s in the model's
order. It is pure Python: it never imports TensorFlow or Keras, and it never
loads weights (a `.keras` file is read as a zip). What it knows of Keras — which
names exist, which arguments they take and their defaults — is the catalog.

Layer names are kept exactly, so that weights can be copied from the original
model to the compiled one by layer name: a node is named after its layer, and a
layer whose Keras name is not a spec identifier gets `name = "<original>"`.
Arguments equal to their Keras default are left out, so the spec stays short.

A nested model (a Sequential or Functional model applied inside another) becomes
a `block`; the two small layer classes of `keras.applications` modules
(`LayerScale`, `CustomScaleLayer`) become the Keras layers that compute the same.
Anything a spec cannot express — subclassed models, `Lambda` layers, custom
layers, shared nested models, layers that return several tensors — is reported
as a `SpecError`, every problem at once.
"""

from __future__ import annotations

import functools
import heapq
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..codegen.pytext import fresh_name
from ..lang import catalog
from ..lang.diagnostics import Diagnostics, SpecError
from ..lang.formatter import format_spec

__all__ = ["import_config", "import_file", "import_to_text"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Words the DSL reads as literals, and words that start a statement.
_LITERALS = frozenset({"true", "false", "null", "None"})
_STATEMENT_WORDS = frozenset({"input", "layer", "output"})
# Input dtypes a spec can declare (docs/ir.md).
_DTYPES = frozenset({
    "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "bool", "string",
})
_MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})
_FUNCTIONAL_CLASSES = frozenset({"Functional", "Model"})
# Catalog layers whose config holds code or an external artefact, not arguments.
_NOT_IMPORTABLE = {
    "Lambda": "a `Lambda` layer holds a Python function",
    "TFSMLayer": "a `TFSMLayer` wraps a SavedModel from disk",
    "JaxLayer": "a `JaxLayer` wraps a JAX function",
    "FlaxLayer": "a `FlaxLayer` wraps a Flax module",
    "TorchModuleWrapper": "a `TorchModuleWrapper` wraps a PyTorch module",
    "Input": "`Input` is not a layer",
}
_CUSTOM_HINT = ("custom layers cannot be expressed in a spec: replace it with Keras "
                "layers, or keep this part of the model in Python")
_POLICIES = frozenset({"DTypePolicy", "FloatDTypePolicy"})
# `keras.ops` functions applied to symbolic tensors (`x + 3.0`) become operations in
# a functional model. Element-wise ones map onto layers: with two tensors, the
# merging layer; with a tensor and a number, `Rescaling` (x * scale + offset).
_OP_LAYERS = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply",
              "Maximum": "Maximum", "Minimum": "Minimum"}
# Arguments whose default (None) means "the same as that other argument".
_SAME_AS = {"strides": "pool_size", "value_dim": "key_dim"}
_FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})
# Categories whose objects may be written as a Keras string, and the catalog type of it.
_STRING_TYPES = {"initializers": "initializer", "regularizers": "regularizer",
                 "constraints": "constraint"}


class _Unsupported(Exception):
    """Internal: the current layer cannot be imported (already reported as a
    diagnostic): unwinds to the loop over layers, which goes on with the next one
    so that every problem is reported at once. Never leaves this module."""


class _Malformed(Exception):
    """Internal: the config is not one Keras writes (a missing key, a value of the
    wrong type); `import_config` reports it as E103. Raised only where the input is
    checked, so a bug of the importer's own is not mistaken for a bad config."""


def _missing(key: str) -> _Malformed:
    return _Malformed(f"missing key {key!r}")


_DROP = object()  # a converted value that means "leave the argument out"


def import_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The IR of a spec for the model saved in `path` (`.keras`, or a `.json` config).

    A `.keras` file is read as the zip it is: only its `config.json`, no weights,
    no Keras import. Raises `SpecError` when the file cannot be read or holds
    something a spec cannot express.
    """
    name = str(path)
    config = _read_config(Path(path), name)
    return import_config(config, filename=name)


def import_to_text(path: str | os.PathLike[str]) -> str:
    """The canonical `.tfspec` text of `import_file(path)`."""
    return format_spec(import_file(path))


def import_config(config: dict[str, Any], name: str | None = None, *,
                  filename: str = "<config>") -> dict[str, Any]:
    """The IR of a spec for a Keras 3 model config.

    `config` is what `model.get_config()` returns, or a whole serialized model
    (`{"class_name": "Functional" | "Sequential" | "Model", "config": {…}}`, the
    content of a `.keras` file's `config.json` or of `model.to_json()`). `name` is
    the spec's `name` (default: the Keras model's name). `filename` is where
    diagnostics say the problem is. Raises `SpecError`.
    """
    diags = Diagnostics(filename)
    importer = _Importer(diags)
    try:
        ir = importer.run(_plain(config), name)
    except _Unsupported:
        ir = None
    # RecursionError: a config nested deeper than Python recurses (a real one is not)
    except (_Malformed, RecursionError) as exc:
        diags.add("E103", f"not a Keras model config: {str(exc) or type(exc).__name__}",
                  hint="give a `.keras` file, or the JSON of `model.get_config()`")
        ir = None
    if ir is None or diags.has_errors:
        if not diags.has_errors:
            diags.add("E103", "not a Keras model config")
        raise SpecError(diags)
    return ir


# -- reading files ---------------------------------------------------------------------------


def _read_config(path: Path, name: str) -> dict[str, Any]:
    def fail(message: str, hint: str | None = None) -> SpecError:
        diags = Diagnostics(name)
        diags.add("E103", message, hint=hint)
        return SpecError(diags)

    if path.is_dir():
        raise fail("cannot import a directory (a SavedModel?)",
                   "save the model with `model.save(\"model.keras\")` and import that file")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        raise fail("cannot import a legacy HDF5 file",
                   "load it in Keras and save it again with `model.save(\"model.keras\")`")
    try:
        with open(path, "rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"
        if is_zip:
            with zipfile.ZipFile(path) as archive:
                try:
                    raw = archive.read("config.json")
                except KeyError:
                    raise fail("the archive has no config.json: not a .keras file") from None
            text = raw.decode("utf-8")
        elif suffix == ".keras":
            raise fail("not a .keras file (a .keras file is a zip archive)")
        else:
            text = path.read_text(encoding="utf-8")
    except SpecError:
        raise
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise fail(f"cannot read the file: {reason}") from None
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise fail(f"cannot read the model config: invalid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise fail("not a Keras model config: the JSON is not an object")
    return config


# -- names -------------------------------------------------------------------------------


@functools.cache
def _class_names() -> frozenset[str]:
    """Class names a spec calls: a node named like one would shadow it."""
    names: set[str] = set()
    for category in ("layers", "initializers", "regularizers", "constraints"):
        names.update(n for n in catalog.names(category) if n[:1].isupper())
    return frozenset(names)


def _sanitize(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"
    return "_" + text if text[0].isdigit() else text


class _Names:
    """One namespace of spec names: inputs, nodes and named layers share it.

    `blocks`: the spec's block names, which no name of a body takes; `seen`: every
    name claimed in the spec, which block names avoid (both shared between bodies).
    """

    def __init__(self, blocks: set[str] | None = None, seen: set[str] | None = None) -> None:
        self.classes = _class_names()
        self.used: set[str] = set()
        self.blocks = blocks if blocks is not None else set()
        self.seen = seen if seen is not None else set()

    def ok(self, name: str, kind: str) -> bool:
        """Whether `name` is free and can name an `input`, a `node` or a `layer`."""
        if not _IDENT.match(name) or name in self.used or name in _LITERALS or \
                name in self.blocks:
            return False
        if kind == "layer":  # a named layer cannot take any Keras layer's name (`add`)
            return catalog.lookup("layers", name) is None and name not in self.classes
        if kind == "node" and name in _STATEMENT_WORDS:
            return False  # `input = …` would read as an input statement
        return name not in self.classes

    def claim(self, wanted: str, kind: str) -> str:
        """`wanted` if it is free, else a sanitized, de-duplicated variant of it."""
        if self.ok(wanted, kind):
            candidate = wanted
        else:
            base = _sanitize(wanted)
            if not self.ok(base, kind) and base not in self.used:
                base += "_layer" if kind == "layer" else "_"
            candidate, n = base, 1
            while not self.ok(candidate, kind):
                n += 1
                candidate = f"{base}_{n}"
        self.used.add(candidate)
        self.seen.add(candidate)
        return candidate


# -- the importer -------------------------------------------------------------------------


class _Importer:
    def __init__(self, diags: Diagnostics):
        self.diags = diags
        self.comments: list[dict[str, Any]] = []
        self.blocks: list[dict[str, Any]] = []  # nested models, inner ones first
        self.block_names: set[str] = set()
        self.seen: set[str] = set()  # every name of every body, and the model's

    def names(self) -> _Names:
        """A fresh namespace for one body, aware of the spec's blocks."""
        return _Names(self.block_names, self.seen)

    def error(self, code: str, message: str, hint: str | None = None) -> None:
        self.diags.add(code, message, hint=hint)

    # -- the document ------------------------------------------------------------------

    def run(self, config: dict[str, Any], spec_name: str | None) -> dict[str, Any] | None:
        if not isinstance(config, dict):
            raise _Malformed("the config is not an object")
        if "class_name" in config and isinstance(config.get("config"), dict):
            cls, inner = _class(config), config["config"]
            module = config.get("module")
            if cls is None:
                raise _Malformed("its class_name is not a string")
            if cls not in _MODEL_CLASSES or not _keras_module(module, "keras"):
                self.error("E300", f"`{cls}` is not a Sequential or Functional model; "
                           "subclassed models cannot be imported",
                           hint="a spec describes a Sequential or Functional model: rebuild "
                                "the model with the functional API, or write the spec by hand")
                return None
        else:
            inner = config
            cls = "Functional" if "input_layers" in inner else "Sequential"
        if not isinstance(inner.get("layers"), list):
            raise _missing("layers")
        keras_name = inner.get("name")
        if not isinstance(keras_name, str) or not keras_name:
            keras_name = "model"
        self.seen.add(self.model_name(keras_name))
        if cls == "Sequential":
            model = self.sequential(inner, keras_name)
        else:
            model = self.functional(inner, keras_name)
        if model is None or self.diags.has_errors:
            return None
        ir: dict[str, Any] = {"tfspec": 1, "name": spec_name or keras_name}
        if self.blocks:
            ir["blocks"] = self.blocks
        ir["model"] = model
        if self.comments:
            ir["comments"] = self.comments
        return ir

    # -- sequential --------------------------------------------------------------------

    def sequential(self, inner: dict[str, Any], keras_name: str) -> dict[str, Any] | None:
        layers = [entry for entry in inner["layers"] if isinstance(entry, dict)]
        if any(_is_model(entry) for entry in layers):
            # a nested model becomes a block, which only a functional body can use
            graph = self.sequential_graph(inner, keras_name, nested=False)
            return None if graph is None else self.functional(graph, keras_name)
        found = self.sequential_input(inner, keras_name, nested=False)
        if found is None:
            return None
        cfg, layers = found
        wanted = _input_name(cfg)
        stmt = self.input_statement(self.names().claim(wanted or "input", "input"), cfg,
                                    wanted, 0)
        body: list[dict[str, Any]] = [stmt] if stmt is not None else []
        if not layers:
            self.error("E403", f"the Sequential model `{keras_name}` has no layers")
        for entry in _private_layers(layers):
            name = _layer_name(entry)
            try:
                call = self.layer_call(entry, name)
            except _Unsupported:
                continue
            body.append({"add": call})
        return {"name": self.model_name(keras_name), "kind": "sequential", "body": body}

    def sequential_input(self, inner: dict[str, Any], keras_name: str, nested: bool
                         ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """(the input's InputLayer config, the other layers) of a Sequential model.

        A model built without an `InputLayer` takes the shape it was built with (a
        nested one needs none: a block's input has no shape)."""
        layers = [entry for entry in inner["layers"] if isinstance(entry, dict)]
        first = layers[0] if layers else None
        if first is not None and first.get("class_name") == "InputLayer":
            return dict(_config_of(first, "InputLayer")), layers[1:]
        cfg = _config_of(first or {}, "first")
        shape = cfg.get("batch_input_shape") or cfg.get("batch_shape") or inner.get(
            "build_input_shape")
        if not nested and (not isinstance(shape, list) or not shape):
            self.error("E202", f"the Sequential model `{keras_name}` has no input shape",
                       hint="build the model with `keras.Input(shape=…)` as its first "
                            "layer, then save it again")
            return None
        return {"batch_shape": shape, "dtype": cfg.get("dtype")}, layers

    def sequential_graph(self, inner: dict[str, Any], keras_name: str, nested: bool
                         ) -> dict[str, Any] | None:
        """The functional config of a Sequential model: each layer applied to the last."""
        found = self.sequential_input(inner, keras_name, nested)
        if found is None:
            return None
        cfg, layers = found
        if not layers:
            self.error("E403", f"the Sequential model `{keras_name}` has no layers")
            return None
        taken = {_layer_name(entry) for entry in layers}
        source = fresh_name("x" if nested else _input_name(cfg) or "input", taken)
        entries = [{"module": "keras.layers", "class_name": "InputLayer", "name": source,
                    "config": {**cfg, "name": source}, "inbound_nodes": []}]
        for entry in layers:
            name = _layer_name(entry)
            entries.append({**entry, "name": name, "inbound_nodes": [
                {"args": [_tensor_of(entries[-1])], "kwargs": {}}]})
        # as Keras writes output_layers: see _shifted
        last = [entries[-1]["name"], int(_class(entries[-1]) in _FUNCTIONAL_CLASSES), 0]
        return {"name": keras_name, "trainable": inner.get("trainable", True),
                "layers": entries, "input_layers": [[source, 0, 0]], "output_layers": [last]}

    def model_name(self, keras_name: str) -> str:
        return keras_name if _IDENT.match(keras_name) else _sanitize(keras_name)

    def input_statement(self, ident: str, cfg: dict[str, Any], original: str | None,
                        index: int) -> dict[str, Any] | None:
        """`input NAME: DTYPE[DIMS]` from an InputLayer config."""
        label = original or ident
        shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
        if not isinstance(shape, list) or not shape:
            self.error("E202", f"input `{label}` has no shape")
            return None
        if not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
                   for d in shape[1:]):
            self.error("E305", f"input `{label}` has an invalid shape {json.dumps(shape)}")
            return None
        dtype = _dtype_name(cfg.get("dtype")) or "float32"
        if dtype not in _DTYPES:
            self.error("E305", f"input `{label}` has dtype `{dtype}`, which a spec cannot "
                       "declare", hint="spec inputs take " + ", ".join(sorted(_DTYPES)))
            return None
        for flag in ("sparse", "ragged", "optional"):
            if cfg.get(flag):
                self.error("E305", f"input `{label}` is {flag}; a spec input cannot be",
                           hint="declare a dense input instead")
                return None
        if original is not None and original != ident:
            self.comments.append({
                "at": f"/model/body/{index}",
                "text": f"# imported from the Keras input {json.dumps(original)}",
            })
        return {"input": ident, "dtype": dtype, "shape": list(shape[1:])}

    # -- functional --------------------------------------------------------------------

    def functional(self, inner: dict[str, Any], keras_name: str) -> dict[str, Any] | None:
        body = self.graph(inner, keras_name, None)
        if body is None:
            return None
        return {"name": self.model_name(keras_name), "kind": "functional", "body": body}

    def graph(self, inner: dict[str, Any], label: str, prefix: str | None
              ) -> list[dict[str, Any]] | None:
        """The body of a functional model (`prefix` None), or of the block a nested
        model becomes: `prefix` is how the compiled program starts its layers' names
        (`<use>_`), left out of the nodes' names so that the layers keep theirs."""
        g = _graph_layers(inner, prefix)
        input_refs, output_refs = _model_refs(inner, g)
        self.name_graph(g)
        body = self.graph_inputs(g, input_refs)
        self.convert_calls(g)
        if self.diags.has_errors:
            return None
        outputs = self.graph_outputs(g, output_refs, label)
        if outputs is None:
            return None
        return self.graph_statements(g, body, outputs)

    def name_graph(self, g: _Graph) -> None:
        """Spec names: original names where they are valid, then the rest. In a block,
        the node of layer `<prefix>conv` is `conv`: the compiled layer is `<prefix>conv`."""
        prefix = g.prefix
        g.wanted = {name: name[len(prefix):] if prefix and name.startswith(prefix) and
                    len(name) > len(prefix) else name for name in g.entries}
        g.names = names = self.names()
        for layer, _ in g.calls:
            g.counts[layer] = g.counts.get(layer, 0) + 1
        g.shared = {layer for layer, n in g.counts.items() if n > 1}
        kinds = {name: "input" if name in g.inputs else "layer" if name in g.shared else "node"
                 for name in g.entries if name in g.inputs or name in g.counts}
        for name, kind in kinds.items():
            if names.ok(g.wanted[name], kind):
                g.layer_idents[name] = names.claim(g.wanted[name], kind)
        for name, kind in kinds.items():
            if name not in g.layer_idents:
                g.layer_idents[name] = names.claim(g.wanted[name], kind)
        for name in kinds:
            if name in g.shared:
                for k in range(g.counts[name]):
                    g.idents[(name, k)] = names.claim(f"{g.layer_idents[name]}_call{k + 1}",
                                                      "node")
            else:
                g.idents[(name, 0)] = g.layer_idents[name]

    def graph_inputs(self, g: _Graph, input_refs: list[tuple[str, int, int]]
                     ) -> list[dict[str, Any]]:
        """The body's input statements, in the model's order."""
        body: list[dict[str, Any]] = []
        for ref in input_refs:
            ident = g.idents[(ref[0], 0)]
            if g.prefix is not None:  # a block's input takes whatever the use passes
                body.append({"input": ident})
                continue
            stmt = self.input_statement(ident, _config_of(g.entries[ref[0]], ref[0]), ref[0],
                                        len(body))
            if stmt is not None:
                body.append(stmt)
        return body

    def convert_calls(self, g: _Graph) -> None:
        """Each call's node value (`g.values`) and the calls it uses (`g.deps`); a layer
        that cannot be imported is reported once and its calls left out."""
        failed: set[str] = set()  # layers already reported
        for (name, k), (args, kwargs) in g.calls.items():
            if name in failed:
                continue
            entry = g.entries[name]
            try:
                converted = self.application(entry, name, args, kwargs, g.idents)
                kind = "model" if _is_model(entry) else "shared" if name in g.shared else "layer"
                value = getattr(self, f"_call_{kind}")(g, name, k, converted)
            except _Unsupported:
                failed.add(name)
                continue
            g.values[(name, k)] = value
            g.deps[(name, k)] = {key for key in _tensor_keys([args, kwargs])
                                 if key[0] not in g.inputs}

    def _call_model(self, g: _Graph, name: str, k: int, converted: dict[str, Any]
                    ) -> dict[str, Any]:
        """A nested model applied once: a call of the block it becomes."""
        entry = g.entries[name]
        if name in g.shared:
            self.shared_model(name, entry, g.counts[name])
            raise _Unsupported
        block = self.nested_block(entry, name, f"{g.prefix or ''}{g.idents[(name, k)]}_")
        return {"call": {"call": block}, **converted}

    def _call_shared(self, g: _Graph, name: str, k: int, converted: dict[str, Any]
                     ) -> dict[str, Any]:
        """A call of a layer used several times: the named `layer` (built once), applied."""
        if name not in g.layer_values:
            g.layer_values[name] = self.layer_call(g.entries[name], self._keras_name(
                g.wanted[name], g.layer_idents[name]))
        return {"call": g.layer_idents[name], "args": converted["args"],
                **({"kwargs": converted["kwargs"]} if converted.get("kwargs") else {})}

    def _call_layer(self, g: _Graph, name: str, k: int, converted: dict[str, Any]
                    ) -> dict[str, Any]:
        """A layer called once: constructed in place."""
        layer = self.layer_call(g.entries[name], self._keras_name(g.wanted[name],
                                                                  g.idents[(name, k)]),
                                op=converted.pop("op", None))
        return {"call": layer, **converted}

    def graph_outputs(self, g: _Graph, output_refs: list[tuple[str, int, int]], label: str
                      ) -> list[tuple[str, int]] | None:
        """The calls the body returns, or None when a spec cannot return them (reported)."""
        outputs = [(ref[0], ref[1]) for ref in output_refs]
        for key in outputs:
            if key not in g.idents:
                raise _Malformed(f"model output {key[0]!r} (call {key[1]}) is not a layer call "
                                 "of the model")
        for ref in output_refs:
            if ref[2] != 0:
                self.multi_output(ref[0], g.entries[ref[0]])
        if g.prefix is not None and len(outputs) != 1:
            self.error("E406", f"the nested model `{label}` has {len(outputs)} outputs; the "
                       "block it becomes has one, used like a layer's",
                       hint="import a model whose nested models each return one tensor")
            return None
        if len(set(outputs)) != len(outputs):
            self.error("E401", "the model returns the same tensor twice",
                       hint="a spec names each output once")
            return None
        return None if self.diags.has_errors else outputs

    def graph_statements(self, g: _Graph, body: list[dict[str, Any]],
                         outputs: list[tuple[str, int]]) -> list[dict[str, Any]]:
        """The body: the inputs, then the nodes in dataflow order (a stable topological
        sort by position in the config), then the outputs."""
        used = {d for ds in g.deps.values() for d in ds}
        placed: set[str] = set()
        inline = set() if g.prefix is not None else self.inline_outputs(
            outputs, used, g.values, g.order, g.deps)
        for key in _topological(g.values, g.deps, g.order):
            name = key[0]
            if name in g.shared and name not in placed:
                placed.add(name)
                body.append({"layer": g.layer_idents[name], "value": g.layer_values[name]})
            kind = "output" if key in inline else "node"
            body.append({kind: g.idents[key], "value": g.values[key]})
        if g.prefix is not None:
            # The block's output layer takes the use's name, as the nested model had it;
            # an `Identity` leaves the nested model's last layer its own name.
            body.append({"output": g.names.claim("out", "node"), "value": {
                "call": {"call": "Identity"}, "args": [{"ref": g.idents[outputs[0]]}]}})
            return body
        for key in outputs:
            if key not in inline:
                body.append({"output": g.idents[key]})
        return body

    def nested_block(self, entry: dict[str, Any], label: str, prefix: str) -> str:
        """The name of the block a nested model (applied once) becomes."""
        config = entry.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise _missing("layers")
        if config.get("trainable") is False:  # Keras freezes every layer of a frozen model
            config = {**config, "layers": [_frozen(layer) for layer in config["layers"]]}
        if entry.get("class_name") == "Sequential":
            config = self.sequential_graph(config, label, nested=True)
            if config is None:
                raise _Unsupported
        body = self.graph(config, label, prefix)
        if body is None:
            raise _Unsupported
        name = self.block_name(label)
        self.blocks.append({"name": name, "body": body})
        return name

    def block_name(self, keras_name: str) -> str:
        """`convnext_tiny_stem` -> `ConvnextTinyStem`, unique, not a Keras class name."""
        base = "".join(part[:1].upper() + part[1:] for part in _sanitize(keras_name).split("_"))
        base = base if _IDENT.match(base) else "Block" + base

        def free(name: str) -> bool:
            return name not in self.block_names and name not in self.seen and \
                name not in _LITERALS and \
                name not in _class_names() and catalog.lookup("layers", name) is None

        if not free(base):
            base += "Block"
        candidate, n = base, 1
        while not free(candidate):
            n += 1
            candidate = f"{base}{n}"
        self.block_names.add(candidate)
        return candidate

    def shared_model(self, name: str, entry: dict[str, Any], count: int) -> None:
        self.error("E300", f"the nested model `{name}` (`{entry.get('class_name')}`) is "
                   f"applied {count} times; the block it would become builds new layers at "
                   "each use, so its weights would not be shared",
                   hint="apply the nested model once, or build the outer model from its "
                        "layers (a flat functional model, with shared layers), then import it")

    @staticmethod
    def _keras_name(original: str, ident: str) -> str | None:
        """The `name` kwarg a functional layer needs: only when its node is renamed."""
        return None if original == ident else original

    def inline_outputs(self, outputs: list[tuple[str, int]], used: set[tuple[str, int]],
                       values: dict, order: dict[str, int], deps: dict) -> set[tuple[str, int]]:
        """Outputs that can be written `output NAME = …` in place, keeping their order."""
        candidates = {key for key in outputs if key in values and key not in used}
        ranked = _topological(values, deps, order)
        position = {key: i for i, key in enumerate(ranked)}
        inline_order = sorted(candidates, key=position.__getitem__)
        markers = [key for key in outputs if key not in candidates]
        if inline_order + markers == outputs:
            return candidates
        return set()

    def multi_output(self, name: str, entry: dict[str, Any]) -> None:
        self.error("E406", f"layer `{name}` (`{entry.get('class_name')}`) returns several "
                   "tensors; a spec node holds one tensor",
                   hint="tfspec cannot import layers with several outputs (such as "
                        "`return_state = true`)")

    def application(self, entry: dict[str, Any], name: str, args: list[Any],
                    kwargs: dict[str, Any], idents: dict) -> dict[str, Any]:
        """The tensor arguments of one call: `{"args": […], "kwargs"?: {…}}`."""
        cls = entry.get("class_name")
        module = entry.get("module")
        if _is_op(module):
            return self.op_application(entry, name, args, kwargs, idents)
        if _config_of(entry, name).get("return_state") is True:
            self.multi_output(name, entry)
            raise _Unsupported
        out_args = [self.tensor_arg(a, name, idents) for a in args]
        out_kwargs: dict[str, Any] = {}
        for key, value in kwargs.items():
            if _is_none(value) or (key == "training" and value is False):
                continue  # the defaults Keras records (`mask = [None, None]` for a model)
            if key in ("return_state", "return_attention_scores") and value is True:
                self.multi_output(name, entry)
                raise _Unsupported
            if _has_tensor(value):
                out_kwargs[key] = self.tensor_arg(value, name, idents)
            elif _is_literal(value):
                out_kwargs[key] = value  # `use_causal_mask = true`
            else:
                self.error("E406", f"layer `{name}` (`{cls}`) is called with "
                           f"`{key}={json.dumps(value)}`, which a spec cannot pass",
                           hint="a spec passes tensors, numbers, strings and booleans "
                                "when it applies a layer")
                raise _Unsupported
        if not out_args:
            self.error("E406", f"layer `{name}` (`{cls}`) is called without a tensor")
            raise _Unsupported
        result: dict[str, Any] = {"args": out_args}
        if out_kwargs:
            result["kwargs"] = out_kwargs
        return result

    def tensor_arg(self, value: Any, name: str, idents: dict) -> Any:
        if _is_tensor(value):
            layer, k, t = _history(value)
            if t != 0:
                self.error("E406", f"layer `{name}` uses output {t} of layer `{layer}`; a "
                           "spec node holds one tensor",
                           hint="tfspec cannot import layers with several outputs")
                raise _Unsupported
            if (layer, k) not in idents:
                raise _Malformed(f"layer {name!r} uses an unknown tensor of {layer!r}")
            return {"ref": idents[(layer, k)]}
        if isinstance(value, list):
            return [self.tensor_arg(v, name, idents) for v in value]
        self.error("E406", f"layer `{name}` is called with {json.dumps(value)} where a "
                   "spec passes tensors")
        raise _Unsupported

    def op_application(self, entry: dict[str, Any], name: str, args: list[Any],
                       kwargs: dict[str, Any], idents: dict) -> dict[str, Any]:
        """`x + 3.0`, `a * b` (keras.ops on symbolic tensors) as a layer application."""
        cls = _class(entry)
        values = list(args) + [v for v in kwargs.values() if v is not None]
        tensors = [v for v in values if _is_tensor(v)]
        numbers = [v for v in values if _is_number(v)]
        hint = ("write it with a layer (`Add()([a, b])`, `Rescaling(…)`, `Reshape(…)`…) "
                "and save the model again")
        if cls not in _OP_LAYERS and cls not in ("Divide", "TrueDivide"):
            self.error("E300", f"`{name}` is the Keras operation `{cls}` (from "
                       f"`{entry.get('module')}`), which has no layer form in tfspec", hint)
            raise _Unsupported
        if len(values) != 2 or len(tensors) + len(numbers) != 2 or not tensors:
            self.error("E300", f"`{name}` (the Keras operation `{cls}`) has arguments a "
                       "spec cannot express", hint)
            raise _Unsupported
        if len(tensors) == 2:
            if cls not in _OP_LAYERS:
                self.error("E300", f"`{name}` divides two tensors; tfspec has no layer for "
                           "that", hint)
                raise _Unsupported
            return {"args": [[self.tensor_arg(t, name, idents) for t in tensors]],
                    "op": (_OP_LAYERS[cls], None)}
        tensor, number = tensors[0], numbers[0]
        dtype = _dtype_name(_config_of(tensor, "a tensor").get("dtype"))
        if dtype not in _FLOAT_DTYPES:
            self.error("E300", f"`{name}` applies `{cls}` to a `{dtype}` tensor and a "
                       "number; tfspec writes that as `Rescaling`, which needs a float tensor",
                       hint)
            raise _Unsupported
        first = _is_tensor(values[0])
        number = float(number)
        if cls == "Add":
            scale, offset = 1.0, number
        elif cls == "Subtract":
            scale, offset = (1.0, -number) if first else (-1.0, number)
        elif cls == "Multiply":
            scale, offset = number, 0.0
        elif cls in ("Divide", "TrueDivide") and first and number != 0:
            scale, offset = 1.0 / number, 0.0
        else:
            self.error("E300", f"`{name}` (the Keras operation `{cls}`) has no layer form "
                       "in tfspec", hint)
            raise _Unsupported
        return {"args": [self.tensor_arg(tensor, name, idents)],
                "op": ("Rescaling", {"scale": scale, "offset": offset})}

    # -- layer constructions -------------------------------------------------------------

    def layer_call(self, entry: dict[str, Any], keras_name: str | None,
                   op: tuple[str, dict[str, Any] | None] | None = None,
                   nested: bool = False) -> dict[str, Any]:
        """`Class(args…, kwargs…)` for a serialized layer; `name` only if given."""
        if op is not None:
            cls, config = op
            config = dict(config or {})
            label = keras_name or _layer_name(entry)
        else:
            if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
                raise _Malformed("a layer is not a serialized Keras object")
            cls = entry["class_name"]
            config = entry.get("config")
            label = keras_name or (config or {}).get("name") or cls
            if not isinstance(config, dict):
                raise _Malformed(f"layer {label!r} has no config")
            self.check_layer_class(cls, entry, label)
        found = catalog.lookup("layers", cls)
        if found is None:  # a check_layer_class bug guard
            raise _Unsupported
        call = self.construct(found, config, "layers", label)
        if cls == "Bidirectional":
            _simplify_bidirectional(call)
        if keras_name is not None and not nested:
            call.setdefault("kwargs", {})["name"] = keras_name
        return call

    def check_layer_class(self, cls: str, entry: dict[str, Any], label: str) -> None:
        module = entry.get("module")
        registered = entry.get("registered_name")
        if cls in _MODEL_CLASSES and _keras_module(module, "keras"):  # not a block's use
            self.error("E300", f"layer `{label}` is a model (`{cls}`) given to another "
                       "layer; a spec passes only Keras layers there",
                       hint="build the outer model from the inner model's layers "
                            "(a flat functional model), then import it")
            raise _Unsupported
        found = catalog.lookup("layers", cls)
        builtin = _keras_module(module, "keras.layers") and registered in (None, cls)
        if found is None or not builtin or found.get("string"):
            where = f" from `{module}`" if module else ""
            self.error("E300", f"layer `{label}` is the custom class `{cls}`{where}, which "
                       "is not a Keras layer", _CUSTOM_HINT)
            raise _Unsupported
        if found["name"] in _NOT_IMPORTABLE:
            self.error("E300", f"layer `{label}` cannot be imported: "
                       f"{_NOT_IMPORTABLE[found['name']]}", _CUSTOM_HINT)
            raise _Unsupported

    def construct(self, found: dict[str, Any], config: dict[str, Any], category: str,
                  label: str) -> dict[str, Any]:
        """A call of catalog entry `found` from a Keras config, defaults left out."""
        cls = found["name"]  # the canonical class, not an alias (`Conv2D`, not `Convolution2D`)
        params = {p["name"]: p for p in found.get("params", [])}
        base = {p["name"]: p for p in catalog.base_kwargs(category)} if found.get(
            "var_keyword") else {}
        values: dict[str, Any] = {}
        for key, raw in config.items():
            if key == "name":
                continue
            param = params.get(key) or base.get(key)
            if param is None:
                continue  # Keras state that is not a constructor argument
            value = self.value(raw, key, f"`{key}` of `{label}`")
            if value is _DROP or _is_default(value, param, config, category):
                continue
            values[key] = value
        call: dict[str, Any] = {"call": cls}
        args: list[Any] = []
        for p in found.get("params", []):
            if not (p.get("positional", True) and p.get("required")) or p["name"] not in values:
                break
            args.append(values.pop(p["name"]))
        ordered = {k: values[k] for k in list(params) + list(base) if k in values}
        if args:
            call["args"] = args
        if ordered:
            call["kwargs"] = ordered
        return call

    def value(self, raw: Any, param: str, where: str) -> Any:
        """A config value as an IR value (or `_DROP`)."""
        if isinstance(raw, dict):
            return self.keras_object(raw, param, where)
        if isinstance(raw, list):
            items = [self.value(v, param, where) for v in raw]
            if any(v is _DROP for v in items):
                self.error("E305", f"{where} holds a value a spec cannot write")
                raise _Unsupported
            return items
        if isinstance(raw, float) and not math.isfinite(raw):
            self.error("E305", f"{where} is {raw}, which has no literal in tfspec")
            raise _Unsupported
        return raw

    def keras_object(self, raw: dict[str, Any], param: str, where: str) -> Any:
        cls = _class(raw)
        config = raw.get("config")
        if cls == "__tuple__" and isinstance(config, dict):
            return self.value(_list_of(config.get("value"), where), param, where)
        if cls == "__numpy__" and isinstance(config, dict):
            return self.value(config.get("value"), param, where)
        if cls in _POLICIES and isinstance(config, dict):
            policy = config.get("name")
            if not isinstance(policy, str):
                raise _Malformed(f"{where}: a dtype policy without a name")
            return _DROP if policy == "float32" else policy
        kind = catalog.kind_for_param(param)
        if not isinstance(cls, str) or not isinstance(config, (dict, str)):
            self.error("E305", f"{where} is a mapping, which a spec cannot write")
            raise _Unsupported
        module = raw.get("module")
        if cls == "function" and isinstance(config, str) and kind == "activations" and \
                _keras_module(module, "keras.activations") and \
                catalog.lookup("activations", config) is not None:
            return config
        if cls == "function" and isinstance(config, str):
            self.error("E300", f"{where} is the custom function `{config}`",
                       hint="custom Keras objects cannot be expressed in a spec")
            raise _Unsupported
        if kind == "layers":
            return self.layer_call(raw, None, nested=True)
        if kind is None or not isinstance(config, dict):
            self.error("E300", f"{where} is a `{cls}` object, which a spec cannot write",
                       hint="tfspec writes only layers, activations, initializers, "
                            "regularizers and constraints as nested calls")
            raise _Unsupported
        found = catalog.lookup(kind, cls)
        expected = "keras." + kind
        if found is None or found.get("string") or not _keras_module(module, expected):
            self.error("E300", f"{where} is `{cls}`, which is not in `{expected}`",
                       hint="custom Keras objects cannot be expressed in a spec")
            raise _Unsupported
        call = self.construct(found, config, kind, where)
        if "args" in call or "kwargs" in call:
            return call
        return _identifier(kind, call["call"]) or call


# -- helpers -------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A copy of a config as JSON would give it: tuples become lists.

    `model.get_config()` holds tuples (`kernel_size=(3, 3)`, a call's arguments)
    where the saved JSON has lists; both import the same.
    """
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _class(entry: dict[str, Any]) -> str | None:
    """A serialized object's `class_name`, None when it has none (or not a string)."""
    cls = entry.get("class_name")
    return cls if isinstance(cls, str) else None


def _config_of(entry: dict[str, Any], label: str) -> dict[str, Any]:
    """A serialized object's `config`: {} when it has none, _Malformed if not an object."""
    config = entry.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise _Malformed(f"the config of {label!r} is not an object")
    return config


def _list_of(value: Any, label: str) -> list[Any]:
    """A list the config holds (None: empty), _Malformed if it is something else."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Malformed(f"{label}: expected a list. Received: {type(value).__name__}")
    return value


def _input_name(cfg: dict[str, Any]) -> str | None:
    """The `name` of a Sequential model's InputLayer config, if it has one."""
    name = cfg.get("name")
    if name is not None and not isinstance(name, str):
        raise _Malformed("the input's name is not a string")
    return name


def _is_model(entry: dict[str, Any]) -> bool:
    """Whether a layer entry is a Keras Sequential or Functional model (a nested model)."""
    return _class(entry) in _MODEL_CLASSES and _keras_module(entry.get("module"),
                                                                      "keras")


def _tensor_of(entry: dict[str, Any], node: int = 0) -> dict[str, Any]:
    """The Keras tensor that call `node` of a layer entry returns, as a call's argument."""
    return {"class_name": "__keras_tensor__",
            "config": {"keras_history": [_layer_name(entry), node, 0]}}


def _shifted(ref: tuple[str, int, int], shift: set[str]) -> tuple[str, int, int]:
    """An `output_layers` reference to a nested functional model with its node index
    made that of the call in `inbound_nodes` (Keras counts the model's own node first)."""
    layer, node, index = ref
    if layer not in shift:
        return ref
    if node < 1:
        raise _Malformed(f"a tensor of the nested model {layer!r} that no call made")
    return layer, node - 1, index


def _frozen(entry: Any) -> Any:
    """A layer entry with `trainable = false` (a layer of a frozen nested model)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        return entry
    return {**entry, "config": {**entry["config"], "trainable": False}}


@dataclass
class _Graph:
    """One functional body being imported: its layers and their calls as the config
    has them, the spec names they get (`_Importer.name_graph`) and each call's node
    value (`_Importer.convert_calls`)."""

    prefix: str | None  # a block's: see `_Importer.graph`
    entries: dict[str, dict[str, Any]]  # layer name -> its config entry
    order: dict[str, int]  # layer name -> position in the config
    inputs: list[str]  # the InputLayers' names
    # (layer name, node index) -> (args, kwargs) as Keras recorded them
    calls: dict[tuple[str, int], tuple[list[Any], dict[str, Any]]]
    wanted: dict[str, str] = field(default_factory=dict)  # the name each layer asks for
    counts: dict[str, int] = field(default_factory=dict)  # calls per layer
    shared: set[str] = field(default_factory=set)  # layers called more than once
    layer_idents: dict[str, str] = field(default_factory=dict)
    idents: dict[tuple[str, int], str] = field(default_factory=dict)  # each call's node
    names: _Names = field(default_factory=_Names)  # the body's namespace
    values: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    deps: dict[tuple[str, int], set[tuple[str, int]]] = field(default_factory=dict)
    layer_values: dict[str, dict[str, Any]] = field(default_factory=dict)  # shared layers


def _graph_layers(inner: dict[str, Any], prefix: str | None) -> _Graph:
    """The layer entries of a functional config (keras.applications' private layers
    rewritten) and their calls."""
    if not all(isinstance(entry, dict) for entry in inner["layers"]):
        raise _Malformed("a layer entry is not an object")
    g = _Graph(prefix, {}, {}, [], {})
    for entry in _private_layers(inner["layers"]):
        name = _layer_name(entry)
        if name in g.entries:
            raise _Malformed(f"two layers are named {name!r}")
        g.entries[name] = entry
        g.order[name] = len(g.order)
    for name, entry in g.entries.items():
        if entry.get("class_name") == "InputLayer":
            g.inputs.append(name)
            continue
        nodes = entry.get("inbound_nodes") or []
        if not isinstance(nodes, list):
            raise _Malformed(f"the inbound_nodes of layer {name!r} are not a list")
        for k, node in enumerate(nodes):
            g.calls[(name, k)] = _node_arguments(node)
    return g


def _model_refs(inner: dict[str, Any], g: _Graph
                ) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """The model's `input_layers` and `output_layers` references."""
    # The model's outputs count a nested functional model's own first node (its
    # inputs to its outputs), which `inbound_nodes` leaves out; calls do not.
    shift = {name for name, entry in g.entries.items() if _class(entry) in _FUNCTIONAL_CLASSES}
    input_refs = _histories(inner.get("input_layers"))
    output_refs = [_shifted(ref, shift) for ref in _histories(inner.get("output_layers"))]
    if not input_refs or not output_refs:
        raise _missing("input_layers" if not input_refs else "output_layers")
    for ref in input_refs:
        if ref[0] not in g.inputs:
            raise _Malformed(f"model input {ref[0]!r} is not an InputLayer")
    return input_refs, output_refs


# -- layers private to keras.applications -------------------------------------------------
#
# A few `keras.applications` models use a small layer class of their own module. Each
# has Keras layers that compute exactly the same, with the same weights, which the
# entry is rewritten into; the first keeps the layer's name.


def _layer_scale(entry: dict[str, Any], taken: set[str]) -> list[dict[str, Any]] | None:
    """ConvNeXt's `LayerScale`: `x * gamma`, `gamma` a learned vector over the last
    axis, is `EinsumDense("...c,c->...c", …)` with the same (C,) weight."""
    cfg = _config_of(entry, _layer_name(entry))
    dim, init = cfg.get("projection_dim"), cfg.get("init_values")
    if not isinstance(dim, int) or isinstance(dim, bool) or not _is_number(init):
        return None
    config = {k: cfg[k] for k in ("name", "trainable", "dtype") if k in cfg}
    config |= {"equation": "...c,c->...c", "output_shape": dim, "kernel_initializer": {
        "module": "keras.initializers", "class_name": "Constant", "config": {"value": init},
        "registered_name": None}}
    return [{**entry, "module": "keras.layers", "class_name": "EinsumDense",
             "registered_name": None, "config": config}]


def _custom_scale(entry: dict[str, Any], taken: set[str]) -> list[dict[str, Any]] | None:
    """Inception-ResNet-v2's `CustomScaleLayer`: `inputs[0] + inputs[1] * scale` is
    `Rescaling(scale)` on the second tensor, then `Add` (no weights)."""
    cfg = _config_of(entry, _layer_name(entry))
    scale = cfg.get("scale")
    nodes = entry.get("inbound_nodes")
    if not _is_number(scale) or not isinstance(nodes, list) or not nodes:
        return None
    name = _layer_name(entry)
    scaled = fresh_name(f"{name}_scaled", taken)
    base = {k: cfg[k] for k in ("trainable", "dtype") if k in cfg}
    rescale = {"module": "keras.layers", "class_name": "Rescaling", "registered_name": None,
               "name": scaled, "config": {"name": scaled, **base, "scale": scale},
               "inbound_nodes": []}
    add = {"module": "keras.layers", "class_name": "Add", "registered_name": None,
           "name": name, "config": {"name": name, **base}, "inbound_nodes": []}
    for k, node in enumerate(nodes):
        args, _ = _node_arguments(node)
        if len(args) != 1 or not isinstance(args[0], list) or len(args[0]) != 2:
            return None
        x, y = args[0]
        rescale["inbound_nodes"].append({"args": [y], "kwargs": {}})
        add["inbound_nodes"].append({"args": [[x, _tensor_of(rescale, k)]], "kwargs": {}})
    return [rescale, add]


_PRIVATE_LAYERS = {"LayerScale": _layer_scale, "CustomScaleLayer": _custom_scale}


def _private_layers(layers: list[Any]) -> list[Any]:
    """The layer entries with the `keras.applications` layers above rewritten; one
    that does not fit its rewrite is left as it is (and reported as a custom layer)."""
    taken = {_layer_name(entry) for entry in layers if isinstance(entry, dict)}
    out: list[Any] = []
    for entry in layers:
        cls = entry.get("class_name") if isinstance(entry, dict) else None
        rewrite = _PRIVATE_LAYERS.get(cls) if isinstance(cls, str) else None
        module = entry.get("module") if isinstance(entry, dict) else None
        if rewrite is None or not isinstance(module, str) or not module.startswith(
                ("keras.src.applications.", "keras.applications.")) or entry.get(
                "registered_name") not in (None, cls):
            out.append(entry)
            continue
        out += rewrite(entry, taken) or [entry]
    return out


def _keras_module(module: Any, prefix: str) -> bool:
    """Whether a serialized object's `module` is Keras's own (legacy configs have none)."""
    if module is None:
        return True
    if not isinstance(module, str):
        return False
    public = prefix.replace("keras.", "keras.src.", 1) if prefix != "keras" else "keras.src"
    return module in (prefix, "keras") or module.startswith((prefix + ".", public))


def _is_op(module: Any) -> bool:
    return isinstance(module, str) and module.startswith(("keras.src.ops", "keras.ops"))


def _layer_name(entry: dict[str, Any]) -> str:
    name = entry.get("name")
    if not isinstance(name, str):
        config = entry.get("config")
        name = config.get("name") if isinstance(config, dict) else None
    if not isinstance(name, str) or not name:
        raise _missing("name")
    return name


def _dtype_name(dtype: Any) -> str | None:
    if isinstance(dtype, dict):
        dtype = _config_of(dtype, "dtype").get("name")
    return dtype if isinstance(dtype, str) else None


def _is_none(value: Any) -> bool:
    """None, or a non-empty list of Nones."""
    return value is None or (isinstance(value, list) and bool(value) and all(
        _is_none(v) for v in value))


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_literal(value: Any) -> bool:
    if isinstance(value, list):
        return all(_is_literal(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool)) or value is None


def _has_tensor(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_tensor(v) for v in value)
    return _is_tensor(value)


def _history(tensor: dict[str, Any]) -> tuple[str, int, int]:
    """A Keras tensor's `[layer, node index, tensor index]`."""
    history = _config_of(tensor, "a tensor").get("keras_history")
    if not isinstance(history, list) or len(history) != 3:
        raise _Malformed("a malformed keras_history")
    layer, node, index = history
    if not isinstance(layer, str) or not isinstance(node, int) or not isinstance(index, int):
        raise _Malformed("a malformed keras_history")
    return layer, node, index


def _unwrap(value: Any) -> Any:
    """Keras's `__tuple__` wrappers as plain lists."""
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        return [_unwrap(v) for v in _list_of(_config_of(value, "a tuple").get("value"),
                                             "a tuple")]
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, dict) and not _is_tensor(value):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _node_arguments(node: Any) -> tuple[list[Any], dict[str, Any]]:
    """(args, kwargs) of one inbound node, Keras 3 or legacy (Keras 2) format."""
    if isinstance(node, dict):
        args = _unwrap(node.get("args", []))
        kwargs = _unwrap(node.get("kwargs", {}))
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise _Malformed("a malformed inbound node")
        return args, kwargs
    if isinstance(node, list):  # [[layer, node, tensor, kwargs], …]
        tensors = []
        kwargs: dict[str, Any] = {}
        for item in node:
            if not isinstance(item, list) or len(item) < 3:
                raise _Malformed("a malformed inbound node")
            tensors.append({"class_name": "__keras_tensor__",
                            "config": {"keras_history": list(item[:3])}})
            if len(item) > 3 and isinstance(item[3], dict):
                kwargs.update(item[3])
        return [tensors[0] if len(tensors) == 1 else tensors], kwargs
    raise _Malformed("a malformed inbound node")


def _histories(value: Any) -> list[tuple[str, int, int]]:
    """`[name, node, tensor]` triples from `input_layers`/`output_layers`, in order."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str) and \
            all(isinstance(v, int) for v in value[1:]):
        return [(value[0], value[1], value[2])]
    if isinstance(value, list):
        return [h for v in value for h in _histories(v)]
    if isinstance(value, dict):
        if value.get("class_name") == "__tuple__":
            return _histories(_config_of(value, "a tuple").get("value"))
        return [h for v in value.values() for h in _histories(v)]
    raise _Malformed("malformed input_layers or output_layers")


def _tensor_keys(value: Any) -> set[tuple[str, int]]:
    """The (layer, node index) of every Keras tensor in a node's arguments."""
    if _is_tensor(value):
        layer, k, _ = _history(value)
        return {(layer, k)}
    if isinstance(value, list):
        return {key for v in value for key in _tensor_keys(v)}
    if isinstance(value, dict):
        return {key for v in value.values() for key in _tensor_keys(v)}
    return set()


def _topological(values: dict[tuple[str, int], Any], deps: dict[tuple[str, int], set],
                 order: dict[str, int]) -> list[tuple[str, int]]:
    """Keys in dataflow order; ties broken by position in the config, then call index."""
    waiting = {key: {d for d in deps.get(key, ()) if d in values} for key in values}
    users: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for key, ds in waiting.items():
        for d in ds:
            users.setdefault(d, []).append(key)
    heap = [(order[key[0]], key[1], key) for key, ds in waiting.items() if not ds]
    heapq.heapify(heap)
    out: list[tuple[str, int]] = []
    while heap:
        _, _, key = heapq.heappop(heap)
        out.append(key)
        for user in users.get(key, ()):
            waiting[user].discard(key)
            if not waiting[user]:
                heapq.heappush(heap, (order[user[0]], user[1], user))
    if len(out) != len(values):
        raise _Malformed("the layer graph has a cycle")
    return out


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps booleans apart from numbers (JSON `true` is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _is_default(value: Any, param: dict[str, Any], config: dict[str, Any],
                category: str) -> bool:
    """Whether `value` means what leaving the argument out means."""
    if "default" not in param:
        return False
    default = param["default"]
    name = param["name"]
    if _same(value, default):
        return True
    if isinstance(value, list) and value and _is_number(default) and all(
            _same(v, default) for v in value):
        return True  # strides = [1, 1] is strides = 1
    kind = catalog.kind_for_param(name)
    if kind == "activations" and value in ("linear", None) and default in ("linear", None):
        return True
    if name == "dtype" and value == "float32" and default is None:
        return True  # the float32 policy is Keras's default
    if name == "data_format" and value == "channels_last" and default is None:
        return True  # Keras's default image data format
    twin = _SAME_AS.get(name)
    if twin is not None and default is None and twin in config:
        return _same(value, config[twin])
    if kind is not None and isinstance(default, str) and isinstance(value, (str, dict)):
        wanted = catalog.lookup(kind, default)
        if isinstance(value, str):
            got = catalog.lookup(kind, value)
            return bool(wanted and got and wanted["name"] == got["name"])
        return bool(wanted and value.get("call") == wanted["name"] and not value.get("args")
                    and not value.get("kwargs"))
    return False


def _identifier(kind: str, cls: str) -> str | None:
    """The string that Keras's `<kind>.get()` turns into `cls()` ("he_normal" for HeNormal).

    Only the catalog's string identifiers count: `constant` is an alias of `Constant`
    in Python, but `keras.initializers.get("constant")` raises (it needs a value), so
    `Constant(…)` is always written as a call.
    """
    type_name = _STRING_TYPES.get(kind)
    if type_name is None:
        return None
    candidates = [n for n in catalog.names(kind) if n.islower()
                  and catalog.check_value(type_name, n) is None
                  and (catalog.lookup(kind, n) or {}).get("name") == cls]
    return max(candidates, key=len) if candidates else None


def _simplify_bidirectional(call: dict[str, Any]) -> None:
    """Drop `backward_layer` when it is the forward layer run backwards (Keras's default)."""
    kwargs = call.get("kwargs") or {}
    backward = kwargs.get("backward_layer")
    forward = (call.get("args") or [None])[0]
    if not isinstance(backward, dict) or not isinstance(forward, dict):
        return
    back_kwargs = dict(backward.get("kwargs") or {})
    back_reversed = back_kwargs.pop("go_backwards", False)
    forward_kwargs = dict(forward.get("kwargs") or {})
    forward_reversed = forward_kwargs.pop("go_backwards", False)
    if (backward.get("call") == forward.get("call")
            and backward.get("args") == forward.get("args")
            and back_kwargs == forward_kwargs and back_reversed is not forward_reversed):
        del kwargs["backward_layer"]
        if not kwargs:
            call.pop("kwargs", None)
