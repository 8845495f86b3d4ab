"""A program run by hand, `python PROGRAM.py [RUN_DIR] [--spec-dir DIR]`: its command
line, and its errors as one line each with exit status 1.

`tfspec run` calls a program's `main` itself. Run by hand (a `tfspec compile -o` job,
or a `--standalone` one on a machine without tfspec), the program's `__main__` block
comes here: `arguments` reads the run directory and where the spec's relative paths
start (`--spec-dir`, else `TFSPEC_SPEC_DIR`, else the program's own `SPEC_DIR`, which
holds only while the program stands where it was compiled for), and `run` calls
`main` and turns its error into a line a user can act on.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any

# The environment's way to say where the spec's paths start (`--spec-dir` wins).
SPEC_DIR_VARIABLE = "TFSPEC_SPEC_DIR"
POINT_ELSEWHERE = f"--spec-dir DIR or {SPEC_DIR_VARIABLE}=DIR"


def arguments(spec_dir: str | os.PathLike,
              argv: list[str] | None = None) -> tuple[str, pathlib.Path]:
    """The command line's run directory (`RUN_DIR`, "." by default) and the folder the
    spec's paths start at: `--spec-dir DIR`, else $TFSPEC_SPEC_DIR, else `spec_dir`
    (the program's SPEC_DIR). A folder that does not exist is a usage error (exit 2)."""
    parser = argparse.ArgumentParser(
        prog=pathlib.Path(sys.argv[0]).name,
        description="Train as the spec says, save the run in RUN_DIR, export and verify.")
    parser.add_argument("run_dir", nargs="?", default=".", metavar="RUN_DIR",
                        help="where the run's files go (default: the current folder)")
    parser.add_argument("--spec-dir", metavar="DIR",
                        help="the folder the spec's relative paths (its data, …) start at: "
                             f"the spec's folder (default: ${SPEC_DIR_VARIABLE}, else "
                             f"{os.path.normpath(spec_dir)})")
    args = parser.parse_args(argv)
    given, said = args.spec_dir, f"--spec-dir {args.spec_dir}"
    if given is None and os.environ.get(SPEC_DIR_VARIABLE):
        given = os.environ[SPEC_DIR_VARIABLE]
        said = f"{SPEC_DIR_VARIABLE}={given}"
    if given is None:
        return args.run_dir, pathlib.Path(spec_dir)
    folder = pathlib.Path(given).expanduser().resolve()
    if not folder.is_dir():
        parser.error(f"{said}: no such folder")
    return args.run_dir, folder


def run(main: Callable[[str], Any], run_dir: str, spec_dir: str | os.PathLike) -> int:
    """`main(run_dir)`; 0, or 1 after its error on stderr, a line each (`TFSPEC_DEBUG=1`
    lets the traceback through instead)."""
    try:
        main(run_dir)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("TFSPEC_DEBUG"):
            raise
        for line in error_lines(exc, spec_dir):
            print(f"error: {line}", file=sys.stderr)
        return 1
    return 0


def error_lines(exc: BaseException, spec_dir: str | os.PathLike) -> list[str]:
    """What a user needs of a program's error: each export that failed its check (the
    verify module's ExportMismatch), the file that is missing and where the spec's
    paths start, or the error's type and message."""
    failures = getattr(exc, "failures", None)
    if isinstance(failures, list) and failures:
        return [str(entry.get("message", entry)) for entry in failures]
    cause: BaseException | None = exc
    while cause is not None:  # a missing file, perhaps under a library's own error
        if isinstance(cause, FileNotFoundError) and cause.filename:
            return [missing_file(os.fsdecode(cause.filename), spec_dir)]
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(exc).split()) or "no message"
    if type(exc).__name__ == "NotFoundError":  # TensorFlow's, for a file tf.data opens
        return [f"{text} (the spec's paths start at {os.path.normpath(spec_dir)}: point "
                f"them at the spec's folder with {POINT_ELSEWHERE})"]
    return [f"{type(exc).__name__}: {text} (TFSPEC_DEBUG=1 shows the traceback)"]


def missing_file(filename: str, spec_dir: str | os.PathLike) -> str:
    """A missing file, and, when it is one of the spec's, where its paths start."""
    path = os.path.normpath(os.path.abspath(filename))
    base = os.path.normpath(os.path.abspath(spec_dir))
    if os.path.commonpath([path, base]) != base:
        return f"no such file or directory: {path}"
    return (f"no such file or directory: {path} (the spec's paths start at {base}: point "
            f"them at the spec's folder with {POINT_ELSEWHERE})")
