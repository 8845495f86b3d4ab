"""An autouse fixture for test modules that run programs in this process: import it
(`from tf_state import restore_global_state`) to put back what a program sets
process-wide, its mixed-precision policy and op determinism, after each test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def restore_global_state():
    import keras
    from tensorflow.python.framework import config  # the public API has no "disable"

    policy = keras.mixed_precision.global_policy().name
    deterministic = config.is_op_determinism_enabled()
    yield
    keras.mixed_precision.set_global_policy(policy)
    if not deterministic:
        config.disable_op_determinism()
