"""The compiled program's interface: the names tfspec looks up in it (`PROGRAM_API`),
the spec span of a generated line (`Compiled.spec_span`), and `train.verbose`.

Light: nothing here imports TensorFlow.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tfspec.codegen.program import API, PROGRAM_API, Compiled, compile_file, compile_text
from tfspec.lang.diagnostics import Span
from tfspec.lang.located import Positions

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "compile"
PACKAGE = ROOT / "tfspec"


def defined(source: str) -> set[str]:
    """The names a program defines at its top level (functions, classes, assignments)."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def goldens() -> list[tuple[str, set[str], set[str]]]:
    """(name, the spec's sections, the names its golden program defines) of each golden."""
    out = []
    for golden in sorted(GOLDEN.glob("*.py")):
        ir = compile_file(ROOT / "examples" / f"{golden.stem}.tfspec").ir
        out.append((golden.stem, {k for k, v in ir.items() if v}, defined(golden.read_text())))
    return out


def test_every_golden_program_defines_what_program_api_says_it_must():
    seen: set[str] = set()
    for name, sections, names in goldens():
        for export in PROGRAM_API.values():
            if set(export.needs) <= sections and export.always:
                assert export.name in names, f"{name}.py does not define {export.name}"
            if export.name in names:
                assert set(export.needs) <= sections, (name, export.name)
        seen |= names
    # a name only some programs define is still defined by one of the goldens
    assert set(PROGRAM_API) <= seen, set(PROGRAM_API) - seen


def test_program_api_reads_as_its_names():
    assert API.main == "main" and API.make_datasets == "make_datasets"
    assert all(name == export.name and export.meaning for name, export in PROGRAM_API.items())


def _sources(*folders: str) -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8")))
            for folder in folders for path in sorted((PACKAGE / folder).rglob("*.py"))]


def test_every_declared_name_is_looked_up_through_program_api():
    used = {node.attr for _, tree in _sources("jobs", "inspect", "lsp", "serving", "api")
            for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "API"}
    assert set(PROGRAM_API) <= used, f"declared, never used: {set(PROGRAM_API) - used}"


def test_no_use_site_spells_a_program_name_as_a_string():
    """`namespace["main"]`, `"adapt" in namespace`, `{"export_all", …}`, `.get("LOSSES")`:
    each must name it through `API` (a string elsewhere, a split or folder called
    "adapt" or "search", is another thing)."""
    found = []
    for path, tree in _sources("jobs", "inspect", "api"):
        for node in ast.walk(tree):
            candidates: list[ast.expr] = []
            if isinstance(node, ast.Subscript):
                candidates = [node.slice]
            elif isinstance(node, ast.Compare):
                candidates = [node.left, *node.comparators]
            elif isinstance(node, (ast.Set, ast.Tuple, ast.List)):
                candidates = list(node.elts)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                    node.func.attr == "get"):
                candidates = node.args[:1]
            found += [f"{path.relative_to(ROOT)}:{c.lineno}: {c.value!r}" for c in candidates
                      if isinstance(c, ast.Constant) and c.value in PROGRAM_API]
    assert not found, "\n".join(found)


# -- the spec span of a generated line ---------------------------------------------------------


def test_spec_span_is_the_nearest_mapped_line_at_or_above():
    a, b = Span(1, 1, 1, 5), Span(4, 3, 4, 9)
    compiled = Compiled("m.tfspec", "", {}, Positions(), "", {3: a, 7: b})
    assert [compiled.spec_span(line) for line in (None, 1, 2, 3, 5, 6, 7, 40)] == [
        None, None, None, a, a, a, b, b]


# -- load_model(…): the runtime's `transfer.load_keras_model` -------------------------------


LOADS = """\
tfspec 1
model Head functional {
  input x: float32[4]
  base = load_model("base.keras", output = "dense", trainable = false)(x)
  output y = Dense(2)(base)
}
"""


