"""`tfspec tune FILE`: the spec's `tune { … }` search, run by its own program.

The search runs in a run directory, `<spec folder>/runs/<name>/tune-<timestamp>/`:
the resolved spec, the program, `tune.json` (what was searched, and whether the
search finished) and KerasTuner's state in `search/` (oracle.json, one
`trial_<id>/` per trial). The same command started again after a kill finds the
unfinished search of the same spec there and resumes it: KerasTuner reloads its
state, no finished trial runs again and the interrupted one runs anew.

One line is printed per finished trial (by the program's runtime, `tuning`), then
a table of the best trials, and `<spec>.best.tfspec` is written beside the spec:
the spec with the best values as its params' values (`tfspec run` trains it; its
relative paths still hold there).

`--workers N` runs KerasTuner's distributed mode on this machine: a chief process
(the oracle, KERASTUNER_TUNER_ID=chief) and N workers (tuner0…), all `tfspec tune
FILE --run-dir DIR` with KERASTUNER_ORACLE_IP=127.0.0.1 and a free port, their output
prefixed like `tfspec launch`'s. The chief is stopped once every worker is done
(KerasTuner's chief would poll on for 20 s more). `--dry-run`: two trials of one step
each on synthetic data, in a directory thrown away.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..codegen.program import API, Compiled, compile_result, compile_text
from ..lang.diagnostics import Diagnostics, SpecError
from ..lang.files import write_atomic
from ..lang.formatter import format_spec
from ..lang.missing_files import missing_files
from ..lang.tunespace import Tuning, tuning, with_param_values
from ..lang.validate import Result
from .build import BuildError, build_model, load_program, located_error, quiet_failed_build
from .launch import free_ports, stream_output
from .runner import _restore_global_state, _Tee, new_run_dir, resolved_ir, versions

TUNE_FILE = "tune.json"
BEST_SHOWN = 5  # rows of the final table
DRY_RUN_TRIALS = 2


@dataclass
class Search:
    """A search about to run: the spec, its program and where it runs."""

    spec: str  # the spec file, as given
    result: Result  # the checked spec (the user's file, with --set values)
    tuning: Tuning
    compiled: Compiled
    run_dir: Path
    text: str  # the resolved spec: params with their --set values
    dry_run: bool = False
    resumed: int | None = None  # trials already done when resumed
    argv: list[str] = field(default_factory=list)  # to run again: sets, modules, trials


class Interrupted(Exception):
    """Ctrl-C: the search stopped; `run_dir` resumes it.

    Not a TfspecError: nothing is wrong with the input; `tfspec tune` says how to
    resume and exits 130, as for any Ctrl-C."""

    def __init__(self, run_dir: Path):
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def prepare(path: str, overrides: dict[str, Any], allow_modules: tuple[str, ...] = (),
            dry_run: bool = False, run_dir: str | None = None) -> Search:
    """Check the spec (a located SpecError before any trial), compile its program and
    choose the run directory: `run_dir`, the unfinished search of the same spec, or a
    new one."""
    ir, result = resolved_ir(path, overrides, allow_modules, dry_run)
    found = tuning(result.ir or {})
    if found is None:
        diags = Diagnostics(result.file)
        diags.add("E503", "the spec has no `tune { … }` section: nothing to search",
                  result.positions.value(""),
                  hint="add `tune { objective = …, space { param = Int(…) } }` (docs/tune.md)")
        raise SpecError(diags, result.source)
    missing = missing_files(result.file, result.source, result.ir, result.positions,
                            result.overrides)
    if missing is not None:
        raise missing
    text = format_spec(ir)
    resumed = None
    if dry_run:
        where = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="tfspec-tune-dry-"))
        compiled = compile_text(text, str(where / "spec.tfspec"), allow_modules=allow_modules)
    else:
        compiled = compile_result(result)
        name = ir.get("name") or ir["model"]["name"]
        parent = Path(path).resolve().parent / "runs" / name
        if run_dir:
            where = Path(run_dir)
        elif (unfinished := find_unfinished(parent, text)) is not None:
            where, resumed = unfinished, len(trials(unfinished))
        else:
            where = new_run_dir(parent, "tune-")
    search = Search(path, result, found, compiled, where, text, dry_run, resumed)
    where.mkdir(parents=True, exist_ok=True)
    if not (where / TUNE_FILE).exists():
        (where / "spec.tfspec").write_text(text, encoding="utf-8")
        (where / "program.py").write_text(compiled.source, encoding="utf-8")
        (where / "versions.json").write_text(json.dumps(versions(), indent=2) + "\n")
        write_atomic(where / TUNE_FILE, json.dumps(
            {"spec": text, "state": "running", "dry_run": dry_run}, indent=2) + "\n")
    return search


def find_unfinished(parent: Path, text: str) -> Path | None:
    """The newest search of this very spec (the same resolved text) that did not
    finish, if any."""
    for candidate in sorted(parent.glob("tune-*"), reverse=True):
        try:
            state = json.loads((candidate / TUNE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if state.get("state") == "running" and state.get("spec") == text:
            return candidate
    return None


# -- running it ---------------------------------------------------------------------------


def run_search(search: Search, max_trials: int | None = None) -> None:
    """The search in this process (alone, or as one process of a distributed search)."""
    child = "KERASTUNER_TUNER_ID" in os.environ
    namespace = load_program(search.compiled)
    if not child:
        check_model(search.compiled, namespace)
    if search.dry_run:
        max_trials = DRY_RUN_TRIALS
    log = search.run_dir / (f"log-{os.environ['KERASTUNER_TUNER_ID']}.txt" if child
                            else "log.txt")
    with open(log, "a", encoding="utf-8") as out, redirect_stdout(_Tee(sys.stdout, out)):
        try:
            with quiet_failed_build():
                namespace[API.search](search.run_dir, max_trials=max_trials, verbose=0)
        except KeyboardInterrupt:
            raise Interrupted(search.run_dir) from None
        except RuntimeError as exc:
            if "consecutive failures" not in str(exc):
                raise located_error(exc, search.compiled, "E502", "the search failed") from None
            diags = Diagnostics(search.result.file)
            last = reason_of_last_failure(search.run_dir)
            diags.add("E502", f"the search stopped: {str(exc).splitlines()[0]}"
                      + (f"; the last: {last}" if last else ""),
                      search.result.positions.value("/tune"),
                      hint="fix what the failed trials say, or narrow the space; "
                           "`tfspec tune` again resumes this search")
            raise SpecError(diags, search.result.source) from None
        except Exception as exc:
            raise located_error(exc, search.compiled, "E502", "the search failed") from None
        finally:
            _restore_global_state()


def check_model(compiled: Compiled, namespace: dict[str, Any]) -> None:
    """Build the model once with the spec's own values: a Keras error in the spec
    stops the search before any trial, located like `tfspec compile --check`'s."""
    try:
        build_model(compiled, namespace)
    except BuildError as exc:
        raise SpecError(exc.diagnostics, exc.source) from None


