"""`tfspec run`: compile a spec and execute exactly that program in a run directory.

A run directory (`<spec folder>/runs/<name>/<timestamp>/`) keeps what is needed to
understand and repeat the run: the resolved spec (params with their `--set`
values), the generated program, the versions of the libraries, the log, the
trained model and `metrics.json`. `--dry-run` swaps the data for a few synthetic
batches, trains one step and throws the result away: the deep CI check.
"""

from __future__ import annotations

import copy
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from ..codegen.program import API, Compiled, compile_result, compile_text
from ..codegen.train import backup_pointer
from ..lang.diagnostics import Diagnostics, SpecError
from ..lang.formatter import format_spec
from ..lang.missing_files import missing_files
from ..lang.transfer import absolute_paths
from ..lang.validate import Result, validate_file
from .build import keras_message, load_program, located_error, quiet_failed_build, quiet_tensorflow

# What the generated program does not do yet; refused with a located error.
_NOT_YET = {
    ("distribute", "strategy"): {"tpu"},
}


class _Tee(io.TextIOBase):
    """Write to the terminal and to the run's log at once."""

    def __init__(self, *streams: Any):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def isatty(self) -> bool:
        return self.streams[0].isatty()


def resolved_ir(path: str, overrides: dict[str, Any], allow_modules: tuple[str, ...],
                dry_run: bool) -> tuple[dict[str, Any], Any]:
    """The spec's IR with `--set` values in its params (and, for a dry run, one step of
    synthetic data and no files written by callbacks)."""
    result = validate_file(path, overrides, allow_modules)
    if not result.ok or result.ir is None:
        raise SpecError(result.diagnostics, result.source)
    for (section, key), values in _NOT_YET.items():
        value = (result.ir.get(section) or {}).get(key)
        if value in values:
            diags = Diagnostics(result.file)
            diags.add("E503", "TPUStrategy needs a TPU, and this machine has none",
                      result.positions.value(f"/{section}/{key}"),
                      hint="`tfspec compile` writes the program; run it on a TPU VM")
            raise SpecError(diags, result.source)
    if "train" not in result.ir or "data" not in result.ir or "model" not in result.ir:
        diags = Diagnostics(result.file)
        diags.add("E503", "a spec needs `data`, `model` and `train` to be run",
                  result.positions.value(""))
        raise SpecError(diags, result.source)
    ir = copy.deepcopy(result.ir)
    ir["params"] = {**ir.get("params", {}), **result.overrides} if ir.get("params") else None
    if ir["params"] is None:
        del ir["params"]
    if dry_run:
        batch = ir["data"].get("batch", 32)
        batch = batch if isinstance(batch, int) else 32
        data = {"source": {"call": "synthetic", "kwargs": {"samples": 2 * batch}},
                "split": {"validation": 0.5, "seed": 0}, "batch": batch}
        ir["data"] = {**data, **{k: v for k, v in ir["data"].items()
                                 if k in ("preprocess", "augment")}}
        train = ir["train"]
        train.update({"epochs": 1, "steps_per_epoch": 1, "validation_steps": 1})
        train["callbacks"] = [c for c in train.get("callbacks", [])
                              if c.get("call") in ("EarlyStopping", "TerminateOnNaN",
                                                   "ReduceLROnPlateau")]
        ir.pop("comments", None)
        # the dry run's spec is compiled in a throw-away folder: the model's files
        # (`load_model`, `TFSMLayer`) are still found from the user's spec
        absolute_paths(ir, Path(path).resolve().parent)
    return ir, result


