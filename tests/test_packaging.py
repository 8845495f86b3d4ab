"""The wheel works on its own: data files inside, console script, no repo needed.

Builds the wheel (no network: `--no-build-isolation` uses the installed hatchling),
checks the grammar, the JSON Schema and the catalog are inside it, installs it into
a fresh venv, and validates an example copied outside the repository with both
`tfspec` and `python -m tfspec`, checking that the installed package finds its
grammar in the venv's site-packages and not in this checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "two_tower.tfspec"  # synthetic data: no data file to copy
REQUIRED = [
    "tfspec/grammars/tfspec.lark",
    "tfspec/spec/tfspec.schema.json",
    "tfspec/spec/catalog/layers.json",
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

    # a venv that borrows the system's dependencies (jsonschema, lark) but not tfspec
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
        cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
         "--no-index", "--no-compile", "--ignore-installed", wheel], cwd=tmp_path, env=env)
    console = venv / "bin" / "tfspec"
    assert console.exists(), "the console script was not installed"

    # a spec outside the repository, checked from outside the repository
    work = tmp_path / "work"
    work.mkdir()
    spec = work / EXAMPLE.name
    shutil.copy(EXAMPLE, spec)
    venv_env = dict(env, VIRTUAL_ENV=str(venv),
                    PATH=os.pathsep.join([str(venv / "bin"), env.get("PATH", "")]))

    proc = run([console, "validate", spec], cwd=work, env=venv_env)
    assert "0 errors" in proc.stderr, proc.stderr
    proc = run([python, "-m", "tfspec", "validate", spec], cwd=work, env=venv_env)
    assert "0 errors" in proc.stderr, proc.stderr
    proc = run([console, "validate", "--format", "json", spec], cwd=work, env=venv_env)
    assert proc.stdout.strip().startswith("[")

    # the installed package, not this checkout (nor an editable install of it), is used
    proc = run([python, "-c",
                "import tfspec, tfspec.resources as r; print(tfspec.__file__); "
                "print(r.resource_path('grammars', 'tfspec.lark')); "
                "print(r.data_path('catalog', 'layers.json'))"],
               cwd=work, env=venv_env)
    package, grammar, catalog = (Path(line).resolve() for line in proc.stdout.split("\n")[:3])
    site = venv.resolve() / "lib"
    for path in (package, grammar, catalog):
        assert site in path.parents, f"{path} is not inside the venv ({site})"
        assert ROOT not in path.parents, f"{path} resolves into the repository"
    assert grammar.is_file() and catalog.is_file()