def run_workers(search: Search, workers: int) -> int:
    """A chief and `workers` worker processes on 127.0.0.1; returns the exit status."""
    port = free_ports(1)[0]
    command = [sys.executable, "-m", "tfspec", "tune", search.spec,
               "--run-dir", str(search.run_dir), *search.argv]
    if search.dry_run:
        command.append("--dry-run")
    base = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    lock = threading.Lock()
    chief, threads = None, []
    processes: list[subprocess.Popen] = []
    try:
        for label, tuner_id in [("chief", "chief"),
                                *((i, f"tuner{i}") for i in range(workers))]:
            process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True,
                                       env={**base, "KERASTUNER_TUNER_ID": tuner_id})
            thread = threading.Thread(target=stream_output, args=(label, process, lock),
                                      daemon=True)
            thread.start()
            threads.append(thread)
            if chief is None:
                chief = process
            else:
                processes.append(process)
        while any(p.poll() is None for p in processes):
            if chief.poll() not in (None, 0):
                break  # the oracle is gone: the workers cannot go on
            time.sleep(0.2)
    except KeyboardInterrupt:
        _stop([*processes, *([chief] if chief else [])])
        for thread in threads:
            thread.join(timeout=5)
        raise Interrupted(search.run_dir) from None
    # every worker was told the search is over: the chief's state is saved (it would
    # otherwise poll for 20 s more before it exits)
    assert chief is not None
    _stop([*processes, chief])
    for thread in threads:
        thread.join(timeout=5)
    failed = [p.returncode for p in processes if p.returncode]
    if chief.returncode not in (0, -15, None) and not failed:
        failed = [chief.returncode]
    return failed[0] if failed else 0


def _stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        if p.poll() is None:
            p.terminate()
    for p in processes:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# -- the results ----------------------------------------------------------------------------


def trials(run_dir: Path) -> list[dict[str, Any]]:
    """KerasTuner's record of each trial (search/trial_<id>/trial.json), by id."""
    out = []
    for path in sorted((run_dir / "search").glob("trial_*/trial.json")):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


