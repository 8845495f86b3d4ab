"""What completion and hover know: the Keras catalog (with Keras's docstring
summaries and argument texts), the data sources and the IR's JSON Schema (section
keys, their descriptions, defaults and allowed values).

All of it is read from the files the checker uses (`tfspec.lang.catalog`,
`tfspec.lang.sources`, spec/tfspec.schema.json), once per process.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from ..lang import catalog
from ..lang.ir import parts
from ..lang.schema import schema
from ..lang.sources import SOURCES

# where a section key's value is a Keras call of this category
KEY_CATEGORY = {
    "optimizer": "optimizers", "loss": "losses", "metrics": "metrics",
    "callbacks": "callbacks", "learning_rate": "schedules", "preprocess": "layers",
    "augment": "layers", "weighted_metrics": "metrics",
}
# categories whose identifiers are written as strings (`loss = "mse"`)
STRING_CATEGORIES = ("losses", "metrics", "optimizers", "activations", "initializers",
                     "regularizers", "constraints")
# the order a bare callee is looked up in (a name is in at most a few of them)
LOOKUP_ORDER = ("layers", "optimizers", "losses", "metrics", "callbacks", "schedules",
                "initializers", "regularizers", "constraints", "activations")


def _resolve(node: Any) -> dict[str, Any]:
    """A schema node with its `$ref` followed (its own description kept)."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 10:
        target = schema()
        for part in parts(node["$ref"].lstrip("#")):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
    return node if isinstance(node, dict) else {}


def schema_node(path: list[str]) -> dict[str, Any] | None:
    """The schema of the section key at `path` (`["train", "loop"]`); export targets
    by format (`["export", "tflite", "quantize"]`)."""
    node: dict[str, Any] = schema()
    for i, part in enumerate(path):
        node = _resolve(node)
        if path[0] == "export" and i == 1:
            target = _resolve(schema()["$defs"].get(f"{part}_target", {}))
            if not target:
                return None
            node = target
            continue
        props = node.get("properties") or {}
        if part not in props:
            return None
        node = props[part]
    return _resolve(node)


def section_keys(path: list[str]) -> dict[str, dict[str, Any]]:
    """The keys a section at `path` accepts, with their schema."""
    if path and path[0] == "export" and len(path) == 1:
        return {name.removesuffix("_target"): _resolve(d)
                for name, d in schema()["$defs"].items()
                if name.endswith("_target") and name not in ("keras_target", "export_target")} | (
            {"keras": _resolve(schema()["$defs"]["keras_target"])}
            if "keras_target" in schema()["$defs"] else {})
    node = schema_node(path) if path else schema()
    if node is None:
        return {}
    props = _resolve(node).get("properties") or {}
    return {k: _resolve(v) for k, v in props.items()}


def enum_values(node: dict[str, Any] | None) -> list[tuple[str, str | None]]:
    """The allowed string values of a schema node, with their descriptions."""
    if not node:
        return []
    for alt in [node] + [_resolve(a) for a in node.get("anyOf", []) + node.get("oneOf", [])]:
        values = alt.get("enum")
        if values:
            docs = alt.get("enumDescriptions") or [None] * len(values)
            return [(v, d) for v, d in zip(values, docs, strict=False) if isinstance(v, str)]
    return []


# -- callables ------------------------------------------------------------------------------


def callable_entry(name: str, prefer: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """(category, catalog entry) of a called name; data sources as category "sources"."""
    order = ((prefer,) if prefer else ()) + LOOKUP_ORDER
    for category in order:
        if category == "sources":
            continue
        entry = catalog.lookup(category, name)
        if entry is not None and entry.get("name"):
            return category, entry
    if name in SOURCES:
        return "sources", {"name": name, **SOURCES[name]}
    return None


def params_of(category: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """An entry's own parameters, then the base keywords it accepts through **kwargs."""
    params = list(entry.get("params", []))
    if entry.get("var_keyword") and category != "sources":
        own = {p["name"] for p in params}
        params += [p for p in catalog.base_kwargs(category) if p["name"] not in own]
    return params


def summary(category: str, entry: dict[str, Any]) -> str | None:
    """Keras's docstring summary of an entry (a data source's own line), Markdown."""
    if category == "sources":
        return entry.get("doc")
    return catalog.documentation(category, entry["name"]).get("summary")


def arg_text(category: str, entry: dict[str, Any], name: str) -> str | None:
    """The entry's `Args:` text for parameter `name` in Keras's docstring, Markdown."""
    if category == "sources":
        return None
    return catalog.documentation(category, entry["name"])["args"].get(name)


def namespace(category: str) -> str:
    return catalog.NAMESPACES.get(category, "tfspec data source")


def type_phrase(param: dict[str, Any]) -> str | None:
    spec = param.get("type")
    if spec is None:
        return None
    try:
        return catalog._phrase(spec)
    except Exception:  # an unusual type spec: say nothing rather than fail
        return None


def show_value(value: Any) -> str:
    """A default as the DSL writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def signature(name: str, params: list[dict[str, Any]]) -> str:
    """`Dense(units, activation = null, …)`: required first as written by Keras."""
    parts = []
    for p in params:
        if p.get("required"):
            parts.append(p["name"])
        elif "default" in p:
            parts.append(f"{p['name']} = {show_value(p['default'])}")
        else:
            parts.append(p["name"])
    return f"{name}({', '.join(parts)})"


def param_doc(param: dict[str, Any]) -> str:
    """One line on a parameter: its type in words, default, whether required."""
    bits = []
    phrase = type_phrase(param)
    if phrase:
        bits.append(phrase)
    if param.get("required"):
        bits.append("required")
    elif "default" in param:
        bits.append(f"default {show_value(param['default'])}")
    if param.get("note"):
        bits.append(str(param["note"]))
    return "; ".join(bits)


def string_values_for(param: dict[str, Any] | None, name: str) -> list[str]:
    """The strings a keyword argument accepts: its enum, or the identifiers of the
    Keras object kind it takes (`activation` -> the activations)."""
    spec = (param or {}).get("type")
    found: list[str] = []

    def walk(t: Any) -> None:
        if isinstance(t, dict):
            if t.get("enum"):
                found.extend(v for v in t["enum"] if isinstance(v, str))
            for sub in t.get("any_of", []):
                walk(sub)
        elif t == "data_format":
            found.extend(["channels_last", "channels_first"])

    walk(spec)
    if found:
        return found
    kind = catalog.kind_for_param(name)
    if kind in STRING_CATEGORIES:
        return strings_of(kind)
    if name == "dtype" or spec == "dtype":
        return list(catalog._load("layers").get("dtypes", []))
    return []


@functools.cache
def strings_of(category: str) -> list[str]:
    """A category's string identifiers (`"relu"`, `"mse"`, `"accuracy"`)."""
    doc = catalog._load(category)
    return sorted(set(doc.get("strings", {})) | set(doc.get("compile_strings", {})))


@functools.cache
def entry_names(category: str) -> list[str]:
    """A category's public names (classes and functions), aliases included."""
    doc = catalog._load(category)
    return sorted(set(doc["entries"]) | set(doc.get("aliases", {})))
