"""Python text that every generator writes: names, string literals, calls, scopes.

The model, data, train and export generators all build on these; none of them
imports another generator for them.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass
from pathlib import Path

from .writer import INDENT

# The runtime's modules, which a program imports by name (`from tfspec.runtime import data`),
# read from the folder: code generation never imports the runtime (nor TensorFlow).
RUNTIME_MODULES = frozenset(
    p.stem for p in (Path(__file__).resolve().parents[1] / "runtime").glob("*.py")
    if p.stem != "__init__")
# Names the program defines or Keras code uses: a spec name never becomes one of them.
RESERVED = {"keras", "build_model", "inputs", "self", "name", "model", "config",
            *RUNTIME_MODULES}


@dataclass
class Scope:
    """What a bare name means where a value is written."""

    values: dict[str, str]  # spec name -> Python expression (block params)


def identifier(name: str, taken: set[str] | None = None) -> str:
    """A Python identifier for a spec name that cannot clash with keywords or our names."""
    out = re.sub(r"\W", "_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    if keyword.iskeyword(out) or out in RESERVED or (taken and out in taken):
        out += "_"
    return out


def py_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def call_text(head: str, args: list[str], budget: int) -> str:
    """`head(a, b)` on one line when it fits in `budget`, else one argument per line."""
    one = f"{head}({', '.join(args)})"
    if "\n" not in one and (len(one) <= budget or not args):
        return one
    body = "".join(INDENT + a.replace("\n", "\n" + INDENT) + ",\n" for a in args)
    return f"{head}(\n{body})"


def fresh_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`… : the first not in `taken`, which gets it."""
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate
