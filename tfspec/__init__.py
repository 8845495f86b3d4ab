"""tfspec: a declarative model-spec compiler for TensorFlow 2.

The public API. Checking a spec never imports TensorFlow.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .diagnostics import Diagnostic, Diagnostics, Span, SpecError  # noqa: E402
from .formatter import format_spec  # noqa: E402
from .validate import Result, parse_override, validate_file, validate_text  # noqa: E402

__all__ = [
    "Diagnostic",
    "Diagnostics",
    "Result",
    "Span",
    "SpecError",
    "format_spec",
    "parse_override",
    "serve",
    "validate_file",
    "validate_text",
    "__version__",
]


def __getattr__(name: str) -> object:
    # `serve` (the module tfspec.serve, callable as its serve() function) is imported
    # on first use only: importing tfspec must stay free of NumPy and TensorFlow
    if name == "serve":
        import importlib

        return importlib.import_module(".serve", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
