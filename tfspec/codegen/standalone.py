"""`tfspec compile --standalone -o DIR`: a program with its own copy of the runtime.

The program imports `tfspec_runtime` (the modules of `tfspec.runtime` it uses, and the
ones those import, copied beside it with their data files) instead of
`tfspec.runtime`, so the job runs on a machine that has TensorFlow but not tfspec.
The runtime's modules import each other relatively, which is what lets them live
under another package name.
"""

from __future__ import annotations

import ast
import shutil
import tempfile
from pathlib import Path

from ..lang.files import write_atomic
from .program import VENDORED_RUNTIME, Compiled

RUNTIME_DIR = Path(__file__).resolve().parents[1] / "runtime"
# what a copy leaves out: caches, and Node.js packages that `npm ci` installs again
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules")


def program_name(spec_file: str) -> str:
    """`examples/digits_cnn.tfspec` (or `.tfspec.json`) -> `digits_cnn.py`."""
    name = Path(spec_file).name
    for suffix in (".json", ".tfspec"):
        name = name.removesuffix(suffix)
    return f"{name}.py"


def runtime_closure(modules: list[str]) -> list[str]:
    """`modules` and every runtime module they import (relative imports), sorted."""
    found: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        tree = ast.parse((RUNTIME_DIR / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    todo.append(node.module.split(".")[0])
                else:  # `from . import data, seeds`
                    todo.extend(a.name for a in node.names)
    return sorted(m for m in found if (RUNTIME_DIR / f"{m}.py").is_file())


def write_standalone(compiled: Compiled, out_dir: str | Path) -> list[Path]:
    """Write the program and its copy of the runtime into `out_dir`; the paths written.

    The copy is built in a scratch folder and renamed into place, replacing an older
    copy only once the new one is complete.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".tfspec_runtime-", dir=out))
    scratch.chmod(0o755)  # mkdtemp's folders are private; the copy is a plain package
    try:
        shutil.copy2(RUNTIME_DIR / "__init__.py", scratch / "__init__.py")
        for module in runtime_closure(compiled.runtime_modules):
            shutil.copy2(RUNTIME_DIR / f"{module}.py", scratch / f"{module}.py")
        for data in sorted(p for p in RUNTIME_DIR.iterdir() if p.is_dir()):
            if data.name != "__pycache__":  # package data: the TF.js script, ...
                shutil.copytree(data, scratch / data.name, ignore=_SKIP)
        target = out / VENDORED_RUNTIME
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=".tfspec_runtime-old-", dir=out))
            target.rename(old / VENDORED_RUNTIME)
            scratch.rename(target)
            shutil.rmtree(old)
        else:
            scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    program = out / program_name(compiled.spec_file)
    write_atomic(program, compiled.source)
    return [program, target]
