"""`tfspec` on the command line: a thin shell over the public API.

Exit status: 0 clean; 1 the input is wrong — any `TfspecError`, which `main`
catches once and prints (a `SpecError` as located diagnostics) — or `fmt --check`
would change a file; 2 an internal error (any other exception: a bug in tfspec,
one line, never a traceback, unless TFSPEC_DEBUG=1), or a command line argparse
rejects; 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from .codegen.program import Compiled
from .lang.diagnostics import SpecError, TfspecError, render_github, render_json, render_text
from .lang.files import write_atomic
from .lang.formatter import format_spec
from .lang.validate import Result, find_specs, parse_override, validate_file
from .version import __version__

EXIT_OK, EXIT_ERRORS, EXIT_INTERNAL = 0, 1, 2


def _print_diagnostics(results: list[Result], fmt: str, out=None) -> None:
    out = out if out is not None else sys.stdout
    if fmt == "json":
        print(render_json(d for r in results for d in r.diagnostics), file=out)
        return
    for r in results:
        if not len(r.diagnostics):
            continue
        if fmt == "github":
            print(render_github(r.diagnostics), file=out)
        else:
            print(render_text(r.diagnostics, r.source), file=out)
            print(file=out)


def _overrides(pairs: list[str]) -> dict[str, Any]:
    """The `--set NAME=VALUE` options; a malformed one is the user's error (status 1)."""
    out = {}
    for pair in pairs or []:
        try:
            name, value = parse_override(pair)
        except ValueError as exc:
            raise TfspecError(f"--set: {exc}") from None
        out[name] = value
    return out


def cmd_validate(args: argparse.Namespace) -> int:
    overrides = _overrides(args.set)
    files = find_specs(args.paths)
    results = [validate_file(path, overrides, tuple(args.allow_module)) for path in files]
    if args.shapes:  # Keras builds each model that checks clean: errors at the layer
        from .inspect.shapes import check_shapes

        for result in results:
            if result.ok:
                result.diagnostics.extend(check_shapes(result))
    _print_diagnostics(results, args.format)
    errors = sum(1 for r in results for d in r.diagnostics if d.is_error)
    warnings = sum(1 for r in results for d in r.diagnostics if not d.is_error)
    if args.format == "text":
        word = "spec" if len(files) == 1 else "specs"
        print(f"checked {len(files)} {word}: {errors} error{'s' * (errors != 1)}, "
              f"{warnings} warning{'s' * (warnings != 1)}", file=sys.stderr)
    if not files:
        print("tfspec: no *.tfspec or *.tfspec.json files found", file=sys.stderr)
        return EXIT_ERRORS
    failed = errors or (args.strict and warnings)
    return EXIT_ERRORS if failed else EXIT_OK


def _readable(result: Result) -> bool:
    """Whether `fmt`/`convert` may print this spec: it parses and fits the schema."""
    return result.ir is not None and not any(
        d.is_error and d.code[:2] in ("E1", "E2") for d in result.diagnostics
    )


def render(ir: dict[str, Any], to_json: bool) -> str:
    if to_json:
        return json.dumps(ir, indent=2, ensure_ascii=False) + "\n"
    return format_spec(ir)


def cmd_fmt(args: argparse.Namespace) -> int:
    """Rewrite specs in canonical form, keeping each file's line endings (the first
    one's, where lines end differently) and its byte-order mark."""
    status = EXIT_OK
    for path in find_specs(args.paths):
        result = validate_file(path)
        if not _readable(result):
            _print_diagnostics([result], "text", sys.stderr)
            status = EXIT_ERRORS
            continue
        new = render(result.ir, str(path).endswith(".json"))
        if new == result.source and not result.layout.mixed:
            continue
        if args.check or args.diff:
            status = EXIT_ERRORS
            why = " (its lines end differently)" if new == result.source else ""
            print(f"would reformat {path}{why}")
            if args.diff:
                sys.stdout.writelines(difflib.unified_diff(
                    result.source.splitlines(True), new.splitlines(True),
                    f"{path}", f"{path} (formatted)"))
        else:
            write_atomic(path, result.layout.apply(new))
            print(f"reformatted {path}")
    return status