def run(path: str, overrides: dict[str, Any] | None = None,
        allow_modules: tuple[str, ...] = (), dry_run: bool = False,
        runs_root: str | None = None, run_dir: str | None = None,
        prepare: Callable[[dict[str, Any]], None] | None = None,
        check_exports: Callable[[str, dict[str, Any], tuple[str, ...]], None] | None = None
        ) -> Path:
    """Run a spec; returns its run directory. Raises SpecError (located) on failure.
    `prepare`: called with the program's namespace before its `main` (what a launcher
    adds: the Ray workers' report callback). `check_exports`: called with the spec's
    path, `overrides` and `allow_modules` before anything is written or trained, by
    the chief only; raises SpecError when an export target cannot be converted (the
    command line passes `plan --target`'s check, inspect's, which jobs may not import)."""
    ir, result = resolved_ir(path, overrides or {}, allow_modules, dry_run)
    spec_dir = Path(path).resolve().parent
    text = format_spec(ir)
    name = ir.get("name") or ir["model"]["name"]
    # a file the model loads (`load_model`) is looked for first: the error is at the
    # user's spec, and a run that cannot start leaves no run directory
    missing = missing_files(result.file, result.source, result.ir, result.positions,
                            result.overrides)
    if missing is not None:
        raise missing
    if check_exports is not None and _is_chief():  # one check per job: the same program
        check_exports(path, overrides or {}, allow_modules)
    if dry_run:
        # the dry run's own spec (synthetic data, one step) lives in the throw-away
        # directory, and its errors point into it
        run_dir = Path(tempfile.mkdtemp(prefix="tfspec-dry-run-"))
        compiled = compile_text(text, str(run_dir / "spec.tfspec"),
                                allow_modules=allow_modules)
    else:
        # the user's own file, with the `--set` values: errors point at its lines
        compiled = compile_result(result)
        root = Path(runs_root) if runs_root else spec_dir / "runs"
        run_dir = Path(run_dir) if run_dir else new_run_dir(root / name)
        run_dir.mkdir(parents=True, exist_ok=True)
    if task_dir(run_dir) == run_dir:  # a multi-worker job's other tasks: their logs only
        (run_dir / "spec.tfspec").write_text(text, encoding="utf-8")
        (run_dir / "program.py").write_text(compiled.source, encoding="utf-8")
        (run_dir / "versions.json").write_text(json.dumps(versions(), indent=2) + "\n")
    try:
        # a dry run's export errors point at the user's spec, not the throw-away one
        execute(compiled, run_dir, origin=result if dry_run else None, prepare=prepare)
    except SpecError as exc:
        if not dry_run:
            exc.run_dir = run_dir  # type: ignore[attr-defined]  # for summary()
        raise
    finally:
        if dry_run:
            shutil.rmtree(run_dir, ignore_errors=True)
    return run_dir


def summary(run_dir: Path, failed: bool = False) -> list[str]:
    """The end of a run in a few lines, read from the files its program wrote: the test
    split's metrics (metrics.json), each export with its check (exports.json,
    verify.json), and the run directory. Files older than the run's spec.tfspec are
    an earlier run's (`--run-dir` reused) and are left out. A `failed` run is summed up
    only when its training finished (its exports failed): else nothing is said."""
    own = task_dir(run_dir)
    metrics = _this_runs(own / "metrics.json", run_dir)
    if failed and metrics is None:
        return []
    lines = []
    test = metrics.get("test") if isinstance(metrics, dict) else None
    if isinstance(test, dict) and test:
        lines.append("test split: " + ", ".join(f"{name} {_number(value)}"
                                                 for name, value in test.items()))
    record = _this_runs(run_dir / "exports.json", run_dir) or {}
    checks = {entry.get("index"): entry
              for entry in _this_runs(run_dir / "verify.json", run_dir) or []}
    for index, target in enumerate(record.get("targets", [])):
        where = f"{target.get('format')} {target.get('spec_path', target.get('path'))}"
        lines.append(f"export {where}: {_verdict(checks.get(index))}")
    lines.append(f"run directory: {run_dir}")
    return lines


def _is_chief() -> bool:
    quiet_tensorflow()  # the first import of TensorFlow: without its C++ start-up lines
    from ..runtime import distribute  # TensorFlow: only a run gets here

    return distribute.is_chief()


def task_dir(run_dir: Path) -> Path:
    """Where this process writes its log: the run directory, or `worker-<i>/` in it for
    a multi-worker job's tasks that are not the chief (they write nothing else there)."""
    quiet_tensorflow()  # the first import of TensorFlow: without its C++ start-up lines
    from ..runtime import distribute  # TensorFlow: only a run gets here

    return run_dir if distribute.is_chief() else distribute.worker_dir(run_dir)


def _this_runs(path: Path, run_dir: Path) -> Any:
    """A JSON file the run wrote, or None (missing, unreadable, or an earlier run's)."""
    try:
        if path.stat().st_mtime_ns < (run_dir / "spec.tfspec").stat().st_mtime_ns:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _verdict(check: dict[str, Any] | None) -> str:
    if check is None:
        return "not checked (verify = false)"
    if check.get("written") is False:
        return "failed: not written (the export failed)"
    if "tolerance" not in check:  # its runtime could not load or run it
        return "failed: could not be checked"
    # as the program's `verify:` lines write them
    error, tolerance = _number(check["max_abs_error"], 3), _number(check["tolerance"], 3)
    if check["passed"]:
        return f"passed, max abs error {error} <= tolerance {tolerance}"
    return f"failed, max abs error {error} > tolerance {tolerance}"


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def new_run_dir(parent: Path, prefix: str = "") -> Path:
    """`<parent>/<prefix><timestamp>`, made now; runs started in the same second get
    `-2`, `-3`…"""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot make a run directory in {parent}")


