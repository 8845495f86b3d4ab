"""`tfspec.load`: a spec as a Python object that builds, feeds, fits and exports.

Thin by design (docs/architecture.md, rule 4): every method calls what the command
line calls — `jobs.build` for the program and its model, `inspect.dataview` for the
data, `jobs.runner` for `run` and `export`, `inspect.plan` and `inspect.graph` — so
what a script gets from a `Spec` is what `tfspec run` trains. Loading and checking
never import TensorFlow; `build_model`, `datasets`, `fit`, `plan` and `graph` do.
"""

from __future__ import annotations

import hashlib
import html
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..codegen.program import API, Compiled, compile_result
from ..lang.diagnostics import Diagnostics, SpecError, render_html, render_text
from ..lang.validate import Result, is_json, validate_file, validate_text
from . import display
from .needs import require_tensorflow
from .run import Run

if TYPE_CHECKING:  # only for the annotations: importing tfspec never imports Keras
    import keras
    import tensorflow as tf


def load(spec: str | os.PathLike[str], set: Mapping[str, Any] | None = None,
         allow_modules: Iterable[str] = (), *,
         filename: str | None = None) -> Spec:
    """Read and check a spec: a path (`.tfspec` or `.tfspec.json`), or its text.

    `spec`: a path, or a string holding a line break (the spec's text). `set`: param
    values, as `tfspec run --set` gives them (checked against each param's type).
    `allow_modules`: modules a `generator("module:function")` source may import.
    `filename`: the name a text is reported under (its folder is where its relative
    paths start; default `<spec>`, in the current directory; `.json`: JSON syntax).

    Raises `SpecError` with the located diagnostics `tfspec validate` prints. Imports
    no TensorFlow.
    """
    overrides = dict(set or {})
    allowed = tuple(allow_modules)
    if isinstance(spec, os.PathLike) or "\n" not in spec:
        result = validate_file(spec, overrides, allowed)
        path: Path | None = Path(spec)
    else:
        result = validate_text(spec, filename or "<spec>", overrides, allowed)
        path = None
    if not result.ok:
        raise SpecError(result.diagnostics, result.source)
    return Spec(result, path, allowed)


