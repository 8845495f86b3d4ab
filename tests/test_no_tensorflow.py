"""Checking never imports TensorFlow (docs/architecture.md, rule 3).

A fresh interpreter imports tfspec, validates every example (through the API and
through the CLI), formats and converts them both ways, and then must hold neither
`tensorflow` nor `keras` (nor any of their submodules) in `sys.modules`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    r"""
    import contextlib
    import io
    import json
    import sys
    import tempfile
    from pathlib import Path

    import tfspec
    import tfspec.cli
    from tfspec.lang.validate import find_specs

    report = {"checked": [], "formatted": [], "converted": [], "cli": {}}
    specs = find_specs(["examples"])
    clean = []
    out = Path(tempfile.mkdtemp())
    for path in specs:
        result = tfspec.validate_file(path)
        report["checked"].append(str(path))
        if not result.ok:
            continue
        clean.append(str(path))
        dsl = tfspec.format_spec(result.ir)
        assert tfspec.validate_text(dsl, "f.tfspec").ir == result.ir, path
        report["formatted"].append(str(path))
        as_json = json.dumps(result.ir, indent=2)
        assert tfspec.validate_text(as_json, "f.tfspec.json").ir == result.ir, path
        report["converted"].append(str(path))


    def cli(*argv):
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = tfspec.cli.main(list(argv))
        report["cli"][" ".join(argv)] = [code, stderr.getvalue()[-2000:]]
        return code


    cli("validate", "examples")
    cli("validate", "--format", "json", "examples")
    cli("validate", "--format", "github", "examples")
    if clean:
        cli("validate", *clean)
        cli("fmt", "--check", *clean)
        for i, path in enumerate(clean):
            cli("convert", path, "-o", str(out / f"s{i}.tfspec.json"))
            cli("convert", str(out / f"s{i}.tfspec.json"), "-o", str(out / f"s{i}.tfspec"))
            cli("validate", str(out / f"s{i}.tfspec.json"), str(out / f"s{i}.tfspec"))

    report["clean"] = clean
    report["leaked"] = sorted(
        m for m in sys.modules
        if m in ("tensorflow", "keras") or m.startswith(("tensorflow.", "keras."))
    )
    print(json.dumps(report))
    """
)


def test_checking_never_imports_tensorflow():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("TFSPEC_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    assert report["checked"], "no example specs found under examples/"
    assert report["clean"], "no example spec validates cleanly"
    assert report["formatted"] == report["clean"]
    assert report["converted"] == report["clean"]
    for argv, (code, stderr) in report["cli"].items():
        # 1 is fine for `examples` as a whole (examples/invalid/ holds bad specs on
        # purpose) and for `fmt --check` (layout is another test's business); 2 never is
        allowed = (0, 1) if argv.endswith(" examples") or argv.startswith("fmt") else (0,)
        assert code in allowed, f"tfspec {argv} exited {code}: {stderr}"
    assert report["leaked"] == [], f"checking imported: {report['leaked']}"
