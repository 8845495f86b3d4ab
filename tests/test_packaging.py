"""The light wheel works on its own: data files inside, console script, no repo, no TensorFlow.

Builds the wheel (no network: `--no-build-isolation` uses the installed hatchling),
checks the grammar, the JSON Schema and the catalog are inside it, and installs it
with its real core dependencies into a fresh venv, offline: pip resolves them from a
wheelhouse rebuilt from this environment (tests/wheelhouse.py). There, neither
TensorFlow nor Keras may be installed; specs copied outside the repository are
validated, formatted, converted and compiled with `tfspec` and `python -m tfspec`,
the installed package finds its grammar in the venv's site-packages and not in this
checkout, and a command that needs TensorFlow says how to install it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from wheelhouse import wheelhouse

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "two_tower.tfspec"  # synthetic data: no data file to copy
REQUIRED = [
    "tfspec/grammars/tfspec.lark",
    "tfspec/spec/tfspec.schema.json",
    "tfspec/spec/catalog/layers.json",
    "tfspec/spec/catalog/docs/layers.json",  # Keras's docstring texts for the editor
    "tfspec/py.typed",  # PEP 561: type checkers read the API's hints
]


def run(argv: list, cwd: Path, env: dict[str, str], timeout: int = 300):
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{argv} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc


@pytest.mark.slow
def test_wheel_installs_and_validates_outside_the_repo(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "TFSPEC_DEBUG")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"

    # build the wheel from the checkout (hatchling copies the sources, writes nothing here)
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", dist, ROOT], cwd=tmp_path, env=env)
    wheels = sorted(dist.glob("tfspec-*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for required in REQUIRED:
            assert required in names, f"{required} missing from {wheel.name}"
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "tfspec = tfspec.cli:run" in zf.read(entry_points).decode()
        assert not any(n.startswith(("tests/", "examples/")) for n in names)

    # a fresh venv with the wheel and its real core dependencies, from a local wheelhouse
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [line.split(":", 1)[1].strip()
                    for line in zf.read(meta).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    wheelhouse(requires, tmp_path / "wheelhouse")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-index",
         "--no-compile", "--find-links", tmp_path / "wheelhouse", wheel], cwd=tmp_path, env=env)
    console = venv / "bin" / "tfspec"
    assert console.exists(), "the console script was not installed"

    # the light core: no TensorFlow, no Keras, a few megabytes
    proc = run([sys.executable, "-m", "pip", "--python", python, "list", "--format", "json"],
               cwd=tmp_path, env=env)
    installed = {p["name"].lower() for p in json.loads(proc.stdout)}
    assert not installed & {"tensorflow", "tensorflow-cpu", "keras", "tf-keras"}, installed
    assert {"tfspec", "lark", "jsonschema"} <= installed, installed
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    size = sum(f.stat().st_size for f in site_packages.rglob("*") if f.is_file())
    assert size < 25e6, f"the light install holds {size / 1e6:.0f} MB"

    # specs outside the repository, checked from outside the repository
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work, ignore=shutil.ignore_patterns("runs"))
    spec = work / EXAMPLE.name
    venv_env = dict(env, VIRTUAL_ENV=str(venv),
                    PATH=os.pathsep.join([str(venv / "bin"), env.get("PATH", "")]))

    proc = run([console, "validate", "."], cwd=work, env=venv_env)
    checked = re.search(r"checked (\d+) specs: 0 errors", proc.stderr)
    assert checked and int(checked[1]) == len(list(work.glob("*.tfspec"))), proc.stderr
    run([console, "fmt", "--check", "."], cwd=work, env=venv_env)
    proc = run([python, "-m", "tfspec", "validate", spec], cwd=work, env=venv_env)
    assert "0 errors" in proc.stderr, proc.stderr
    proc = run([console, "validate", "--format", "json", spec], cwd=work, env=venv_env)
    assert proc.stdout.strip().startswith("[")
    run([console, "convert", spec, "-o", "spec.tfspec.json"], cwd=work, env=venv_env)
    proc = run([console, "convert", "spec.tfspec.json"], cwd=work, env=venv_env)
    assert proc.stdout == spec.read_text()
    run([console, "compile", spec, "-o", "job.py"], cwd=work, env=venv_env)
    assert "def build_model(" in (work / "job.py").read_text()

    # the Python API loads and compiles there too, and what needs TensorFlow says so
    proc = run([python, "-c", "import tfspec; spec = tfspec.load('two_tower.tfspec'); "
                "print('def build_model(' in spec.program())\n"
                "try:\n    spec.build_model()\n"
                "except tfspec.TfspecError as exc:\n    print(exc)"], cwd=work, env=venv_env)
    assert proc.stdout.splitlines()[0] == "True", proc.stdout
    assert 'needs TensorFlow' in proc.stdout and 'pip install "tfspec[tf]"' in proc.stdout

    # a command that needs TensorFlow says so in one line, exit 1
    for argv in (["run", spec], ["compile", "--check", spec], ["plan", spec],
                 ["validate", "--shapes", spec]):
        proc = subprocess.run([str(console), *map(str, argv)], cwd=work, env=venv_env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, (argv, proc.returncode, proc.stderr)
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert 'pip install "tfspec[tf]"' in proc.stderr, proc.stderr

    # the installed package, not this checkout (nor an editable install of it), is used
    proc = run([python, "-c",
                "import tfspec, tfspec.lang.resources as r; print(tfspec.__file__); "
                "print(r.resource_path('grammars', 'tfspec.lark')); "
                "print(r.data_path('catalog', 'layers.json'))"],
               cwd=work, env=venv_env)
    package, grammar, catalog = (Path(line).resolve() for line in proc.stdout.split("\n")[:3])
    site = venv.resolve() / "lib"
    for path in (package, grammar, catalog):
        assert site in path.parents, f"{path} is not inside the venv ({site})"
        assert ROOT not in path.parents, f"{path} resolves into the repository"
    assert grammar.is_file() and catalog.is_file()
