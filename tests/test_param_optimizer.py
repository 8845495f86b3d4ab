"""An optimizer named by a param (`param opt = "sgd"`, `optimizer = opt`): the form a
search over optimizers takes (`tune { space { opt = Choice(["adam", "sgd"]) } }`).
The program builds the optimizer from the param's value, with train's clipping."""

from __future__ import annotations

import pytest

from tfspec.codegen.program import compile_text
from tfspec.jobs.build import load_program
from tfspec.lang.validate import validate_text

SPEC = """\
tfspec 1
param opt = "sgd"
model M sequential {
  input x: float32[4]
  Dense(3)
}
data { source = synthetic(samples = 8), batch = 4 }
train {
  optimizer = opt
  loss = "mse"
  clip_norm = 0.5
}
"""


@pytest.mark.parametrize(("value", "cls"), [(None, "SGD"), ("adam", "Adam"),
                                            ("RMSprop", "RMSprop")])
def test_a_param_names_the_optimizer(value, cls):
    overrides = {"opt": value} if value else None
    program = load_program(compile_text(SPEC, "opt.tfspec", overrides))
    optimizer = program["make_optimizer"]()
    assert type(optimizer).__name__ == cls
    assert optimizer.clipnorm == 0.5


def test_without_clipping_the_value_is_keras_identifier():
    compiled = compile_text(SPEC.replace("  clip_norm = 0.5\n", ""), "opt.tfspec")
    assert "return keras.optimizers.get(OPT)" in compiled.source
    assert type(load_program(compiled)["make_optimizer"]()).__name__ == "SGD"


def test_a_param_that_names_no_optimizer_is_e300_at_the_use():
    result = validate_text(SPEC.replace('"sgd"', '"sgdd"'), "opt.tfspec")
    [d] = [d for d in result.diagnostics if d.code == "E300"]
    assert (d.span.line, d.span.col) == (9, 15)
    assert d.message == 'unknown optimizer "sgdd" (from `opt`)'
    assert d.hint == 'did you mean "sgd"?'


def test_a_tune_space_over_optimizers_is_checked_against_keras_identifiers():
    text = SPEC + 'tune {\n  objective = "loss"\n  max_trials = 2\n' \
        '  space { opt = Choice(["adam", "sgdd"]) }\n}\n'
    [d] = validate_text(text, "opt.tfspec").diagnostics
    assert (d.code, d.span.line) == ("E601", 16)
    assert "`opt` is `optimizer` of `train` (line 9)" in d.message
    assert d.message.endswith('the space gives "sgdd"')
    assert not validate_text(text.replace("sgdd", "sgd"), "opt.tfspec").diagnostics
