"""An optimizer named by a param (`param opt = "sgd"`, `optimizer = opt`): the form a
search over optimizers takes (`tune { space { opt = Choice(["adam", "sgd"]) } }`).
The program builds the optimizer from the param's value, with train's clipping."""

from __future__ import annotations

import pytest

from tfspec.codegen.program import compile_text
from tfspec.jobs.build import load_program

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