def cmd_convert(args: argparse.Namespace) -> int:
    result = validate_file(args.input)
    if not _readable(result):
        _print_diagnostics([result], "text", sys.stderr)
        return EXIT_ERRORS
    to_json = args.to == "json" if args.to else not args.input.endswith(".json")
    text = render(result.ir, to_json)
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _report(error: TfspecError, fmt: str) -> None:
    """Print an error of the input: a `SpecError`'s diagnostics in the command's
    `--format` (text on stderr, after its `preface` on stdout; JSON or GitHub
    annotations on stdout), any other `TfspecError` as its one line on stderr."""
    if not isinstance(error, SpecError):
        print(f"{error.cli_prefix}{error}", file=sys.stderr)
        return
    if fmt == "json":
        print(json.dumps(error.to_json(), indent=2))
    elif fmt == "github":
        print(render_github(error.diagnostics))
    else:
        sys.stdout.write(error.preface())
        sys.stdout.flush()  # the rows before the diagnostics, when both go to a terminal
        print(render_text(error.diagnostics, error.source), file=sys.stderr)
    run_dir = getattr(error, "run_dir", None)  # set by jobs.runner on a run that failed
    if run_dir is not None:  # what it trained, each export's check, where it is
        from .jobs.runner import summary

        for line in summary(run_dir, failed=True):
            print(line, file=sys.stderr)


def _compile(args: argparse.Namespace) -> Compiled:
    from .codegen.program import compile_file

    return compile_file(args.spec, _overrides(args.set), tuple(args.allow_module))


def cmd_compile(args: argparse.Namespace) -> int:
    from .codegen.program import compile_file
    from .codegen.standalone import program_name, write_standalone

    if args.standalone and not args.output:
        raise TfspecError("--standalone writes a folder: name it with -o DIR")
    program = (os.path.join(args.output, program_name(args.spec)) if args.standalone
               else args.output)
    compiled = compile_file(args.spec, _overrides(args.set), tuple(args.allow_module),
                            program_path=program, standalone=args.standalone)
    if args.check:
        from .jobs.build import build_model

        build_model(compiled)
    if args.standalone:
        for path in write_standalone(compiled, args.output):
            print(f"wrote {path}", file=sys.stderr)
    elif args.output:
        write_atomic(args.output, compiled.source)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(compiled.source)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    """The plan; with `--target`, then whether the untrained model converts."""
    from .inspect.plan import PlanError, analyze, plan_from
    from .inspect.plan import render_text as render_plan

    try:
        analysis = analyze(_compile(args))
    except PlanError as exc:  # `main` prints the layers Keras built, then the E500
        exc.hint_at_rows()
        raise
    result = plan_from(analysis)
    if not args.target:
        print(json.dumps(result, indent=2) if args.format == "json" else render_plan(result))
        return EXIT_OK
    from .inspect.convertcheck import check_targets

    report = check_targets(analysis, args.target)
    error = report.error()
    if args.format == "json":
        if error is not None:
            raise error
        print(json.dumps({**result, "targets": report.to_json()}, indent=2))
        return EXIT_OK
    print(render_plan(result) + report.render_text())
    if error is not None:
        raise error
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from .inspect.graph import write_graph

    if not args.output.endswith((".dot", ".svg", ".png")):
        raise TfspecError(f"-o must end in .dot, .svg or .png. Received: {args.output}")
    written = write_graph(_compile(args), args.output)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from .inspect.importer import import_to_text

    text = import_to_text(args.model)
    if args.output:
        write_atomic(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                   help="override a param, type-checked against its declaration")
    p.add_argument("--allow-module", action="append", metavar="MODULE", default=[],
                   help="let a generator(\"MODULE:function\") source import MODULE")


