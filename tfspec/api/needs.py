"""What the API's heavier methods need, said in one line before they start."""

from __future__ import annotations

import importlib.util

from ..lang.diagnostics import TfspecError

# what `pip install "tfspec[tf]"` adds to the light core (cli.TF_STACK's modules)
_TF_STACK = ("tensorflow", "keras")


def require_tensorflow(what: str) -> None:
    """Raise a one-line `TfspecError` where TensorFlow or Keras is not installed: on the
    light core, `tfspec.load` checks and compiles, and `what` needs the TensorFlow stack."""
    for module in _TF_STACK:
        try:  # (a module set to None in sys.modules, Python's way to block it, raises)
            missing = importlib.util.find_spec(module) is None
        except ValueError:
            missing = True
        if missing:
            raise TfspecError(f'{what} needs TensorFlow ({module} is not installed): '
                              'pip install "tfspec[tf]"')
