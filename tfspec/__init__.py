"""tfspec: a declarative model-spec compiler for TensorFlow 2.

The public API: check, format and serve specs, and `load` one to build, feed, fit and
export it from Python (docs/python.md). Checking a spec never imports TensorFlow.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .lang.diagnostics import Diagnostic, Diagnostics, Span, SpecError, TfspecError
from .lang.formatter import format_spec
from .lang.validate import Result, parse_override, validate_file, validate_text
from .version import __version__

if TYPE_CHECKING:  # editors and type checkers see them; importing tfspec stays light
    from .api import Graph, Plan, Run, Spec, load, open_run

__all__ = [
    "Diagnostic",
    "Diagnostics",
    "Graph",
    "Plan",
    "Result",
    "Run",
    "Span",
    "Spec",
    "SpecError",
    "TfspecError",
    "format_spec",
    "load",
    "load_ipython_extension",
    "open_run",
    "parse_override",
    "serve",
    "validate_file",
    "validate_text",
    "__version__",
]


def serve(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
    """Serve the SavedModel export at `path` over TF Serving's REST API until Ctrl-C:
    `tfspec.serving.server.serve`, which documents the options (host, port, name, ...).

    NumPy and TensorFlow are imported when it is called: importing tfspec stays free
    of them.
    """
    from .serving.server import serve as serve_export

    serve_export(path, *args, **kwargs)


# The Python API (tfspec/api/), imported on first use: `import tfspec` stays the light
# checker's import, and `tfspec.load` imports no TensorFlow until a model is built.
_API = ("Graph", "Plan", "Run", "Spec", "load", "open_run")


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'tfspec' has no attribute {name!r}")


def __dir__() -> list[str]:  # completion in notebooks and shells lists the lazy names too
    return sorted(set(globals()) | set(_API))


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tfspec`: the `%%tfspec` cell magic (docs/python.md). IPython is
    imported only now."""
    from .api.magic import load_ipython_extension as load_extension

    load_extension(ipython)
