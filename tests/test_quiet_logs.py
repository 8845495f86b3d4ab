"""`tfspec run` keeps TensorFlow's C++ start-up and converter logs off the terminal
(docs/run.md), while tfspec's own lines and errors still reach it.

The real command line runs in a subprocess, in a user's environment: no
TF_CPP_MIN_LOG_LEVEL set beforehand.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from run_processes import ROOT, subprocess_env

SPEC = """tfspec 1
name "quiet"

data {{
  source = npz("data/digits.npz", x = "{x}", y = "labels")
  split {{ validation = 0.2, seed = 7 }}
  batch = 256
}}

model Net functional {{
  input image: float32[8, 8, 1]
  x = image |> Conv2D(4, 3, activation = "relu") |> Flatten()
  output digit = Dense(10, activation = "softmax")(x)
}}

train {{
  optimizer = "adam"
  loss = "sparse_categorical_crossentropy"
  epochs = 1
}}

export {{
  tflite "out/model.tflite" {{ quantize = "dynamic" }}
}}
"""
# TensorFlow's, jaxlib's (the TFLite converter imports JAX) and the converter's C++ lines
NOISE = [
    re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ ", re.M),  # absl: `I0000 00:00:…`
    re.compile(r"absl::InitializeLog"),
    re.compile(r"oneDNN custom operations"),
    re.compile(r"cuInit|Unable to register cu(DNN|FFT|BLAS)|cuda drivers"),
    re.compile(r"cpu_feature_guard|To enable the following instructions"),
]


def _run(tmp_path: Path, x: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "data").mkdir(exist_ok=True)
    shutil.copy(ROOT / "examples" / "data" / "digits.npz", tmp_path / "data")
    spec = tmp_path / "quiet.tfspec"
    spec.write_text(SPEC.format(x=x), encoding="utf-8")
    env = subprocess_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL")  # as a user runs it
    return subprocess.run([sys.executable, "-m", "tfspec", "run", str(spec)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)


def _noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(p.search(line) for p in NOISE)]


def test_a_run_with_a_tflite_export_prints_no_cpp_logs(tmp_path: Path) -> None:
    done = _run(tmp_path, "images")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _noise(done.stderr) == []
    # what tfspec says is still there
    assert re.search(r"^export tflite out/model\.tflite: passed", done.stderr, re.M), done.stderr
    assert "run directory: " in done.stderr


def test_a_failing_run_still_shows_its_error_and_only_it(tmp_path: Path) -> None:
    done = _run(tmp_path, "pixels")  # no such array in the archive
    assert done.returncode == 1
    assert "quiet.tfspec:5:12: error[" in done.stderr, done.stderr
    assert "pixels" in done.stderr
    assert _noise(done.stderr) == []