def cmd_run(args: argparse.Namespace) -> int:
    # `plan --target`'s check before training: jobs may not import inspect, so the
    # command line, which may import both, hands it to the runner
    from .inspect.convertcheck import check_exports_apart
    from .jobs.runner import run, summary

    run_dir = run(args.spec, _overrides(args.set), tuple(args.allow_module), args.dry_run,
                  run_dir=args.run_dir, check_exports=check_exports_apart)
    if args.dry_run:
        print("dry run passed: one training step on synthetic data", file=sys.stderr)
    else:
        print("\n".join(summary(run_dir)), file=sys.stderr)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from .jobs.runner import export_run

    run_dir = export_run(args.spec, args.from_dir, _overrides(args.set),
                         tuple(args.allow_module))
    print(f"exported and verified: {run_dir / 'verify.json'}", file=sys.stderr)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from .jobs.runner import verify_run

    report = verify_run(args.run_dir)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    return EXIT_OK


_TFJOB_OPTIONS = (("--image", "image"), ("--namespace", "namespace"), ("--name", "name"),
                  ("--cpus", "cpus"), ("--memory", "memory"), ("--gpus", "gpus"),
                  ("--storage", "storage"), ("-o", "output"))


def _emit_tfjob(args: argparse.Namespace) -> int:
    """`launch --emit tfjob`: write the manifests (text; no TensorFlow needed)."""
    from .jobs.tfjob import emit

    if getattr(args, "on", None):
        raise TfspecError(f"--emit tfjob writes a manifest; it cannot run --on {args.on}")
    if not args.image:
        print("usage: tfspec launch FILE --emit tfjob --image IMAGE [--workers N] …\n"
              "tfspec launch: error: --emit tfjob needs --image IMAGE (an image with "
              f"tfspec installed: {INSTALL_TF})", file=sys.stderr)
        return 2  # a usage error, as argparse's
    return emit(args.spec, image=args.image, workers=args.workers, sets=args.set,
                allow_modules=args.allow_module, namespace=args.namespace or "default",
                cpus=args.cpus, memory=args.memory, gpus=args.gpus, storage=args.storage,
                name=args.name, output=args.output)


def cmd_launch(args: argparse.Namespace) -> int:
    from .jobs.launch import launch

    ray_options = [f"--{name.replace('_', '-')}" for name in
                   ("address", "cpus_per_worker", "gpus_per_worker", "max_failures")
                   if getattr(args, name) is not None]
    if ray_options and args.on != "ray":
        raise TfspecError(f"{', '.join(ray_options)} needs --on ray")
    if args.emit == "tfjob":
        return _emit_tfjob(args)
    tfjob_options = [flag for flag, name in _TFJOB_OPTIONS if getattr(args, name) is not None]
    if tfjob_options:
        raise TfspecError(f"{', '.join(tfjob_options)} needs --emit tfjob")
    if args.on == "ray":
        from .jobs.ray import RayOptions, launch_on_ray

        options = RayOptions(args.workers, args.address, args.cpus_per_worker or 1.0,
                             args.gpus_per_worker or 0.0, args.max_failures or 0)
        return launch_on_ray(args.spec, options, args.set, args.allow_module)
    return launch(args.spec, args.workers, args.set, args.allow_module)


def cmd_data(args: argparse.Namespace) -> int:
    from .inspect.dataview import preview
    from .inspect.dataview import render_text as render_data

    view = preview(_compile(args), args.examples)
    print(json.dumps(view, indent=2) if args.format == "json" else render_data(view))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from .serving.server import serve

    serve(args.path, host=args.host, port=args.port, name=args.name)
    return EXIT_OK  # stopped with Ctrl-C or SIGTERM


def cmd_lsp(args: argparse.Namespace) -> int:
    try:
        from .lsp.server import main as serve_lsp
    except ModuleNotFoundError as exc:
        if exc.name not in ("pygls", "lsprotocol"):
            raise
        print(f'tfspec: error: `tfspec lsp` needs {exc.name}: pip install "tfspec[lsp]"',
              file=sys.stderr)
        return EXIT_ERRORS
    serve_lsp()
    return EXIT_OK


