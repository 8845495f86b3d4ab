"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (nbclient and
ipykernel, the test extra), offline, on the shipped Iris data: its plan's total params
are the model's, the run it trains scores above a floor on the test split, and its
broken `%%tfspec` cell shows the diagnostic at the cell's own line, with no traceback.

The kernel is the current interpreter (ipykernel's own `python3` spec names
`sys.executable`), with this checkout first on its path; the notebook runs in a copy
of examples/ so that its runs are written there.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def text_of(cell: dict) -> str:
    """Everything a cell printed or showed as text, its error's traceback included."""
    out = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            out.append(output["text"])
        elif output["output_type"] == "error":
            out += output["traceback"]
        else:
            out.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(out)


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> list[dict]:
    work = tmp_path_factory.mktemp("notebook")
    shutil.copytree(ROOT / "examples" / "data", work / "data")
    for name in ("iris_mlp.tfspec", NOTEBOOK.name):
        shutil.copyfile(ROOT / "examples" / name, work / name)
    notebook = nbformat.read(work / NOTEBOOK.name, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "TFSPEC_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["IPYTHONDIR"] = str(work / ".ipython")  # the kernel's profile and history: not ~
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    # the kernel process gets this environment (nbclient passes it to the launcher); its
    # connection file goes to a folder of the test's own
    runtime = os.environ.get("JUPYTER_RUNTIME_DIR")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(work / ".jupyter-runtime")
    try:
        client.execute(env=env)
    finally:
        if runtime is None:
            os.environ.pop("JUPYTER_RUNTIME_DIR", None)
        else:
            os.environ["JUPYTER_RUNTIME_DIR"] = runtime
    nbformat.write(notebook, work / "executed.ipynb")  # to look at when this fails
    return notebook.cells


def cell_with(cells: list[dict], source: str) -> dict:
    return next(c for c in cells if c["cell_type"] == "code" and source in c["source"])


@pytest.mark.slow
def test_the_plans_total_params_are_the_models(executed):
    import tfspec

    expected = tfspec.load(ROOT / "examples" / "iris_mlp.tfspec").build_model().count_params()
    printed = text_of(cell_with(executed, "plan = spec.plan()"))
    assert f"total params: {expected}\n" in printed, printed
    html = cell_with(executed, "plan = spec.plan()")["outputs"][-1]["data"]["text/html"]
    assert f"{expected:,}" in html and "features_normalization" in html


@pytest.mark.slow
def test_the_run_scores_above_a_floor_on_the_test_split(executed):
    printed = text_of(cell_with(executed, "run = _"))
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", printed)[1])
    assert accuracy >= 0.8, printed  # three balanced classes: chance is 1/3
    assert "exports verified: [True]" in printed
    trained = text_of(cell_with(executed, "%%tfspec iris --run"))
    assert "Epoch 30/30" in trained  # Keras's own progress, a line per epoch


@pytest.mark.slow
def test_the_broken_cell_shows_its_diagnostic_at_the_cell_line(executed):
    cell = cell_with(executed, "%%tfspec broken")
    errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "SpecError"
    shown = "\n".join(errors[0]["traceback"])
    # line 5 of the cell In[N] (the magic's line is line 1), with its caret and hint
    where = f"<cell {cell['execution_count']}>:5:3"
    assert f"{where}: error[E300]: unknown Keras layer `Dens`" in shown, shown
    assert '5 |   Dens(3, activation = "softmax")' in shown and "^^^^" in shown
    assert "did you mean `Dense`?" in shown
    assert "Traceback" not in shown and "tfspec/api" not in shown