class Spec:
    """A checked spec. Build its model, its data and its callbacks to use in your own
    code, or `fit` it as `tfspec run` does (`tfspec.load` makes one)."""

    def __init__(self, result: Result, path: Path | None, allow_modules: tuple[str, ...]):
        self._result = result
        self._path = path  # None: a text, written to a file only while `fit` runs
        self.allow_modules = allow_modules
        self._program: dict[str, Any] | None = None

    # -- what the spec says (no TensorFlow) -------------------------------------------

    @property
    def file(self) -> str:
        """The spec's file, or the name its text is reported under."""
        return self._result.file

    @property
    def source(self) -> str:
        """The spec's text."""
        return self._result.source

    @property
    def ir(self) -> dict[str, Any]:
        """The spec as plain JSON values (the IR both syntaxes read to)."""
        return self._result.ir or {}

    @property
    def name(self) -> str:
        """The spec's `name`, else its model's: the runs' folder (`runs/<name>/`)."""
        return str(self.ir.get("name") or (self.ir.get("model") or {}).get("name") or "spec")

    @property
    def params(self) -> dict[str, Any]:
        """Each param's value, with the `set` values given to `load`."""
        return {**(self.ir.get("params") or {}), **self._result.overrides}

    @property
    def diagnostics(self) -> Diagnostics:
        """What checking found: warnings only (an error makes `load` raise)."""
        return self._result.diagnostics

    @cached_property
    def compiled(self) -> Compiled:
        """The generated program with its line table (`tfspec compile`'s)."""
        return compile_result(self._result)

    def program(self) -> str:
        """The compiled program's source: what `tfspec compile` prints and `fit` runs."""
        return self.compiled.source

    def with_params(self, **params: Any) -> Spec:
        """The same spec with these param values (checked again, as `load`'s `set`)."""
        overrides = {**self._result.overrides, **params}
        if self._path is not None:
            return load(self._path, overrides, self.allow_modules)
        return load(self.source, overrides, self.allow_modules, filename=self.file)

    # -- the program's parts (TensorFlow) ---------------------------------------------

    def namespace(self) -> dict[str, Any]:
        """The program, executed once (`jobs.build.load_program`): its namespace."""
        from ..jobs.build import load_program

        if self._program is None:
            require_tensorflow("running the program")
            self._program = load_program(self.compiled)
        return self._program

    def build_model(self) -> keras.Model:
        """A new Keras model of the spec: the program's `build_model()`, which `fit`
        trains (not compiled; its preprocessing not adapted: see `datasets`)."""
        from ..jobs.build import build_model

        return build_model(self.compiled, self.namespace())

    def datasets(self, model: keras.Model | None = None) -> dict[str, tf.data.Dataset]:
        """The program's batched `tf.data` pipelines by split (`train`, `validation`,
        `test`, those the spec has). With `model`, the data is first checked against it
        and its layers that learn from data (`Normalization`, …) are adapted on the
        training split, as the program does before training."""
        from ..inspect import dataview

        if model is None:
            return dataview.datasets(self.compiled, self.namespace())
        return dataview.adapted_datasets(self.compiled, self.namespace(), model)

    def compile_model(self, model: keras.Model, batches: int | None = None) -> keras.Model:
        """`model.compile` as `train` says (optimizer, loss, metrics, XLA); `batches`:
        the training batches per epoch, where the program sizes its steps per
        execution by them. Returns `model`."""
        compile_model = self.namespace()[API.compile_model]
        if batches is None:
            compile_model(model)
        else:
            compile_model(model, batches)
        return model

    def callbacks(self) -> list[keras.callbacks.Callback]:
        """A new list of the spec's callbacks (the backup `fit` resumes from included)."""
        return self.namespace()[API.make_callbacks]()

    # -- what the command line does ---------------------------------------------------

    def fit(self, run_dir: str | os.PathLike[str] | None = None, **params: Any) -> Run:
        """Train as `tfspec run` does: a run directory (`runs/<name>/<time>/` beside
        the spec, or `run_dir`) with the spec, program, log, model, metrics, exports
        and their checks; `params`: values for this run (as `--set`). Keras prints its
        own progress. Raises `SpecError` (located) when training or an export fails."""
        from ..inspect.convertcheck import check_exports_apart
        from ..jobs.runner import run

        require_tensorflow("`Spec.fit`")
        overrides = {**self._result.overrides, **params}
        with self._on_disk() as path:
            try:
                directory = run(str(path), overrides, self.allow_modules,
                                run_dir=str(run_dir) if run_dir is not None else None,
                                check_exports=check_exports_apart)
            except SpecError as exc:
                raise self._reported_here(exc, path) from None
        return Run(directory)

    def export(self, run: Run | str | os.PathLike[str]) -> Run:
        """Write the export targets again from a run's model and verify them (`tfspec
        export SPEC --from RUN_DIR`)."""
        from ..jobs.runner import export_run

        require_tensorflow("`Spec.export`")
        directory = run.path if isinstance(run, Run) else Path(run)
        with self._on_disk() as path:
            try:
                export_run(str(path), str(directory), self._result.overrides,
                           self.allow_modules)
            except SpecError as exc:
                raise self._reported_here(exc, path) from None
        return Run(directory)

    def plan(self) -> display.Plan:
        """Build the model (no data) and describe each layer: `tfspec plan`."""
        from ..inspect.plan import plan

        require_tensorflow("`Spec.plan`")
        return display.Plan(plan(self.compiled))

    def graph(self) -> display.Graph:
        """The model graph (`tfspec graph`): DOT text, and SVG with Graphviz."""
        from ..inspect.graph import to_dot

        require_tensorflow("`Spec.graph`")
        return display.Graph(to_dot(self.compiled))

    # -- a text spec on disk, for what takes a file -----------------------------------

    @contextmanager
    def _on_disk(self) -> Iterator[Path]:
        """The spec's file; for a text, a hidden copy in its folder (its relative paths
        start there) for the block: the runner reads a file, as the command line's."""
        if self._path is not None:
            yield self._path
            return
        folder = Path(self.file).resolve().parent
        digest = hashlib.sha256(self.source.encode("utf-8")).hexdigest()[:12]
        path = folder / f".tfspec-{digest}{'.tfspec.json' if is_json(self.file) else '.tfspec'}"
        path.write_text(self.source, encoding="utf-8")
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def _reported_here(self, error: SpecError, path: Path) -> SpecError:
        """`error` at the spec's own name, not at the hidden copy `_on_disk` wrote."""
        if self._path is None:
            for diag in error.diagnostics:
                if diag.file == str(path):
                    diag.file = self.file
            if error.diagnostics.file == str(path):
                error.diagnostics.file = self.file
            first = next((d for d in error.diagnostics if d.is_error), None)
            error.args = (render_text([first], error.source) if first else str(error),)
        return error

    # -- display ----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<tfspec.Spec {self.name!r} from {self.file}>"

    def _repr_html_(self) -> str:
        """The spec at a glance: its name and file, model, params, and any warnings."""
        model = self.ir.get("model") or {}
        sections = ", ".join(k for k in ("data", "model", "train", "distribute", "tune",
                                         "export") if self.ir.get(k))
        out = [f"<div><b>tfspec spec {html.escape(self.name)}</b> "
               f"<code>{html.escape(self.file)}</code><br>"
               f"model <code>{html.escape(str(model.get('name', '')))}</code> "
               f"({html.escape(str(model.get('kind', '')))}); sections: "
               f"{html.escape(sections)}"]
        if self.params:
            out.append(display.table_html(["param", "value"],
                                          [[k, repr(v)] for k, v in self.params.items()]))
        if len(self.diagnostics):
            out.append(render_html(self.diagnostics, self.source))
        else:
            out.append('<div style="color:#2e7d32">checked: no errors, no warnings</div>')
        return "".join(out) + "</div>"
