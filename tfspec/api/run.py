"""`tfspec.open_run`: a run directory read back — its history, metrics, exports and
their checks — from the files `tfspec run` wrote there (docs/run.md).

Reading is JSON only; `load_model`, `verify` and the summary import TensorFlow.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..lang.diagnostics import TfspecError
from . import display
from .needs import require_tensorflow

if TYPE_CHECKING:
    import keras


def open_run(path: str | os.PathLike[str]) -> Run:
    """The run directory at `path` (one that `tfspec run` or `Spec.fit` wrote)."""
    directory = Path(path)
    if not (directory / "spec.tfspec").is_file():
        raise TfspecError(f"{directory} is not a run directory (it has no spec.tfspec): "
                          "`tfspec run` writes them in runs/<name>/<time>/")
    return Run(directory)


class Run:
    """A run directory: what a run trained, measured, exported and checked."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def _json(self, name: str) -> Any:
        """A JSON file of the run, or None where it has none (or it is unreadable)."""
        try:
            return json.loads((self.path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json: `history` (per epoch), `test` (the test split's), and
        `resumed_after_epoch` for a run that resumed from its backup."""
        return self._json("metrics.json") or {}

    @property
    def history(self) -> dict[str, list[float]]:
        """Each metric per epoch (`loss`, `val_loss`, …), as Keras's `History` has it."""
        return self.metrics.get("history") or {}

    @property
    def test(self) -> dict[str, float]:
        """The test split's metrics (empty when the spec has no test split)."""
        return self.metrics.get("test") or {}

    @property
    def exports(self) -> list[dict[str, Any]]:
        """exports.json's targets: format, path in the run, the spec's path, written."""
        return (self._json("exports.json") or {}).get("targets", [])

    @property
    def verified(self) -> list[dict[str, Any]]:
        """verify.json: each export's check in its runtime (passed, max_abs_error, …)."""
        return self._json("verify.json") or []

    @property
    def spec_text(self) -> str:
        """The resolved spec the run trained (params with their values)."""
        return (self.path / "spec.tfspec").read_text(encoding="utf-8")

    @property
    def program(self) -> str:
        """The program the run executed."""
        return (self.path / "program.py").read_text(encoding="utf-8")

    def load_model(self) -> keras.Model:
        """The trained Keras model (model.keras)."""
        from ..jobs.build import quiet_tensorflow

        require_tensorflow("`Run.load_model`")
        quiet_tensorflow()
        import keras

        return keras.saving.load_model(self.path / "model.keras")

    def verify(self) -> list[dict[str, Any]]:
        """Check the exports again in their runtimes (`tfspec verify RUN_DIR`)."""
        from ..jobs.runner import verify_run

        require_tensorflow("`Run.verify`")
        return verify_run(str(self.path))

    def summary(self) -> list[str]:
        """The lines `tfspec run` ends with: test metrics, each export's check, where."""
        from ..jobs.runner import summary

        return summary(self.path)

    def __repr__(self) -> str:
        return f"<tfspec.Run {self.path}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("\n".join(self.summary()))

    def _repr_html_(self) -> str:
        """The run's summary (test metrics, exports, directory) and its last epoch."""
        out = [f"<div><b>tfspec run</b> <code>{html.escape(str(self.path))}</code>"]
        history = self.history
        if history:
            epochs = max(len(v) for v in history.values())
            last = [[k, f"{v[-1]:.4g}" if isinstance(v[-1], float) else str(v[-1])]
                    for k, v in history.items() if v]
            out.append(f"<div>{epochs} epochs; the last:</div>"
                       + display.table_html(["metric", "value"], last, frozenset({1})))
        out.append("<pre>" + html.escape("\n".join(self.summary())) + "</pre>")
        return "".join(out) + "</div>"
