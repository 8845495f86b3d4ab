"""Generators write what varies, not fixed code : the machinery every program
shares lives in `tfspec.runtime` as real modules, so no string literal under tfspec/
(docstrings aside) may hold more than a few lines of Python source."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tfspec"
MAX_LINES = 3  # `"def f():\n    return 1\n"`-sized snippets are fine; a helper is not


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _is_python(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def python_in_strings(root: Path) -> list[str]:
    """`file:line: N lines` for each string literal holding over MAX_LINES of Python."""
    out = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docs):
                lines = node.value.strip("\n").count("\n") + 1
                if lines > MAX_LINES and _is_python(node.value):
                    out.append(f"{path.relative_to(root.parent)}:{node.lineno}: {lines} lines")
    return out


def test_no_python_source_in_string_literals():
    found = python_in_strings(PACKAGE)
    assert not found, "fixed code belongs in tfspec/runtime/:\n" + "\n".join(found)


def test_the_bound_sees_a_helper_in_a_string(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "gen.py").write_text(
        '"""A generator."""\n\nHELPER = """\ndef f(x):\n    y = x + 1\n    z = y * 2\n'
        '    return z\n"""\nMESSAGE = """not python:\nline two\nline three\nline four\n"""\n')
    assert python_in_strings(package) == ["pkg/gen.py:3: 4 lines"]
