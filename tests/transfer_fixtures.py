"""Examples that load another example's export, for the tests that build every example.

`examples/iris_finetune.tfspec` loads `runs/iris/model.keras`, which
`examples/iris_mlp.tfspec` exports when it is run; the repository ships no `runs/`.
Tests that build, plan or dry-run every example take such specs from a copy of
`examples/` in which iris_mlp.tfspec has really been run: made once per process.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tfspec.lang.transfer import model_files
from tfspec.lang.validate import validate_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PRODUCERS = ["iris_mlp.tfspec"]  # the examples whose exports other examples load

_copy: Path | None = None


def loads_models(spec: str | Path) -> bool:
    """Whether a spec's model loads files (`load_model(…)`, `TFSMLayer(…)`)."""
    ir = validate_file(spec).ir or {}
    return bool(model_files(ir, ir.get("params") or {}))


def examples_with_exports(factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/ (without runs/ and invalid/) after running PRODUCERS in it."""
    global _copy
    if _copy is None:
        from tfspec.jobs.runner import run

        copy = factory.mktemp("exported") / "examples"
        shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("runs", "invalid"))
        for name in PRODUCERS:
            run(str(copy / name))  # trains and writes its exports (a few seconds)
        _copy = copy
    return _copy


def buildable(spec: str | Path, factory: pytest.TempPathFactory) -> str | Path:
    """`spec`, or its twin in the copy when its model loads another example's export."""
    if not loads_models(spec):
        return spec
    return examples_with_exports(factory) / Path(spec).name