def cmd_tune(args: argparse.Namespace) -> int:
    from .jobs.tune import Interrupted, tune

    try:  # (a module set to None in sys.modules, Python's way to block it, raises)
        missing = importlib.util.find_spec("keras_tuner") is None
    except ValueError:
        missing = True
    if missing:
        raise TfspecError('`tfspec tune` needs KerasTuner: pip install "tfspec[tune]"')
    if args.workers < 0 or (args.max_trials is not None and args.max_trials < 1):
        raise TfspecError("--workers must be 0 or more, --max-trials 1 or more")
    # what a worker process, or the same search resumed, is started with
    argv = [x for pair in args.set for x in ("--set", pair)]
    argv += [x for module in args.allow_module for x in ("--allow-module", module)]
    argv += ["--max-trials", str(args.max_trials)] if args.max_trials else []
    try:
        lines = tune(args.spec, _overrides(args.set), tuple(args.allow_module),
                     max_trials=args.max_trials, workers=args.workers, dry_run=args.dry_run,
                     run_dir=args.run_dir, argv=argv)
    except Interrupted as stop:  # not an error: how to resume (a TfspecError goes to main)
        if "KERASTUNER_TUNER_ID" not in os.environ:  # the parent says it, once
            again = " ".join(["tfspec tune", args.spec, *argv] +
                             (["--workers", str(args.workers)] if args.workers else []))
            print(f"\ninterrupted: the search is saved in {stop.run_dir}; `{again}` "
                  "resumes it", file=sys.stderr)
        return 130
    for line in lines:
        print(line, file=sys.stderr if line.startswith(("run directory", "best spec"))
              else sys.stdout)
    if args.dry_run and lines:
        print("dry run passed: two trials of one step on synthetic data", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfspec",
        description="Validate, format and compile declarative TensorFlow model specs.",
    )
    parser.add_argument("--version", action="version", version=f"tfspec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.set_defaults(needs_tf=False)

    p = sub.add_parser("validate", help="check specs (no TensorFlow import)",
                       description="Check spec files, or every *.tfspec / *.tfspec.json "
                                   "under the given directories.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=("text", "json", "github"), default="text",
                   help="how to print diagnostics (github: Actions annotations)")
    _add_set(p)
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument("--shapes", action="store_true",
                   help="also build each model with Keras (no data) and report the layer it "
                        "cannot build, as `compile --check` does (needs TensorFlow)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("fmt", help="rewrite specs in canonical form",
                       description="Rewrite specs in canonical form, keeping comments.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 if a file would be reformatted")
    p.add_argument("--diff", action="store_true", help="print the changes instead of writing")
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser("convert", help="convert a spec between .tfspec and JSON",
                       description="Convert losslessly between the DSL and the JSON form.")
    p.add_argument("input", metavar="IN")
    p.add_argument("--to", choices=("json", "tfspec"),
                   help="target syntax (default: the other one)")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("compile", help="write the Keras program of a spec",
                       description="Generate the standalone Keras program of a spec "
                                   "(no TensorFlow import unless --check).")
    p.add_argument("spec", metavar="FILE")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    p.add_argument("--check", action="store_true",
                   help="also build the model, reporting Keras errors at the spec")
    p.add_argument("--standalone", action="store_true",
                   help="write the program into the folder -o DIR with a copy of the "
                        "tfspec runtime it uses, to run where tfspec is not installed")
    _add_set(p)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("plan", help="build the model and show shapes, params and FLOPs",
                       description="Build the model (no data, no training) and print per "
                                   "layer: output shape, dtype, params, FLOPs, spec line.")
    p.add_argument("spec", metavar="FILE")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--target", action="append", choices=("tflite", "tfjs", "onnx"), default=[],
                   help="also convert the untrained model to TensorFlow Lite, TF.js or ONNX "
                        "and report the layers that will not convert (repeatable)")
    _add_set(p)
    p.set_defaults(func=cmd_plan, needs_tf=True)

    p = sub.add_parser("run", help="compile the spec and train it",
                       description="Compile the spec and execute the program in a run "
                                   "directory (runs/<name>/<timestamp>/ beside the spec).")
    p.add_argument("spec", metavar="FILE")
    p.add_argument("--dry-run", action="store_true",
                   help="one step on synthetic data, written to a throw-away directory")
    p.add_argument("--run-dir", metavar="DIR",
                   help="use this run directory (workers of one `launch` share it)")
    _add_set(p)
    p.set_defaults(func=cmd_run, needs_tf=True)

    p = sub.add_parser("export", help="export a trained run again, and verify it",
                       description="Write the spec's export targets from the model a run "
                                   "saved (RUN_DIR/model.keras), without training, then "
                                   "verify each in its runtime.")
    p.add_argument("spec", metavar="FILE")
    p.add_argument("--from", dest="from_dir", metavar="RUN_DIR", required=True,
                   help="the run directory whose model is exported")
    _add_set(p)
    p.set_defaults(func=cmd_export, needs_tf=True)

    p = sub.add_parser("verify", help="check a run's exports against its Keras model",
                       description="Load each export of a run in its own runtime (TF, "
                                   "LiteRT, TF.js in Node.js, onnxruntime), run the run's "
                                   "fixed batch and compare with the Keras model's answers; "
                                   "writes RUN_DIR/verify.json.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: print the report (verify.json) on stdout")
    p.set_defaults(func=cmd_verify, needs_tf=True)

    p = sub.add_parser("launch", help="train on N local worker processes",
                       description="Start N worker processes on 127.0.0.1, each with its "
                                   "TF_CONFIG, for multi_worker_mirrored training; their "
                                   "output is streamed with a [worker i] prefix.")
    p.add_argument("spec", metavar="FILE")
    p.add_argument("--workers", type=int, default=2, metavar="N")
    p.add_argument("--on", choices=("ray",),
                   help="ray: on Ray Train workers (tfspec[ray]), in a Ray instance started "
                        "for the job, or in the cluster at --address (docs/cluster.md)")
    p.add_argument("--address", metavar="ADDR",
                   help="join this Ray cluster (its head's HOST:PORT, or ray://HOST:PORT)")
    p.add_argument("--cpus-per-worker", type=float, metavar="C", help="default 1")
    p.add_argument("--gpus-per-worker", type=float, metavar="G", help="default 0")
    p.add_argument("--max-failures", type=int, metavar="K",
                   help="restart the workers up to K times after a failure (-1: always); "
                        "training resumes from the last epoch's checkpoint (default 0)")
    p.add_argument("--emit", choices=("tfjob",),
                   help="tfjob: write a Kubeflow TFJob and its ConfigMap instead of training "
                        "(docs/cluster.md)")
    p.add_argument("--image", help="tfjob: the container image (tfspec installed)")
    p.add_argument("--namespace", help="tfjob: default 'default'")
    p.add_argument("--name", help="tfjob: the job's name (default: the spec's, as DNS-1035)")
    p.add_argument("--cpus", metavar="C", help="tfjob: CPUs per replica (e.g. 4, 500m)")
    p.add_argument("--memory", metavar="M", help="tfjob: memory per replica (e.g. 8Gi)")
    p.add_argument("--gpus", type=int, metavar="G", help="tfjob: GPUs per replica")
    p.add_argument("--storage", metavar="PVC", help="tfjob: the PersistentVolumeClaim "
                                                     "mounted at /workspace in every replica")
    p.add_argument("-o", "--output", metavar="FILE", help="tfjob: write here (else stdout)")
    _add_set(p)
    p.set_defaults(func=cmd_launch, needs_tf=True)

    p = sub.add_parser("tune", help="search the params of `tune { … }` (KerasTuner)",
                       description="Run the spec's `tune` search in runs/<name>/tune-<time>/ "
                                   "(the same command resumes an unfinished one), print a "
                                   "line per trial and the best, and write <spec>.best.tfspec "
                                   "with the best values.")
    p.add_argument("spec", metavar="FILE")
    p.add_argument("--max-trials", type=int, metavar="N", help="override `tune`'s max_trials")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="KerasTuner's distributed mode: a chief and N worker processes")
    p.add_argument("--dry-run", action="store_true",
                   help="two trials of one step each on synthetic data (for CI)")
    p.add_argument("--run-dir", metavar="DIR",
                   help="use this run directory (the processes of one distributed search, "
                        "or a search to resume)")
    _add_set(p)
    p.set_defaults(func=cmd_tune, needs_tf=True)

    p = sub.add_parser("data", help="preview the data: element spec, sizes, examples",
                       description="Load the spec's data as the program would, check it "
                                   "against the model (no training) and show what it holds.")
    p.add_argument("spec", metavar="FILE")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--examples", type=int, default=3, help="training examples to show")
    _add_set(p)
    p.set_defaults(func=cmd_data, needs_tf=True)

    p = sub.add_parser("graph", help="draw the model graph (DOT, SVG or PNG)",
                       description="Draw the model graph; SVG and PNG need Graphviz.")
    p.add_argument("spec", metavar="FILE")
    p.add_argument("-o", "--output", metavar="OUT", required=True,
                   help="out.dot, out.svg or out.png")
    _add_set(p)
    p.set_defaults(func=cmd_graph, needs_tf=True)

    p = sub.add_parser("import", help="turn a Keras model into a spec",
                       description="Write the spec of a Sequential or Functional Keras "
                                   "model (.keras file or config.json).")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("serve", help="serve a SavedModel export with TF Serving's REST API",
                       description="Serve a SavedModel export over TensorFlow Serving's REST "
                                   "API (/v1/models/NAME[:predict|/metadata]). PATH: a base "
                                   "directory <base>/<version>/saved_model.pb, one SavedModel, "
                                   "or a run directory with exports.json.")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--port", type=int, default=8501,
                   help="TCP port (default 8501, TF Serving's; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--name", help="the model's name in URLs (default: the spec's name, "
                                  "recorded with the export, else the folder's name)")
    p.set_defaults(func=cmd_serve, needs_tf=True)

    p = sub.add_parser("lsp", help="the language server for editors (LSP over stdio)",
                       description="Serve the Language Server Protocol over stdin/stdout "
                                   "for .tfspec and .tfspec.json documents (docs/lsp.md).")
    p.add_argument("--stdio", action="store_true",
                   help="use stdin/stdout (the default; editors' clients pass it)")
    p.set_defaults(func=cmd_lsp)
    return parser


