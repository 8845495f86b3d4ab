"""`tfspec compile --standalone -o DIR`: an ejected job runs where tfspec is not installed.

The program and its copy of the runtime are run by an interpreter that has
TensorFlow and Keras (this environment's packages, linked into a new venv) but not
tfspec; the model it trains has the same weights as `tfspec run`'s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest
from run_processes import subprocess_env

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
tfspec 1
name "iris-standalone"

param hidden = 8

data {
  source = csv("data/iris.csv", label = "species")
  split { validation = 0.2, test = 0.1, seed = 3 }
  batch = 16
}

model Iris sequential {
  input features: float32[4]
  Normalization()
  Dense(hidden, activation = "relu")
  Dense(3, activation = "softmax")
}

train {
  optimizer = Adam(learning_rate = 0.01)
  loss = "sparse_categorical_crossentropy"
  metrics = ["accuracy"]
  epochs = 3
  seed = 5
  deterministic = true
}
"""


def without_tfspec(venv: Path) -> Path:
    """A venv whose site-packages links every package of this environment but tfspec
    (its package, its metadata and an editable install's hooks); its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths()["purelib"])
    target = next((venv / "lib").glob("python3*/site-packages"))
    for entry in site.iterdir():
        if "tfspec" in entry.name.lower() or entry.name == "__pycache__":
            continue
        (target / entry.name).symlink_to(entry)
    return venv / "bin" / "python"


@pytest.mark.slow
def test_a_standalone_program_trains_like_tfspec_run_without_tfspec(tmp_path):
    work = tmp_path / "job"
    (work / "data").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "data" / "iris.csv", work / "data" / "iris.csv")
    spec = work / "iris.tfspec"
    spec.write_text(SPEC)
    env = subprocess_env()

    def tfspec(*argv: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "tfspec", *argv], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return proc

    tfspec("run", str(spec), "--run-dir", str(tmp_path / "by-tfspec"))
    eject = tmp_path / "ejected"
    tfspec("compile", str(spec), "--standalone", "-o", str(eject))
    program = eject / "iris.py"
    assert "from tfspec_runtime import " in program.read_text()
    copied = {p.name for p in (eject / "tfspec_runtime").glob("*.py")}
    assert {"__init__.py", "data.py", "training.py", "seeds.py"} <= copied, copied
    assert "export.py" not in copied  # only what the program uses: this spec exports nothing

    python = without_tfspec(tmp_path / "venv")
    bare = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = subprocess.run([python, "-c", "import tfspec"], env=bare, capture_output=True,
                           text=True, cwd=tmp_path)
    assert "No module named 'tfspec'" in probe.stderr, probe.stderr
    # run from elsewhere: the program finds the data beside the spec and the runtime beside
    # itself, whatever the working directory
    proc = subprocess.run([python, str(program), str(tmp_path / "ejected-run")], env=bare,
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    import keras

    ours = keras.saving.load_model(tmp_path / "by-tfspec" / "model.keras")
    theirs = keras.saving.load_model(tmp_path / "ejected-run" / "model.keras")
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_standalone_needs_a_folder(tmp_path, capsys):
    import tfspec.cli

    spec = tmp_path / "m.tfspec"
    spec.write_text(textwrap.dedent("""\
        tfspec 1
        model M sequential {
          input x: float32[4]
          Dense(1)
        }
    """))
    assert tfspec.cli.main(["compile", str(spec), "--standalone"]) == 1
    assert "-o DIR" in capsys.readouterr().err
    assert tfspec.cli.main(["compile", str(spec), "--standalone", "-o",
                            str(tmp_path / "out")]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["m.py", "tfspec_runtime"]


def test_a_program_that_loads_a_model_gets_the_runtimes_transfer_module(tmp_path):
    """`load_model(…)` is the runtime's `transfer.load_keras_model`: the copy has it."""
    from tfspec.codegen.program import compile_file
    from tfspec.codegen.standalone import write_standalone

    spec = tmp_path / "m.tfspec"
    spec.write_text(textwrap.dedent("""\
        tfspec 1
        model M sequential {
          input x: float32[4]
          load_model("base.keras", trainable = false)
          Dense(1)
        }
    """))
    out = tmp_path / "out"
    compiled = compile_file(spec, program_path=out / "m.py", standalone=True)
    program, runtime = write_standalone(compiled, out)
    assert "from tfspec_runtime import transfer\n" in program.read_text()
    assert sorted(p.name for p in runtime.glob("*.py")) == ["__init__.py", "transfer.py"]


# Run with this on PYTHONPATH, the program finds no LiteRT (as where it is not installed).
NO_LITERT = "import sys\n\nsys.modules['ai_edge_litert'] = None  # `import ai_edge_litert` fails\n"


@pytest.mark.slow
def test_a_moved_job_is_pointed_at_its_data_and_fails_in_one_line(tmp_path):
    """An ejected job moved away from the spec: a clear error names the missing file and
    the way to point elsewhere; `--spec-dir` (or TFSPEC_SPEC_DIR) does; a failed check
    is one line naming the real package to install, and exit status 1."""
    work = tmp_path / "spec"
    (work / "data").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "data" / "iris.csv", work / "data" / "iris.csv")
    (work / "iris.tfspec").write_text(SPEC + 'export {\n  tflite "out/model.tflite"\n}\n')
    env = subprocess_env()
    done = subprocess.run([sys.executable, "-m", "tfspec", "compile", "iris.tfspec",
                           "--standalone", "-o", "job"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    moved = tmp_path / "elsewhere" / "job"
    shutil.move(work / "job", moved)  # SPEC_DIR = …parent / "..": no data there now
    python = without_tfspec(tmp_path / "venv")
    bare = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def job(*argv: str, **more: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, str(moved / "iris.py"), *argv], env={**bare, **more},
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)

    lost = job(str(tmp_path / "lost"))
    missing = tmp_path / "elsewhere" / "data" / "iris.csv"
    assert lost.returncode == 1, lost.stderr[-3000:]
    # (TensorFlow's C++ start-up lines may come first: the program does not hold them back)
    assert "Traceback" not in lost.stderr
    assert lost.stderr.strip().splitlines()[-1] == (
        f"error: no such file or directory: {missing} (the spec's paths start at "
        f"{tmp_path / 'elsewhere'}: point them at the spec's folder with --spec-dir DIR or "
        "TFSPEC_SPEC_DIR=DIR)"), lost.stderr[-3000:]

    blocked = tmp_path / "no-litert"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text(NO_LITERT)
    unchecked = job(str(tmp_path / "unchecked"), "--spec-dir", str(work),
                    PYTHONPATH=str(blocked))
    assert unchecked.returncode == 1, unchecked.stderr[-3000:]
    assert "Traceback" not in unchecked.stderr and "tfspec[" not in unchecked.stderr
    assert unchecked.stderr.strip().splitlines()[-1] == (
        "error: tflite out/model.tflite could not be checked: checking a tflite export runs "
        "it in LiteRT: pip install ai-edge-litert"), unchecked.stderr[-3000:]
    assert (tmp_path / "unchecked" / "model.keras").is_file()  # it trained on the data
    assert (work / "out" / "model.tflite").is_file()

    passed = job(str(tmp_path / "passed"), TFSPEC_SPEC_DIR=str(work))
    assert passed.returncode == 0, passed.stderr[-3000:]
    assert "verify: tflite out/model.tflite answers like the Keras model" in passed.stdout