def test_load_model_calls_the_runtime_and_the_program_defines_no_helper(tmp_path):
    compiled = compile_text(LOADS, "head.tfspec")
    assert compiled.runtime_modules == ["transfer"]
    assert "from tfspec.runtime import transfer\n" in compiled.source
    assert "= transfer.load_keras_model(" in compiled.source
    assert "def load_keras_model" not in compiled.source
    (tmp_path / "head.py").write_text(compiled.source)
    _ruff_clean(tmp_path / "head.py")


def _ruff_clean(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--select",
         "E,F,W,I,B,UP", "--line-length", "100", "--config", "lint.isort.known-first-party="
         "['tfspec']", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_long_runtime_import_is_wrapped_as_isort_wraps_it(tmp_path):
    # load_model, a seeded split, a fit loop, a tune section, an export and the command
    # line of `main`: ten modules
    compiled = compile_text(LONG_IMPORT, "t.tfspec")
    assert len(compiled.runtime_modules) == 10, compiled.runtime_modules
    assert "from tfspec.runtime import (\n    backup,\n" in compiled.source
    (tmp_path / "t.py").write_text(compiled.source)
    _ruff_clean(tmp_path / "t.py")


LONG_IMPORT = """\
tfspec 1
param hidden = 4
data {
  source = synthetic(samples = 8)
  split { validation = 0.5, seed = 1 }
  batch = 4
}
model M sequential {
  input x: float32[4]
  load_model("base.keras")
  Dense(hidden)
}
train {
  optimizer = "adam"
  loss = "mse"
}
tune {
  objective = "val_loss"
  max_trials = 2
  space { hidden = Int(2, 8) }
}
export { keras "runs/t/model.keras" }
"""


# -- train.verbose: the default, which the caller's argument overrides ------------------------


VERBOSE = """\
tfspec 1
data {
  source = synthetic(samples = 8)
  batch = 4
}
model M sequential {
  input x: float32[4]
  Dense(1)
}
train {
  optimizer = "adam"
  loss = "mse"
  verbose = 2
}
distribute { strategy = "multi_worker_mirrored" }
"""


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)


def _verbose_default(function: ast.FunctionDef) -> object:
    args = function.args
    names = [a.arg for a in args.args]
    default = args.defaults[names.index("verbose") - (len(names) - len(args.defaults))]
    return ast.literal_eval(default)


@pytest.mark.parametrize("spec", [VERBOSE, VERBOSE.split("distribute")[0]])
def test_the_specs_verbose_is_the_default_and_the_callers_argument_wins(spec):
    """Regression (issue 23 item 7): a spec's `verbose` was written into the loop call,
    so `main(run_dir, verbose)` could not quiet a multi-worker job's other workers."""
    tree = ast.parse(compile_text(spec, "m.tfspec").source)
    train, main = _function(tree, "train"), _function(tree, "main")
    assert _verbose_default(train) == 2 and _verbose_default(main) == 2
    loops = [c for c in ast.walk(train) if isinstance(c, ast.Call)
             and isinstance(c.func, ast.Attribute) and isinstance(c.func.value, ast.Name)
             and c.func.value.id == "training"]
    assert loops, ast.unparse(train)
    for call in loops:  # the parameter, never the spec's value, reaches the loop
        values = [*call.args, *(k.value for k in call.keywords)]
        assert any(isinstance(v, ast.Name) and v.id == "verbose" for v in values), \
            ast.unparse(call)
        assert not any(k.arg == "verbose" and isinstance(k.value, ast.Constant)
                       for k in call.keywords), ast.unparse(call)


def test_the_runner_leaves_a_specs_verbose_to_the_program():
    from tfspec.jobs.runner import main_verbose

    assert main_verbose(compile_text(VERBOSE, "m.tfspec")) == ()
    quiet = compile_text(VERBOSE.replace("  verbose = 2\n", ""), "m.tfspec")
    assert main_verbose(quiet) in ((1,), (2,))
    assert _verbose_default(_function(ast.parse(quiet.source), "main")) == "auto"


def test_program_api_needs_name_ir_sections():
    assert {s for e in PROGRAM_API.values() for s in e.needs} <= {
        "model", "data", "train", "export", "tune"}
