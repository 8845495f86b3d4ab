"""tfspec: a declarative model-spec compiler for TensorFlow 2.

The public API. Checking a spec never imports TensorFlow.
"""

from __future__ import annotations

import os
from typing import Any

from .lang.diagnostics import Diagnostic, Diagnostics, Span, SpecError, TfspecError
from .lang.formatter import format_spec
from .lang.validate import Result, parse_override, validate_file, validate_text
from .version import __version__

__all__ = [
    "Diagnostic",
    "Diagnostics",
    "Result",
    "Span",
    "SpecError",
    "TfspecError",
    "format_spec",
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
