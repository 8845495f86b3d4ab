"""tfspec from Python: `load` a spec, build its model and data, `fit` it as `tfspec run`
does, read a run back with `open_run`; `magic` is the IPython extension.

The package sits above `jobs` and `inspect` (docs/architecture.md): it calls what the
command line calls. Importing it imports no TensorFlow, nor IPython.
"""

from .display import Graph, Plan
from .run import Run, open_run
from .spec import Spec, load

__all__ = ["Graph", "Plan", "Run", "Spec", "load", "open_run"]
