"""The package is laid out by pipeline stage, and imports point down the pipeline only.

Read from the source (an AST walk, standard library only: nothing of tfspec is
imported), so every import statement counts: at the top of a module, inside a
function, under `if TYPE_CHECKING:`. docs/architecture.md explains the stages.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tfspec"

# The stages from the top down: a row is a layer, a name in it a package (with all of
# its modules) or a module. A module imports from its own package and from the rows
# below its own; never from a row above, nor from another package of its own row.
# Modules directly in tfspec/ that are not named here (`__init__`, `__main__`, `cli`)
# are the package's face, the top row.
LAYERS: list[tuple[str, ...]] = [
    ("tfspec",),  # the public API, `python -m tfspec`, the command line (cli.py)
    # the language server (shapes come from an inspect worker process); the Python API
    # and its IPython extension (`tfspec.load`, calling what the command line calls)
    ("tfspec.lsp", "tfspec.api"),
    ("tfspec.serving", "tfspec.inspect"),  # serve exports; look at built models
    ("tfspec.jobs",),  # load and run compiled programs: run, export, verify, launch
    ("tfspec.codegen",),  # a checked spec -> the program's text
    ("tfspec.lang",),  # read, check and format specs; never imports TensorFlow
    ("tfspec.version",),  # the version, which every stage may name
]
# What generated programs import: a leaf beside the stages, importing nothing of
# tfspec outside itself (a program vendored with `--standalone` takes it along).
RUNTIME = "tfspec.runtime"
# Checking never imports these (docs/architecture.md, rule 3), nor code generation (text work).
HEAVY = ("tensorflow", "keras", "numpy", "tensorflow_datasets", RUNTIME)
NO_HEAVY = ("tfspec.lang", "tfspec.codegen", "tfspec.lsp")


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "node_modules" in path.parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported(module: str, path: Path) -> list[tuple[str, int]]:
    """(dotted name, line) of everything `module` imports, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from pkg import name`: the package, and `pkg.name` when that is a module
            out += [(base, node.lineno)] + [(f"{base}.{a.name}", node.lineno)
                                            for a in node.names]
    return out


def edges() -> dict[str, dict[str, int]]:
    """module -> {tfspec module it imports: line}, as the interpreter would resolve it."""
    mods = modules()
    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for m, path in mods.items():
        for name, line in imported(m, path):
            while name and name not in mods:  # `pkg.module.attr` -> `pkg.module`
                name = name.rpartition(".")[0]
            # a package's __init__ naming its own modules is not an edge back up
            own = path.name == "__init__.py" and name.startswith(m + ".")
            if name and name != m and not own:
                graph[m].setdefault(name, line)
    return graph


def unit(module: str) -> str:
    """The name in LAYERS (or RUNTIME) that `module` belongs to."""
    named = {n for row in LAYERS for n in row} | {RUNTIME}
    parts = module.split(".")
    for i in range(len(parts), 1, -1):
        if ".".join(parts[:i]) in named:
            return ".".join(parts[:i])
    if len(parts) > 2:  # a package no row names
        raise AssertionError(f"{'.'.join(parts[:2])} is in no row of LAYERS: place it there")
    return "tfspec"


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle (its modules, the first repeated at the end) in each group of modules
    that import each other (a strongly connected component, by Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        for n in graph[m]:
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            group = {stack.pop()}
            while m not in group:
                group.add(stack.pop())
            if len(group) > 1:
                groups.append(group)

    for m in sorted(graph):
        if m not in index:
            visit(m)

    def circle(group: set[str]) -> list[str]:
        """A path from the group's first module back to it, inside the group."""
        start = min(group)
        path, seen = [start], {start}

        def walk(m: str) -> bool:
            for n in sorted(graph[m]):
                if n == start:
                    return True
                if n in group and n not in seen:
                    seen.add(n)
                    path.append(n)
                    if walk(n):
                        return True
                    path.pop()
            return False

        walk(start)
        return path + [start]

    return [circle(g) for g in groups]


def test_no_import_circle():
    graph = edges()
    found = [" -> ".join([f"{m} (line {graph[m][c[i + 1]]})" for i, m in enumerate(c[:-1])]
                         + [c[-1]]) for c in circles(graph)]
    assert not found, ("import circles (each module with the line of its import of the "
                       "next):\n" + "\n".join(found))


def test_every_stage_exists():
    missing = [n for row in LAYERS for n in row
               if not (PACKAGE.parent / Path(*n.split("."))).is_dir()
               and not (PACKAGE.parent / Path(*n.split("."))).with_suffix(".py").is_file()]
    assert not missing, f"named in LAYERS but not in the package: {missing}"


def test_imports_point_down_the_stages():
    row = {n: i for i, names in enumerate(LAYERS) for n in names}
    wrong = []
    for m, targets in sorted(edges().items()):
        a = unit(m)
        for t, line in sorted(targets.items()):
            b = unit(t)
            if a == b or a == RUNTIME or b == RUNTIME:
                continue  # the runtime's own rule is the next test's
            if row[b] <= row[a]:
                where = "above" if row[b] < row[a] else "beside"
                wrong.append(f"{m} (line {line}) imports {t}, {where} it ({a} -> {b})")
    assert not wrong, "imports against the stages:\n" + "\n".join(wrong)


def test_runtime_imports_nothing_of_tfspec_outside_itself():
    graph = edges()
    inside = [m for m in graph if m == RUNTIME or m.startswith(RUNTIME + ".")]
    assert inside, "no tfspec/runtime/ modules found"
    wrong = [f"{m} (line {line}) imports {t}" for m in inside
             for t, line in graph[m].items() if unit(t) != RUNTIME]
    assert not wrong, "tfspec.runtime must stand alone:\n" + "\n".join(wrong)


def test_checking_and_generating_import_no_tensorflow():
    wrong = []
    for m, path in sorted(modules().items()):
        if unit(m) not in NO_HEAVY:
            continue
        for name, line in imported(m, path):
            if any(name == h or name.startswith(h + ".") for h in HEAVY):
                wrong.append(f"{m} (line {line}) imports {name}")
    assert not wrong, "\n".join(wrong)