def reason_of_last_failure(run_dir: Path) -> str | None:
    failed = [t for t in trials(run_dir) if t.get("status") == "FAILED"]
    if not failed:
        return None
    from ..runtime.tuning import reason  # Keras: only a search that ran gets here

    return reason(failed[-1].get("message"))


def best_trials(run_dir: Path, t: Tuning) -> list[dict[str, Any]]:
    done = [x for x in trials(run_dir) if x.get("status") == "COMPLETED"
            and isinstance(x.get("score"), (int, float))]
    return sorted(done, key=lambda x: x["score"], reverse=t.direction == "max")


def values(trial: dict[str, Any], t: Tuning) -> dict[str, Any]:
    """A trial's values of the spec's params (not Hyperband's `tuner/…` bookkeeping)."""
    held = (trial.get("hyperparameters") or {}).get("values") or {}
    return {h.name: held[h.name] for h in t.space if h.name in held}


def table(rows: list[dict[str, Any]], t: Tuning) -> list[str]:
    """The best trials as an aligned table: trial, objective, then each param."""
    head = ["trial", t.objective, *(h.name for h in t.space)]
    cells = [[str(r["trial_id"]), _cell(r["score"]),
              *(_cell(values(r, t).get(h.name, "")) for h in t.space)] for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [head, *cells]]


def _cell(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def best_path(spec: str) -> Path:
    """`<stem>.best.tfspec` (or `.best.tfspec.json`) beside the spec."""
    path = Path(spec)
    for suffix in (".tfspec.json", ".json", ".tfspec"):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)] + ".best" + suffix)
    return path.with_name(path.name + ".best.tfspec")


def finish(search: Search, seconds: float) -> list[str]:
    """The end of a search: the table of its best trials; best.tfspec written (not
    for a dry run); tune.json marked finished. Returns the lines to print."""
    t, records = search.tuning, trials(search.run_dir)
    failed = sum(1 for r in records if r.get("status") == "FAILED")
    best = best_trials(search.run_dir, t)
    lines = [f"search done: {len(records)} trials ({len(best)} completed, {failed} failed) "
             f"in {seconds:.1f} s"]
    if best:
        lines.append(f"best trials by {t.objective} ({t.direction}):")
        lines += ["  " + row for row in table(best[:BEST_SHOWN], t)]
    state = json.loads((search.run_dir / TUNE_FILE).read_text(encoding="utf-8"))
    state["state"] = "finished"
    if best and not search.dry_run:
        chosen = values(best[0], t)
        state["best"] = {"trial": best[0]["trial_id"], "score": best[0]["score"],
                         "values": chosen}
        target = best_path(search.spec)
        json_spec = search.spec.endswith(".json")
        write_atomic(target, with_param_values(search.result.source, chosen, json=json_spec))
        state["best_spec"] = str(target)
    write_atomic(search.run_dir / TUNE_FILE, json.dumps(state, indent=2) + "\n")
    lines.append(f"run directory: {search.run_dir}")
    if best and not search.dry_run:
        lines.append(f"best spec: {state['best_spec']} (`tfspec run {state['best_spec']}` "
                     "trains it)")
    return lines


def tune(path: str, overrides: dict[str, Any], allow_modules: tuple[str, ...] = (), *,
         max_trials: int | None = None, workers: int = 0, dry_run: bool = False,
         run_dir: str | None = None, argv: list[str] | None = None) -> list[str]:
    """`tfspec tune`: run (or resume) the search; returns the closing lines. Raises
    SpecError (located) for a spec error or a search that stopped, Interrupted for
    Ctrl-C. A process of a distributed search (`run_dir` and KERASTUNER_TUNER_ID
    given) runs its part and returns nothing."""
    started = time.time()
    search = prepare(path, overrides, allow_modules, dry_run, run_dir)
    search.argv = list(argv or [])
    if "KERASTUNER_TUNER_ID" in os.environ:
        run_search(search, max_trials)
        return []
    try:
        if search.resumed is not None:
            print(f"resuming the search in {search.run_dir} ({search.resumed} trials "
                  "started)", flush=True)
        if workers:
            check_model(search.compiled, load_program(search.compiled))
            status = run_workers(search, workers)
            if status:
                diags = Diagnostics(search.result.file)
                diags.add("E502", f"a process of the search exited with status {status}",
                          search.result.positions.value("/tune"),
                          hint=f"its output above says why; its log: {search.run_dir}")
                raise SpecError(diags, search.result.source)
        else:
            run_search(search, max_trials)
        return finish(search, time.time() - started)
    finally:
        if dry_run:
            shutil.rmtree(search.run_dir, ignore_errors=True)