def _restore_global_state() -> None:
    """A spec's `mixed_precision` and `deterministic` are process-wide in TensorFlow:
    put them back, so the next run (or the caller) starts clean."""
    import keras
    from tensorflow.python.framework import config  # the public API has no "disable"

    keras.mixed_precision.set_global_policy("float32")
    config.disable_op_determinism()


def execute(compiled: Compiled, run_dir: Path, origin: Result | None = None,
            prepare: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Run the program's `main` in this process, logging to `run_dir/log.txt`.

    `origin`: for a dry run, the user's checked spec. Its exports are checked in
    their runtimes, but an untrained model on random data says nothing about
    quantization error, so parity numbers are reported and not enforced."""
    node_path()
    namespace = load_program(compiled)
    if prepare is not None:
        prepare(namespace)
    log_dir = task_dir(run_dir)  # one log per worker
    log_dir.mkdir(parents=True, exist_ok=True)
    # appended: a run directory used again (`--run-dir`, a resumed job) keeps what the
    # killed run printed before it
    with open(log_dir / "log.txt", "a", encoding="utf-8") as log, \
            redirect_stdout(_Tee(sys.stdout, log)):
        try:
            with quiet_failed_build():
                namespace[API.main](run_dir, *main_verbose(compiled))
        except Exception as exc:
            frames = _frames(exc)
            if frames & {API.export_all, API.verify_exports}:
                failures = getattr(exc, "failures", None)
                if origin is not None and failures is not None:
                    exc.failures = [f for f in failures if not _parity(f)]
                    if not exc.failures:
                        print("dry run: the exports load and run in their runtimes; their "
                              "parity is checked after real training")
                        return
                raise export_error(exc, compiled, origin) from None
            if getattr(exc, "split", None) == "test":  # training.save_run's evaluation
                raise located_error(exc, compiled, "E502", "the trained model is saved, but "
                                    "evaluating it on the test split failed", origin,
                                    at=_test_split(compiled.ir)) from None
            if _raised_by(exc, "BackgroundBackupAndRestore"):  # the runtime's backup
                raise located_error(exc, compiled, "E502", "training failed", origin,
                                    at=backup_pointer(compiled.ir)) from None
            # a dry run's errors are reported in the user's spec, not in its copy
            if isinstance(exc, ValueError) and API.check_data in frames:
                raise located_error(exc, compiled, "E501", "the data does not fit the model",
                                    origin) from None
            raise located_error(exc, compiled, "E502", "training failed", origin) from None
        finally:
            _restore_global_state()


def _test_split(ir: dict[str, Any]) -> str:
    """Where the test split is in the spec: its `split { test = … }`, or the `data`
    section whose source gives it."""
    split = (ir.get("data") or {}).get("split")
    return "/data/split/test" if isinstance(split, dict) and "test" in split else "/data"


def main_verbose(compiled: Compiled) -> tuple[int, ...]:
    """The `verbose` argument of the program's `main`: none where the spec sets
    `train.verbose` (the spec's is `main`'s default, and wins over the terminal's);
    else progress bars on a terminal, or a line per epoch."""
    if "verbose" in (compiled.ir.get("train") or {}):
        return ()
    return (1 if sys.stdout.isatty() else 2,)


def node_path() -> None:
    """Let Node.js find @tensorflow/tfjs where tools/install-tfjs puts it, for the
    programs of older runs, which run their own copy of predict.js (the runtime's is
    beside that node_modules)."""
    modules = Path(__file__).resolve().parents[1] / "runtime" / "js" / "node_modules"
    paths = [p for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p]
    if modules.is_dir() and str(modules) not in paths:
        os.environ["NODE_PATH"] = os.pathsep.join([*paths, str(modules)])


def export_error(exc: BaseException, compiled: Compiled,
                 origin: Result | None = None) -> SpecError:
    """E504 at the export target that failed: each target the parity check rejected
    (`ExportMismatch.failures`), or the target whose export raised (`export_index`,
    which the runtime's `export_all` sets, or the target's line). `origin`: the
    user's spec, for a dry run's program compiled from a copy of it."""
    positions = origin.positions if origin else compiled.positions
    source = origin.source if origin else compiled.spec_source
    diags = Diagnostics(origin.file if origin else compiled.spec_file)
    failures = getattr(exc, "failures", None)
    if failures is not None:
        for entry in failures:
            message = entry["message"]
            if entry.get("written") is False:  # as an export that raised is reported
                message = f"the export failed: {keras_message(RuntimeError(entry['error']))}"
            diags.add("E504", message, positions.value(f"/export/{entry['index']}"),
                      hint=_parity_hint(entry))
        return SpecError(diags, source)
    span = None
    tb = exc.__traceback__
    while tb is not None:  # the deepest generated line's (of `export_all`, when it raised)
        if tb.tb_frame.f_code.co_filename == compiled.filename:
            span = compiled.spec_span(tb.tb_lineno) or span
        tb = tb.tb_next
    pointer = "/export"
    for i in range(len(compiled.ir.get("export") or [])):
        if span is not None and compiled.positions.value(f"/export/{i}") == span:
            pointer = f"/export/{i}"  # the same target in `positions`' spec
    if isinstance(getattr(exc, "export_index", None), int):  # tfspec.runtime.export says
        pointer = f"/export/{exc.export_index}"
    diags.add("E504", f"the export failed: {keras_message(exc)}", positions.value(pointer))
    return SpecError(diags, source)


def _parity(entry: dict[str, Any]) -> bool:
    """Whether a verify failure is a parity one (the export ran, off by more than its
    tolerance), not an export its runtime could not load or run."""
    return "tolerance" in entry


def _parity_hint(entry: dict[str, Any]) -> str | None:
    if not _parity(entry):
        return None
    if entry.get("changed"):  # not a precision problem: the file is not what the run wrote
        return ("the run's copy of this export was changed after the run: `tfspec export "
                "SPEC --from RUN_DIR` writes it again")
    if entry["format"] in ("tflite", "tfjs"):
        return ("a coarser `quantize` loses more precision: try a finer one, or accept "
                "more with `tolerance = …` if the argmax agreement is enough")
    return "set `tolerance = …` on the target if this difference is acceptable"


def export_run(path: str, from_dir: str, overrides: dict[str, Any] | None = None,
               allow_modules: tuple[str, ...] = ()) -> Path:
    """`tfspec export FILE --from RUN_DIR`: write the spec's export targets again from
    the model a run saved, without training, and verify them."""
    run_dir = Path(from_dir)
    result = validate_file(path, overrides or {}, allow_modules)
    compiled = compile_result(result)
    if not compiled.ir.get("export"):
        diags = Diagnostics(result.file)
        diags.add("E504", "the spec has no `export { … }` targets", result.positions.value(""))
        raise SpecError(diags, result.source)
    if not (run_dir / "model.keras").is_file():
        diags = Diagnostics(str(run_dir))
        diags.add("E504", f"{run_dir} holds no model.keras: is it a run directory?", None,
                  hint="`tfspec run` writes one per run, in runs/<name>/<time>/")
        raise SpecError(diags, "")
    node_path()
    namespace = load_program(compiled)
    try:
        import keras

        model = keras.saving.load_model(run_dir / "model.keras")
        namespace[API.export_all](model, run_dir, namespace[API.make_datasets]())
        namespace[API.verify_exports](run_dir)
    except Exception as exc:
        raise export_error(exc, compiled) from None
    return run_dir


def verify_run(from_dir: str) -> list[dict[str, Any]]:
    """`tfspec verify RUN_DIR`: check a run's exports again in their runtimes with the
    run's own program; failures are located in the run's copy of the spec."""
    run_dir = Path(from_dir)
    missing = [n for n in ("program.py", "exports.json", "verify_batch.npz", "spec.tfspec")
               if not (run_dir / n).is_file()]
    if missing:
        diags = Diagnostics(str(run_dir))
        diags.add("E504", f"{run_dir} has no {', '.join(missing)}: not a run directory "
                  "with exports", None,
                  hint="`tfspec run` (or `tfspec export --from`) writes them")
        raise SpecError(diags, "")
    spec = validate_file(str(run_dir / "spec.tfspec"))
    source = (run_dir / "program.py").read_text(encoding="utf-8")
    compiled = Compiled(str(run_dir / "spec.tfspec"), spec.source, spec.ir or {},
                        spec.positions, source, {})
    node_path()
    # only `verify_exports` runs: the model (and any file it loads) is not needed, and
    # the run's copy of the spec is not where its relative paths start
    namespace = load_program(compiled, builds_model=False)
    try:
        return namespace[API.verify_exports](run_dir)
    except Exception as exc:
        raise export_error(exc, compiled) from None


def _frames(exc: BaseException) -> set[str]:
    names = set()
    tb = exc.__traceback__
    while tb is not None:
        names.add(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names


def _raised_by(exc: BaseException, cls: str) -> bool:
    """Whether a method of a `cls` object (a runtime class, known by its name: the
    vendored runtime's too) is in the exception's traceback."""
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if owner is not None and any(c.__name__ == cls for c in type(owner).__mro__):
            return True
        tb = tb.tb_next
    return False


def versions() -> dict[str, str]:
    from importlib import metadata

    from ..version import __version__

    out = {"python": platform.python_version(), "tfspec": __version__}
    for package in ("tensorflow", "keras", "numpy", "tensorflow-datasets"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out
