"""`tfspec graph`: a Graphviz picture of the model's layer graph.

One node per Keras layer (name, class, output shape), edges along the tensors
that flow between them, the layers of each block use grouped in a cluster
labelled with the block and the use, inputs and outputs drawn apart. The DOT
text is deterministic: the same spec gives the same bytes. SVG and PNG are
rendered by Graphviz's `dot` program.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..codegen.program import Compiled
from ..lang.diagnostics import TfspecError
from ..lang.files import write_atomic
from .plan import Analysis, Locator, analyze, plan_from, shape_text

FORMATS = {".dot": None, ".svg": "svg", ".png": "png"}

_INPUT_FILL = "#d9f2d9"
_OUTPUT_FILL = "#fde2c8"
_LAYER_FILL = "#ffffff"
_CLUSTER_FILL = "#eef3fb"


class GraphvizError(TfspecError):
    """Graphviz could not render the graph (its own message says why)."""


class GraphvizMissing(GraphvizError):
    """The `dot` program is not installed; the DOT text was written instead."""

    cli_prefix = "tfspec: "  # half a success: the line says what was written instead


# -- DOT text ---------------------------------------------------------------------------------


def _q(text: str) -> str:
    """A DOT double-quoted ID."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _h(text: str) -> str:
    """Text for an HTML-like label."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _label(title: str, cls: str, shape: str, extra: str | None = None) -> str:
    rows = [f'<tr><td><b>{_h(title)}</b></td></tr>',
            f'<tr><td><font color="#555555">{_h(cls)}</font></td></tr>',
            f'<tr><td><font point-size="9">{_h(shape)}</font></td></tr>']
    if extra:
        rows.append(f'<tr><td><font point-size="8" color="#777777">{_h(extra)}</font></td></tr>')
    return ('<<table border="0" cellborder="0" cellspacing="0" cellpadding="1">'
            + "".join(rows) + "</table>>")


def _edges(analysis: Analysis, names: dict[int, str]) -> tuple[list[tuple[str, str, bool]],
                                                                list[tuple[str, Any]]]:
    """(source, target, direct) edges between layers, and input layers found outside
    `model.layers` (a Sequential keeps its input to itself).

    A tensor made by an operation that is not a layer of the model (a mask made
    by `ops.not_equal`, say) is traced back to the layers it came from; such
    edges are not direct and are drawn dashed.
    """
    edges: list[tuple[str, str, bool]] = []
    extra_inputs: list[tuple[str, Any]] = []
    seen: set[tuple[str, str]] = set()

    def sources(tensor: Any, depth: int = 0) -> list[tuple[str, bool]]:
        history = getattr(tensor, "_keras_history", None)
        if history is None or depth > 64:
            return []
        op = history.operation
        if id(op) in names:
            return [(names[id(op)], True)]
        if type(op).__name__ == "InputLayer":
            names[id(op)] = op.name
            extra_inputs.append((op.name, tensor))
            return [(op.name, True)]
        node = op._inbound_nodes[history.node_index]
        found = []
        for t in node.input_tensors:
            found += [(name, False) for name, _ in sources(t, depth + 1)]
        return found

    for layer in analysis.detail.layers:
        for node in analysis.nodes.get(id(layer), []):
            for tensor in node.input_tensors:
                for src, direct in sources(tensor):
                    key = (src, layer.name)
                    if key not in seen:
                        seen.add(key)
                        edges.append((src, layer.name, direct))
    return edges, extra_inputs


def _outputs(analysis: Analysis, plan_dict: dict[str, Any]) -> list[tuple[str, str]]:
    """(output name, the layer that produces it)."""
    model = analysis.detail
    flat = list(model.outputs)
    names = [s["name"] for s in plan_dict["signature"]["outputs"]]
    try:
        struct = model.output
    except (AttributeError, ValueError):
        struct = None
    if isinstance(struct, dict):
        flat = [struct[n] for n in names if n in struct]
    out = []
    for name, tensor in zip(names, flat, strict=False):
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            out.append((name, history.operation.name))
    return out


def dot_from(analysis: Analysis, plan_dict: dict[str, Any]) -> str:
    """The DOT text of an analysed model and its plan."""
    entries = {e["name"]: e for e in plan_dict["layers"]}
    names = {id(layer): layer.name for layer in analysis.detail.layers}
    edges, extra_inputs = _edges(analysis, names)
    outputs = _outputs(analysis, plan_dict)
    locator = Locator(analysis.detail_compiled)
    positions = analysis.compiled.positions

    title = f'{plan_dict["model"]} ({plan_dict["kind"]}) — {plan_dict["spec"]}'
    lines = [
        f"digraph {_q(plan_dict['model'])} {{",
        f'  graph [rankdir=TB, fontname="Helvetica", fontsize=12, labelloc=t, '
        f"label={_q(title)}, nodesep=0.3, ranksep=0.35];",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", '
        'fontname="Helvetica", fontsize=10, margin="0.08,0.04"];',
        '  edge [color="#444444", arrowsize=0.7];',
    ]

    def node_line(name: str, indent: str) -> str:
        e = entries.get(name)
        if e is None:  # an input kept inside a Sequential
            tensor = dict(extra_inputs)[name]
            shape = shape_text([None if d is None else int(d) for d in tensor.shape])
            span = positions.value(locator.inputs[name]) if name in locator.inputs else None
            label = _label(name, "InputLayer", shape, f"line {span.line}" if span else None)
            return (f"{indent}{_q(name)} [label={label}, shape=box, style=\"filled\", "
                    f'fillcolor="{_INPUT_FILL}", penwidth=1.5];')
        shape = shape_text(e["output_shape"])
        if e.get("output_dtype") and e["output_dtype"] != "float32":
            shape += f" {e['output_dtype']}"
        where = f"line {e['location'].split(':')[0]}" if e.get("location") else None
        if e["class"] == "InputLayer":
            style = f'shape=box, style="filled", fillcolor="{_INPUT_FILL}", penwidth=1.5'
        else:
            style = f'fillcolor="{_LAYER_FILL}"'
        label = _label(e["name"], e["class"], shape, where)
        return f"{indent}{_q(name)} [label={label}, {style}];"

    # the inputs a Sequential keeps to itself come first
    for name, _ in extra_inputs:
        lines.append(node_line(name, "  "))

    # clusters: one per block use (nested uses nest), in order of first appearance
    tree: dict[tuple[str, ...], list[str]] = {}
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {(): []}
    info: dict[tuple[str, ...], dict[str, Any]] = {}
    for layer in analysis.detail.layers:
        e = entries[layer.name]
        path: tuple[str, ...] = ()
        for use in e.get("block_chain") or []:
            child = (*path, use["use"])
            if child not in children:
                children[child] = []
                children[path].append(child)
                info[child] = use
            path = child
        tree.setdefault(path, []).append(layer.name)

    def emit(path: tuple[str, ...], indent: str) -> None:
        if path:
            use = info[path]
            cid = "cluster_" + "__".join(path)
            where = f" (line {use['location'].split(':')[0]})" if use.get("location") else ""
            lines.append(f"{indent}subgraph {_q(cid)} {{")
            label = f"{use['block']} `{use['use']}`{where}"
            lines.append(f"{indent}  label={_q(label)};")
            lines.append(f'{indent}  style="rounded,filled"; fillcolor="{_CLUSTER_FILL}"; '
                         f'color="#8aa4c8"; fontname="Helvetica"; fontsize=10;')
            inner = indent + "  "
        else:
            inner = indent
        for name in tree.get(path, []):
            lines.append(node_line(name, inner))
        for child in children.get(path, []):
            emit(child, inner)
        if path:
            lines.append(f"{indent}}}")

    emit((), "  ")

    for name, _ in outputs:
        oid = f"output:{name}"
        lines.append(f'  {_q(oid)} [label={_q(name)}, shape=oval, style="filled", '
                     f'fillcolor="{_OUTPUT_FILL}", penwidth=1.5];')
    for src, dst, direct in edges:
        attrs = "" if direct else ' [style=dashed, color="#888888"]'
        lines.append(f"  {_q(src)} -> {_q(dst)}{attrs};")
    for name, layer_name in outputs:
        lines.append(f"  {_q(layer_name)} -> {_q(f'output:{name}')};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_dot(compiled: Compiled, plan_dict: dict[str, Any] | None = None) -> str:
    """The Graphviz DOT text of the model of `compiled`.

    Builds the model (its functional twin for a subclassed model); `plan_dict`,
    when given, is the plan of the same spec and saves computing it again.
    Raises `SpecError` (E500) when Keras rejects the model.
    """
    analysis = analyze(compiled)
    return dot_from(analysis, plan_dict if plan_dict is not None else plan_from(analysis))


# -- files ----------------------------------------------------------------------------------------


def render(dot_text: str, out_path: str | os.PathLike[str], fmt: str) -> None:
    """Render DOT text to `out_path` with Graphviz (`fmt`: svg or png), atomically."""
    target = Path(out_path)
    dot = shutil.which("dot")
    if dot is None:
        fallback = target.with_suffix(".dot")
        write_atomic(fallback, dot_text)
        raise GraphvizMissing(
            f"Graphviz is not installed: wrote {fallback} instead; install it with "
            f"`apt-get install graphviz` (or `brew install graphviz`) to get SVG/PNG")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([dot, f"-T{fmt}", "-o", tmp], input=dot_text.encode("utf-8"),
                              capture_output=True, check=False)
        if proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip()
            raise GraphvizError(f"Graphviz failed to render {target}: {message}")
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_graph(compiled: Compiled, out_path: str | os.PathLike[str]) -> list[str]:
    """Write the model graph to `out_path` (`.dot`, `.svg` or `.png`); the paths written.

    SVG and PNG need Graphviz: without it, the DOT text is written beside the
    requested file (`out.svg` -> `out.dot`) and `GraphvizMissing` is raised.
    """
    target = Path(out_path)
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot write a graph as `{target.name}`: use .dot, .svg or .png")
    text = to_dot(compiled)
    fmt = FORMATS[suffix]
    if fmt is None:
        write_atomic(target, text)
    else:
        render(text, target, fmt)
    return [str(target)]
