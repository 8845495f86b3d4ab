"""`tfspec validate --shapes` (the shape check for CI) and the shapes of a spec's text.

The errors are those of `compile --check` (the program's model, built), at the same
places; a spec the checker rejects is not built. The inlay hints' own test, against
the built model of every example, is tests/test_lsp_shapes.py.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tfspec.cli import main
from tfspec.codegen.program import compile_file
from tfspec.lang.diagnostics import SpecError
from tfspec.lang.validate import validate_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

LSTM_AFTER_DENSE = """tfspec 1
model Bad sequential {
  input x: float32[8, 8, 1]
  Conv2D(4, 3)
  Flatten()
  Dense(3)
  LSTM(4)
  Dense(2)
}
"""


def compile_check(path: Path) -> list[dict]:
    """What `compile --check` reports: the program's model, built."""
    from tfspec.jobs.build import build_model

    with pytest.raises(SpecError) as error:
        build_model(compile_file(path))
    return [d.to_dict() for d in error.value.diagnostics]


def test_a_shape_error_is_located_at_the_layer(tmp_path, capsys):
    spec = tmp_path / "bad.tfspec"
    spec.write_text(LSTM_AFTER_DENSE)
    assert main(["validate", "--shapes", str(spec)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{spec}:7:3: error[E500]: Keras cannot build `lstm`: Input 0 of "
                          "layer 'lstm' is incompatible with the layer: expected ndim=3, "
                          "found ndim=2")
    assert "7 |   LSTM(4)\n  |   ^^^^^^^" in out
    assert "checked 1 spec: 1 error, 0 warnings" in err
    assert main(["validate", "--shapes", "--format", "json", str(spec)]) == 1
    assert json.loads(capsys.readouterr().out) == compile_check(spec)
    # without --shapes the spec is clean: the checker does not build models
    assert main(["validate", str(spec)]) == 0


def test_every_example_builds_and_a_missing_model_file_is_located(tmp_path, capsys):
    examples = tmp_path / "examples"  # without runs/: as in a fresh checkout
    shutil.copytree(EXAMPLES, examples, ignore=shutil.ignore_patterns("runs", "invalid"))
    specs = [str(p) for p in sorted(examples.glob("*.tfspec"))]
    assert main(["validate", "--shapes", "--format", "json", *specs]) == 1
    found = json.loads(capsys.readouterr().out)
    # iris_finetune loads the model iris_mlp's run writes
    finetune = examples / "iris_finetune.tfspec"
    assert [(d["file"], d["code"]) for d in found] == [(str(finetune), "E500")]
    assert found == compile_check(finetune)
    assert "runs/iris/model.keras" in found[0]["message"]


def test_a_spec_the_checker_rejects_is_not_built(capsys):
    spec = EXAMPLES / "invalid" / "E300_unknown_layer.tfspec"
    assert main(["validate", str(spec)]) == 1
    plain = capsys.readouterr()
    assert main(["validate", "--shapes", str(spec)]) == 1
    assert capsys.readouterr() == plain


def test_the_json_form_has_the_same_shapes(tmp_path):
    from tfspec.inspect.shapes import statement_label, text_shapes

    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    dsl = tmp_path / "resnet.tfspec"
    dsl.write_text((EXAMPLES / "resnet_blocks.tfspec").read_text())
    as_json = tmp_path / "resnet.tfspec.json"
    assert main(["convert", str(dsl), "-o", str(as_json)]) == 0
    a = text_shapes(dsl.read_text(), str(dsl))
    b = text_shapes(as_json.read_text(), str(as_json))
    assert [(s.at, statement_label(s)) for s in a.statements] == \
        [(s.at, statement_label(s)) for s in b.statements]
    assert len(a.statements) == 7 and a.params == b.params == 42314
    # each statement's span is where the JSON form has it
    positions = validate_file(as_json).positions
    assert [s.span for s in b.statements] == [positions.value(s.at) for s in b.statements]


def test_without_tensorflow_validate_shapes_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # find_spec: not installed
    assert main(["validate", "--shapes", str(EXAMPLES / "iris_mlp.tfspec")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "tfspec[tf]"' in err, err
    assert main(["validate", str(EXAMPLES / "iris_mlp.tfspec")]) == 0  # the checker needs none