# what `pip install "tfspec[tf]"` adds to the light core
TF_STACK = ("tensorflow", "keras")
INSTALL_TF = 'pip install "tfspec[tf]"'


def needs_tensorflow(args: argparse.Namespace) -> bool:
    """Whether the command builds, trains, exports or serves a model (the light core
    install checks, formats, converts and compiles specs without TensorFlow)."""
    if getattr(args, "emit", None):  # `launch --emit tfjob` writes text
        return False
    return args.needs_tf or (args.command == "compile" and args.check) or (
        args.command == "validate" and args.shapes)


def missing_tensorflow() -> str | None:
    """The first module of the TensorFlow stack that is not installed, if any."""
    return next((m for m in TF_STACK if importlib.util.find_spec(m) is None), None)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    if needs_tensorflow(args) and (module := missing_tensorflow()):
        print(f"tfspec: error: `tfspec {args.command}` needs TensorFlow ({module} is not "
              f"installed): {INSTALL_TF}", file=sys.stderr)
        return EXIT_ERRORS
    try:
        return func(args)
    except TfspecError as exc:  # the input is wrong: the one place it is printed
        _report(exc, getattr(args, "format", "text"))
        return EXIT_ERRORS
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except ModuleNotFoundError as exc:
        if exc.name not in TF_STACK or os.environ.get("TFSPEC_DEBUG"):
            raise
        # a path that needs TensorFlow without its command saying so
        print(f"tfspec: error: this needs TensorFlow ({exc.name} is not installed): "
              f"{INSTALL_TF}", file=sys.stderr)
        return EXIT_ERRORS
    except Exception as exc:  # a bug in tfspec, not in the spec
        if os.environ.get("TFSPEC_DEBUG"):
            raise
        print(f"tfspec: internal error: {type(exc).__name__}: {exc} "
              "(set TFSPEC_DEBUG=1 for a traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def run() -> None:
    sys.exit(main())


__all__ = ["main", "run", "build_parser"]
