"""How the API's objects show in a notebook: `Plan` (the plan's table, params and
FLOPs), `Graph` (inline SVG), and `table_html`, which `Spec` and `Run` use too.

The text is what the command line prints (`inspect.plan.render_text`, the run's
summary); HTML only lays it out. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import html
import os
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

_TABLE = 'style="border-collapse:collapse;font-family:monospace;font-size:90%"'


def table_html(header: list[str], rows: list[list[str]], right: frozenset[int] = frozenset()
          ) -> str:
    """An HTML table; the columns in `right` aligned right (numbers)."""
    def cell(tag: str, i: int, text: str) -> str:
        align = "right" if i in right else "left"
        return f'<{tag} style="text-align:{align};padding:1px 8px">{html.escape(text)}</{tag}>'

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table {_TABLE}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Plan:
    """The plan of a spec's model (`tfspec plan`): per layer its output shape, params,
    FLOPs and spec line; `to_json()` is `plan --format json`'s object."""

    def __init__(self, data: dict[str, Any]):
        self._data = data

    def to_json(self) -> dict[str, Any]:
        """The plan as `tfspec plan --format json` prints it."""
        return self._data

    @property
    def layers(self) -> list[dict[str, Any]]:
        """One dict per layer: name, class, output_shape, params, flops, location, …"""
        return self._data["layers"]

    @property
    def totals(self) -> dict[str, Any]:
        """params, trainable_params, non_trainable_params, weight_bytes, flops, …"""
        return self._data["totals"]

    @property
    def params(self) -> int:
        """The model's parameter count (Keras's `count_params()`)."""
        return int(self.totals["params"])

    @property
    def trainable_params(self) -> int:
        return int(self.totals["trainable_params"])

    @property
    def flops(self) -> int:
        """FLOPs per example, estimated (a multiply-add counts 2)."""
        return int(self.totals["flops"])

    @property
    def table(self) -> str:
        """The text `tfspec plan` prints."""
        from ..inspect.plan import render_text

        return render_text(self._data)

    def __str__(self) -> str:
        return self.table

    def __repr__(self) -> str:
        return (f"<tfspec.Plan {self._data['model']!r}: {self.params:,} params, "
                f"~{self.flops:,} FLOPs>")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.table)

    def _repr_html_(self) -> str:
        from ..inspect.plan import shape_text

        rows = [[f"{e['name']} ({e['class']})", shape_text(e["output_shape"]),
                 f"{e['params']:,}", f"{e['flops']:,}" if e["flops_estimated"] else "n/a",
                 e["location"] or ""] for e in self.layers]
        t = self.totals
        title = html.escape(f'Model "{self._data["model"]}" ({self._data["kind"]}, '
                            f'{self._data["keras_class"]})')
        foot = (f"Total params: <b>{t['params']:,}</b> ({html.escape(t['weight_memory'])}) · "
                f"trainable {t['trainable_params']:,} · non-trainable "
                f"{t['non_trainable_params']:,} · FLOPs per example ~{t['flops']:,}")
        table = table_html(["Layer (type)", "Output shape", "Param #", "FLOPs", "Spec"], rows,
                      frozenset({2, 3}))
        return f"<div><b>{title}</b>{table}<div>{foot}</div></div>"


class Graph:
    """The model graph (`tfspec graph`): `dot`, and `svg` rendered by Graphviz."""

    def __init__(self, dot: str):
        self.dot = dot

    @cached_property
    def svg(self) -> str:
        """The graph as SVG; raises `GraphvizMissing` where Graphviz is not installed."""
        from ..inspect.graph import render

        with tempfile.TemporaryDirectory() as scratch:
            target = Path(scratch) / "graph.svg"
            render(self.dot, target, "svg")
            return target.read_text(encoding="utf-8")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the graph as `.svg` or `.dot` (by the suffix); returns the path."""
        target = Path(path)
        target.write_text(self.dot if target.suffix == ".dot" else self.svg, encoding="utf-8")
        return target

    def __repr__(self) -> str:
        return f"<tfspec.Graph: {self.dot.count(' -> ')} edges>"

    def _repr_svg_(self) -> str | None:
        from ..inspect.graph import GraphvizMissing

        try:
            return self.svg
        except GraphvizMissing:  # the text form (its repr) is shown instead
            return None
