"""The code generator's front door: a checked spec -> a whole Keras program (`Compiled`).

One backend (docs/architecture.md, rule 4): what `tfspec compile` prints is what
every later command runs. `write_program` puts the parts together: the model
(`model.Generator`), the data (`data.DataGenerator`), training and exports
(`train.TrainGenerator`, which uses `export.ExportGenerator`), then the table that
maps each generated line to its spec line. This is the one module that imports every
generator.

Importing this module never imports TensorFlow: generating code is text work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..lang.diagnostics import Span, SpecError
from ..lang.ir import escape, statement_kind
from ..lang.located import Positions
from ..lang.tunespace import tuning
from ..lang.validate import Result, validate_file, validate_text
from ..version import __version__
from .data import DataGenerator
from .model import Generator, LayerInfo
from .pytext import py_string
from .train import TrainGenerator
from .tune import TuneGenerator
from .writer import INDENT, CodeWriter

# the package name of the runtime's copy that `compile --standalone` puts beside a program
VENDORED_RUNTIME = "tfspec_runtime"

# The spec sections a program needs to define a name of its interface (below).
_MODEL, _DATA, _TRAIN = ("model",), ("model", "data"), ("model", "data", "train")


@dataclass(frozen=True)
class Export:
    """One name of the program's interface: what it is, and which programs define it.

    Declared as an attribute of `API`, whose attribute reads as the name itself
    (`API.main == "main"`): the name is written once, and a use of an undeclared one
    fails at once (an AttributeError) rather than at the lookup in a program.
    """

    meaning: str
    needs: tuple[str, ...]  # the spec sections (all of them) a program defines it with
    always: bool = True  # False: only some of those programs; `meaning` says which
    name: str = ""  # set by `__set_name__`: the attribute's name

    def __set_name__(self, owner: type, name: str) -> None:
        object.__setattr__(self, "name", name)

    def __get__(self, obj: object, owner: type | None = None) -> str:
        return self.name


class API:
    """What tfspec looks up in a program it runs (`namespace[API.main]`), as Jinja2's
    `runtime.exported` lists what a compiled template may use; `PROGRAM_API` is the
    table. Besides these, each param is a constant (`Generator.consts` names them;
    `inspect/plan.py` reads back their values)."""

    build_model = Export("build_model() -> a new Keras model of the spec", _MODEL)
    load_splits = Export("load_splits() -> the data's splits by name, not batched", _DATA)
    pipeline = Export("pipeline(split, name) -> one split batched (name 'adapt': as it is)",
                      _DATA)
    make_datasets = Export("make_datasets(splits=None) -> the batched pipelines by name",
                           _DATA)
    check_data = Export("check_data(model, dataset, losses): ValueError where the data "
                        "cannot feed the model", _DATA)
    LOSSES = Export("each output's loss name, for check_data", _DATA)
    adapt = Export("adapt(model, train): fit the layers that learn from data; only where "
                   "the model has some", _DATA, always=False)
    compile_model = Export("compile_model(model[, batches]): `model.compile` as `train` says",
                           _TRAIN)
    make_callbacks = Export("make_callbacks() -> the spec's callbacks, a new list each call",
                            _TRAIN)
    main = Export("main(run_dir, verbose=<the spec's>): train, save the run, export, verify",
                  _TRAIN)
    export_all = Export("export_all(model, run_dir, datasets): write the export targets",
                        (*_TRAIN, "export"))
    verify_exports = Export("verify_exports(run_dir) -> each export checked in its runtime",
                            (*_TRAIN, "export"))
    search = Export("search(directory, max_trials=None, verbose=0): the tune section's "
                    "search", (*_TRAIN, "tune"))


# The program's interface, name -> its declaration (tests/test_program.py checks the
# golden programs against it)
PROGRAM_API: dict[str, Export] = {
    e.name: e for e in vars(API).values() if isinstance(e, Export)}


@dataclass
class Compiled:
    """A generated program and what is needed to relate it to its spec."""

    spec_file: str
    spec_source: str
    ir: dict[str, Any]
    positions: Positions
    source: str
    origins: dict[int, Span]  # generated line -> spec span
    layers: list[LayerInfo] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)  # the `--set` values used
    runtime_modules: list[str] = field(default_factory=list)  # what it imports of the runtime
    # statement pointer -> (generated function, local variable of its tensor): Generator.bindings
    bindings: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        """The name generated code is compiled under (tracebacks show it)."""
        return f"<tfspec: {self.spec_file}>"

    def spec_span(self, line: int | None) -> Span | None:
        """The spec span of a generated line: that of the nearest mapped line at or
        above it, for a statement written over several lines is mapped at its first
        (and a line the spec asked for nothing on belongs to the code above it). None
        for no line, or one with no mapped line at or above it."""
        for candidate in range(line or 0, 0, -1):
            if candidate in self.origins:
                return self.origins[candidate]
        return None


def compile_result(result: Result, program_path: str | Path | None = None,
                   standalone: bool = False) -> Compiled:
    """Generate the program of a checked spec; raises SpecError if it has errors.

    `program_path`: where the program will be written (by default beside the spec),
    so that it finds the spec's data relative to itself. `standalone`: the program
    imports the runtime's copy beside it (`codegen.standalone`), not tfspec's.
    """
    if not result.ok or result.ir is None:
        raise SpecError(result.diagnostics, result.source)
    gen = Generator(result)
    if standalone:
        gen.runtime = VENDORED_RUNTIME
    if program_path is not None:
        spec_dir = Path(result.file).resolve().parent
        gen.spec_dir = Path(os.path.relpath(spec_dir, Path(program_path).resolve().parent))
    source = write_program(gen)
    return Compiled(result.file, result.source, result.ir, result.positions, source,
                    gen.w.origins, gen.layers, dict(result.overrides), gen.runtime_modules,
                    gen.bindings)


def compile_text(text: str, filename: str = "<spec>",
                 overrides: dict[str, Any] | None = None,
                 allow_modules: tuple[str, ...] = ()) -> Compiled:
    return compile_result(validate_text(text, filename, overrides, allow_modules))


def compile_file(path: str | Path, overrides: dict[str, Any] | None = None,
                 allow_modules: tuple[str, ...] = (),
                 program_path: str | Path | None = None, standalone: bool = False) -> Compiled:
    return compile_result(validate_file(path, overrides, allow_modules), program_path,
                          standalone)


def write_program(gen: Generator) -> str:
    """The whole program of a spec: a header and its imports, the constants, the model
    (from `gen`), the data and training parts, and the line table."""
    # The model and data parts are written first, into their own writers: what
    # they use decides the imports at the top.
    body = gen.w
    model = gen.ir.get("model")
    if model:
        getattr(gen, f"model_{model['kind']}")(model, "/model")
    imports = set()
    if isinstance(gen.ir.get("data"), dict) and model:
        data = DataGenerator(gen, gen.ir["data"])
        data.emit(body)
        imports = data.imports
        if isinstance(gen.ir.get("train"), dict):
            distribute = gen.ir.get("distribute")
            train = TrainGenerator(gen, gen.ir["train"],
                                   distribute if isinstance(distribute, dict) else {})
            tune = tuning(gen.ir)  # `tune { … }`: a KerasTuner HyperModel too
            tuner = TuneGenerator(gen, train, tune) if tune else None
            train.emit(body, tuner.emit if tuner else None)
            imports |= train.imports | (tuner.imports if tuner else set())
    gen.w = w = CodeWriter()
    title = gen.ir.get("name") or (model or {}).get("name") or "spec"
    w.line('"""' + f"{title}: compiled from {gen.result.file} by tfspec {__version__}.")
    w.line()
    w.line("Edit the spec, not this file: `tfspec compile` writes it again.")
    w.line('"""')
    w.blank()
    std = [m for m in ("concurrent.futures", "csv", "functools", "json", "os", "pathlib",
                       "shutil", "subprocess", "sys", "tempfile", "types")
           if m in imports or (m == "pathlib" and imports)]
    if gen.spec_files and not imports:  # a model that loads files, and no data
        std = ["pathlib"]
    for m in std:
        w.line(f"import {m}")
    if std:
        w.blank()
    w.line("import keras")
    if "numpy" in imports:
        w.line("import numpy as np")
    if "tensorflow" in imports:
        w.line("import tensorflow as tf")
    if "tensorflow_datasets" in imports:
        w.line("import tensorflow_datasets as tfds")
    runtime = gen.runtime_modules = sorted(
        m.split(":", 1)[1] for m in imports | gen.imports if m.startswith("runtime:"))
    if runtime:
        w.blank()  # isort: the runtime is first-party, a section of its own
        names = ", ".join(runtime)
        if len(f"from {gen.runtime} import {names}") > w.width:  # isort's form, a name a line
            names = "(\n" + "".join(f"{INDENT}{m},\n" for m in runtime) + ")"
        w.line(f"from {gen.runtime} import {names}")
    local = sorted(m.split(":", 1)[1] for m in imports if m.startswith("module:"))
    if local:
        w.blank()
        for m in local:
            w.line(f"import {m}  # allowed with --allow-module {m}")
    if imports or gen.spec_files:
        w.blank(1)
        runs = isinstance(gen.ir.get("data"), dict) and model and isinstance(
            gen.ir.get("train"), dict)  # it has a `main`, which a user may run by hand
        w.line("# Paths in the spec are relative to the spec's folder" +
               (" (run by hand: --spec-dir DIR)." if runs else "."))
        relative = gen.spec_dir.as_posix()
        w.line("SPEC_DIR = pathlib.Path(__file__).resolve().parent" +
               (f" / {py_string(relative)}" if relative != "." else ""))
    if imports and gen.data_by_epoch():
        w.blank(1)
        w.line("# The epoch being trained: the training data's order and augmentation follow it.")
        w.line("EPOCH = seeds.Epoch()")
    if gen.consts:
        w.blank(1)  # isort style: one blank line between imports and constants
        w.line("# Params: `tfspec run --set NAME=VALUE` overrides them.")
        for name, const in gen.consts.items():
            w.line(f"{const} = {gen.literal(gen.params[name])}",
                   gen.span(f"/params/{escape(name)}"))
    if imports:
        w.blank(1)
        w.line("# The model's inputs (shape per example, dtype) and outputs, by name.")
        inputs = [s for s in (model or {}).get("body", []) if statement_kind(s)[0] == "input"]
        items = []
        for s in inputs:
            shape = gen.shape_text(s.get("shape", []))
            items.append(f"{py_string(s['input'])}: ({shape}, "
                         f"{py_string(s.get('dtype', 'float32'))})")
        w.line("INPUTS = {" + ", ".join(items) + "}")
        w.line("OUTPUTS = [" + ", ".join(py_string(n) for n in gen.model_names("outputs"))
               + "]")
    losses = gen.losses()
    if imports:
        w.blank(1)
        w.line("# The loss of each output, for checking the data before training.")
        w.line(f"LOSSES = {losses or '{}'}",
               gen.span("/train/loss") if losses else None)
    w.extend(body)
    _line_table(gen)
    return w.text()


def _line_table(gen: Generator) -> None:
    """The generated-line -> spec-line table, for reporting errors at the spec."""
    w = gen.w
    w.blank(2)
    w.line("# Where each line of this program comes from in the spec (generated line:")
    w.line("# spec line:column), so that errors can point at the spec.")
    w.line(f"TFSPEC_SPEC = {py_string(gen.result.file)}")
    pairs = [f"{g}:{s.line}:{s.col}" for g, s in sorted(gen.w.origins.items())]
    w.line("TFSPEC_LINES = (")
    with w.indented():
        chunks = [""]  # as many pairs a line as fit between its quotes
        for pair in pairs:
            if chunks[-1] and len(chunks[-1]) + len(pair) + 4 > w.width:
                chunks.append("")
            chunks[-1] += f" {pair}" if chunks[-1] else pair
        for i, chunk in enumerate(chunks):
            w.line(py_string(chunk + (" " if i < len(chunks) - 1 else "")))
    w.line(")")
