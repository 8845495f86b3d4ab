"""Locate the data files tfspec ships: the JSON Schema and Keras catalog, the grammars.

In a source checkout they live at the repository root (`spec/`, `grammars/`); an
installed wheel force-includes them inside the package (`tfspec/spec/`,
`tfspec/grammars/`). Every stage finds them through `resource_path` so neither
layout is hard-coded anywhere else. Standard library only: the checker imports this.
"""

from __future__ import annotations

from pathlib import Path

# resources.py sits in tfspec/lang/, so this is `Path(tfspec.__file__).parent` without
# importing the package's __init__ (which may pull in more than we need).
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def resource_path(kind: str, *parts: str) -> Path:
    """Return the path of `kind/parts...`, e.g. `resource_path("grammars", "tfspec.lark")`.

    Looks inside the installed package first, then at the repository root. The
    path is returned even when the file does not exist, so callers can report it.
    """
    inside = _PACKAGE_DIR / kind
    base = inside if inside.is_dir() else _PACKAGE_DIR.parent / kind
    return base.joinpath(*parts)


def data_path(*parts: str) -> Path:
    """Return the path of a file under `spec/`, e.g. `data_path("catalog", "layers.json")`."""
    return resource_path("spec", *parts)
