"""The training half of the generated program: `train` and `distribute` -> Keras code.

Writes what the spec says: `make_optimizer()`, `compile_model()` (loss, metrics,
XLA, steps per execution), `make_callbacks()` (Keras constructor calls), for the
custom loop `make_metrics()` and `loss_functions()`, then `train()` (seeds,
strategy, the model built and compiled inside the strategy's scope, as the
tf.distribute guide requires, and one call of the spec's loop) and `main()`. The
machinery they call is the runtime's: `training` (the loops, XLA's rule, saving a
run), `distribute` (the strategies) and `backup` (BackgroundBackupAndRestore).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..lang import catalog
from ..lang.ir import escape
from ..lang.transfer import calls
from .data import DataGenerator, adapted_layers
from .export import ExportGenerator
from .pytext import Scope, call_text, py_string
from .writer import CodeWriter

if TYPE_CHECKING:
    from .model import Generator

# Callback arguments that are paths: relative to the spec's folder, like data paths.
PATH_ARGS = {"filepath", "backup_dir", "filename", "log_dir"}


# The sections of a spec that decide what is trained: a backup is resumed only by a run
# whose sections (and params' values, and data files) are those of the run that wrote it.
EXPERIMENT_SECTIONS = ("data", "model", "blocks", "train", "distribute")
# the argument of each data source that names its local files (tfrecord: a glob)
DATA_PATHS = {"npz": "path", "csv": "path", "images": "directory", "text": "directory",
              "tfrecord": "pattern"}


# steps_per_execution where the spec leaves it to tfspec (see steps_per_execution())
_DEFAULT_SPE = 32
_CAPPED = f"min({_DEFAULT_SPE}, batches) if batches > 0 else {_DEFAULT_SPE}"


# Layers XLA speeds up (or leaves alone) on a CPU: measured 1.0-2x the examples/s of
# `fit` for MLPs of Dense layers, where it makes convolutions about 2x slower.
XLA_ON_CPU = frozenset({
    "Dense", "EinsumDense", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout", "Flatten", "Reshape",
    "Permute", "RepeatVector", "Identity", "BatchNormalization", "LayerNormalization",
    "UnitNormalization", "Normalization", "Rescaling", "Add", "Subtract", "Multiply",
    "Average", "Maximum", "Minimum", "Concatenate", "Dot",
})
# the steps a run needs before XLA's compile time (1-2 s on a CPU) pays itself back
XLA_MIN_STEPS = 2000


def _calls(node: Any) -> Iterator[str]:
    """The names of the calls (`Dense(…)`, `L2(…)`…) in an IR node, depth first."""
    return (call["call"] for _, call in calls(node) if isinstance(call["call"], str))


def xla_on_cpu(ir: dict[str, Any]) -> bool:
    """Whether `jit_compile = "auto"` turns XLA on for a long run on a CPU-only machine
    (where Keras's "auto" never does): a model made only of XLA_ON_CPU layers, trained
    in float32 on one device, without `deterministic` (Keras turns XLA off then)."""
    train, distribute = ir.get("train") or {}, ir.get("distribute") or {}
    if (train.get("jit_compile", "auto") != "auto" or train.get("deterministic")
            or train.get("mixed_precision", "float32") != "float32"
            or distribute.get("strategy", "default") not in ("default", "one_device")):
        return False

    layers = []
    for name in _calls([ir.get("model"), ir.get("blocks"), (ir.get("data") or {}).get(
            "preprocess")]):
        entry = catalog.lookup("layers", name)
        if entry is not None:
            layers.append(entry["name"])
        elif not any(catalog.lookup(kind, name) for kind in (
                "initializers", "regularizers", "constraints", "activations")):
            return False  # load_model, TFSMLayer, a module's layer: unknown to XLA
    return bool(layers) and all(name in XLA_ON_CPU for name in layers)


def backup_callback(train: dict[str, Any]) -> int | None:
    """The index of the spec's `BackupAndRestore(…)` among its callbacks, if it has one."""
    for i, call in enumerate(train.get("callbacks") or []):
        if isinstance(call, dict) and call.get("call") == "BackupAndRestore":
            return i
    return None


def _digest(section: Any) -> str:
    """A short digest of a spec section (its IR, as JSON)."""
    text = json.dumps(section, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def backup_pointer(ir: dict[str, Any]) -> str:
    """Where an error of the program's backup (BackgroundBackupAndRestore: a backup of
    another model, a failed write) is reported: at the spec's BackupAndRestore, or at
    `train` for the one tfspec adds."""
    found = backup_callback(ir.get("train") or {})
    return "/train" if found is None else f"/train/callbacks/{found}"


class TrainGenerator:
    def __init__(self, gen: Generator, train: dict[str, Any], distribute: dict[str, Any]):
        self.gen = gen
        self.train = train
        self.distribute = distribute
        self.scope = Scope(values={})
        self.xla_auto = xla_on_cpu(gen.ir)  # "auto" may turn XLA on (xla_pays_off)
        targets = gen.exports()
        self.exports = ExportGenerator(gen, targets) if targets else None

    @property
    def imports(self) -> set[str]:
        """The modules the training half of the program imports."""
        names = {"sys", "runtime:distribute", "runtime:script", "runtime:training"}
        names.add("runtime:backup")  # Experiment, BackgroundBackupAndRestore
        if self.gen.data_by_epoch():
            names.add("runtime:seeds")  # DataEpoch
        if self.train.get("deterministic"):
            names.add("tensorflow")
        return names | (self.exports.imports if self.exports else set())

    @property
    def loop(self) -> str:
        """The loop the program uses: the spec's, except where a strategy rules it out."""
        if self.multi_worker:
            return "custom"  # Keras 3 `fit` fails under it (keras-team/keras#20585)
        return self.train.get("loop", "fit")

    @property
    def multi_worker(self) -> bool:
        return self.distribute.get("strategy") == "multi_worker_mirrored"

    def span(self, key: str, section: str = "train"):
        return self.gen.span(f"/{section}/{escape(key)}")

    def value(self, key: str, default: Any = None) -> str:
        if key not in self.train:
            return self.gen.literal(default)
        return self.gen.value(self.train[key], f"/train/{escape(key)}", self.scope)

    def emit(self, w: CodeWriter, before_main: Callable[[CodeWriter], None] | None = None
             ) -> None:
        """The training half; `before_main` writes what goes between the exports and
        `main()` (the tune section's HyperModel: `codegen/tune.py`)."""
        if self.loop == "custom" or backup_callback(self.train) is None:
            self.checkpoint_dir(w)
        self.experiment(w)
        self.optimizer(w)
        self.compile(w)
        self.callbacks(w)
        if self.loop == "custom":
            self.metric_objects(w)
            self.loss_functions(w)
        self.train_fn(w)
        if self.exports:
            self.exports.emit(w)
        if before_main is not None:
            before_main(w)
        self.main(w)

    def checkpoint_dir(self, w: CodeWriter) -> None:
        """Where the custom loop's tf.train.CheckpointManager (or the added
        BackgroundBackupAndRestore) keeps the last epoch: the spec's BackupAndRestore
        folder, which the custom loop uses instead."""
        found = backup_callback(self.train)
        w.blank(2)
        w.line("# Every epoch is checkpointed here; a killed run, started again, resumes.")
        if found is not None:
            call = self.train["callbacks"][found]
            arg = call.get("args", [None])[0] if call.get("args") else call.get(
                "kwargs", {}).get("backup_dir")
            at = f"/train/callbacks/{found}"
            w.line(f"CHECKPOINT_DIR = str(SPEC_DIR / {self.gen.value(arg, at, self.scope)})",
                   self.gen.span(at))
        else:
            name = self.gen.ir.get("name") or self.gen.ir["model"]["name"]
            w.line(f"CHECKPOINT_DIR = str(SPEC_DIR / \"runs\" / {py_string(name)} / "
                   "\"checkpoints\")")

    def experiment(self, w: CodeWriter) -> None:
        """`experiment()`: what a run is, for its backup (the runtime's
        `backup.Experiment`): digests of the spec's EXPERIMENT_SECTIONS, the params'
        values, the data's local files."""
        ir = self.gen.ir
        digests = [f"{py_string(name)}: {py_string(_digest(ir[name]))}"
                   for name in EXPERIMENT_SECTIONS if name in ir]
        spec = "{" + ", ".join(digests) + "}"
        if len(spec) + 2 > w.width - 2 * 4:  # one section a line
            spec = "{\n" + "".join(f"    {d},\n" for d in digests) + "}"
        args = [spec]
        if self.gen.consts:
            args.append("params={" + ", ".join(f"{py_string(name)}: {const}" for name, const
                                               in self.gen.consts.items()) + "}")
        files = self.data_files()
        if files:
            args.append(f"data={files}")
        w.blank(2)
        w.line("def experiment():")
        with w.indented():
            w.line('"""What this run is: a killed run resumes only from the backup of the '
                   "same spec,")
            w.line('params and data files (their sizes and times)."""')
            w.line(call_text("return backup.Experiment", args, w.width))

    def data_files(self) -> str | None:
        """The local files of the data source, as a Python list (None: it has none)."""
        data = self.gen.ir.get("data") or {}
        source = (data.get("source") or {}).get("call")
        if source not in DATA_PATHS:
            return None  # downloaded, generated: named by the data section alone
        path = DataGenerator(self.gen, data).source_arg(DATA_PATHS[source])
        return (f"sorted(SPEC_DIR.glob({path}))" if source == "tfrecord"
                else f"[SPEC_DIR / {path}]")

    # -- pieces ------------------------------------------------------------------------------

    def strategy(self, w: CodeWriter) -> None:
        """`strategy = distribute.<kind>(…)`: the spec's strategy, its devices and
        communication (the runtime's `distribute` makes it)."""
        kind = self.distribute.get("strategy", "default")
        args = []
        span = self.span("strategy", "distribute") if self.distribute else None
        if kind == "one_device":
            args.append(self.gen.value(self.distribute.get("device", "/cpu:0"),
                                       "/distribute/device", self.scope))
        elif kind == "mirrored" and "devices" in self.distribute:
            args.append(self.gen.value(self.distribute["devices"], "/distribute/devices",
                                       self.scope))
            span = self.span("devices", "distribute")  # a missing device is the error there
        elif kind == "multi_worker_mirrored" and "cluster" in self.distribute:
            args.append(self.gen.value(self.distribute["cluster"].get("worker", []),
                                       "/distribute/cluster/worker", self.scope))
            span = self.span("cluster", "distribute")
        elif kind == "tpu":
            args.append(self.gen.value(self.distribute.get("tpu", ""), "/distribute/tpu",
                                       self.scope))
        comm = self.distribute.get("communication", "auto")
        if kind in ("mirrored", "multi_worker_mirrored") and comm != "auto":
            args.append(f"communication={py_string(comm)}")
        w.line(call_text(f"strategy = distribute.{kind}", args, w.width), span)

    def optimizer(self, w: CodeWriter) -> None:
        gen = self.gen
        opt = self.train.get("optimizer", "adam")
        extra = []
        for key, kwarg in (("clip_norm", "clipnorm"), ("clip_value", "clipvalue"),
                           ("global_clip_norm", "global_clipnorm"),
                           ("accumulate", "gradient_accumulation_steps")):
            if key not in self.train:
                continue
            if key == "accumulate" and (self.train[key] == 1 or self.accumulate()):
                continue  # the custom loop accumulates gradients itself (training.custom)
            extra.append((kwarg, self.value(key)))
        w.blank(2)
        w.line("def make_optimizer():", self.span("optimizer") if "optimizer" in self.train
               else None)
        with w.indented():
            w.line('"""The optimizer, created inside the strategy scope by `compile_model`."""')
            if isinstance(opt, dict) and "ref" in opt:  # a param: its value names the class
                name = gen.value(opt, "/train/optimizer", self.scope)
                config = ", ".join(f"{py_string(k)}: {v}" for k, v in extra)
                text = (f'keras.optimizers.get({{"class_name": {name}, "config": {{{config}}}}})'
                        if extra else f"keras.optimizers.get({name})")
            else:
                if isinstance(opt, str):
                    entry = catalog.lookup("optimizers", opt) or {}
                    call = {"call": entry.get("name") or opt}
                else:
                    call = opt
                text = gen.construct(call, "/train/optimizer", "optimizers", self.scope,
                                     [f"{k}={v}" for k, v in extra], w.width - 7)
            w.line(f"return {text}", self.span("optimizer") if "optimizer" in self.train
                   else None)

    def objective(self, v: Any, at: str, category: str) -> str:
        """A loss or metric: a Keras identifier string, or a constructed object."""
        if isinstance(v, dict) and "call" in v:
            return self.gen.construct(v, at, category, self.scope)
        if isinstance(v, list):
            return "[" + ", ".join(self.objective(x, f"{at}/{i}", category)
                                   for i, x in enumerate(v)) + "]"
        if isinstance(v, dict):
            items = (f"{py_string(k)}: {self.objective(x, f'{at}/{escape(k)}', category)}"
                     for k, x in v.items())
            return "{" + ", ".join(items) + "}"
        return self.gen.value(v, at, self.scope)

    def compile(self, w: CodeWriter) -> None:
        args = ["optimizer=make_optimizer()"]
        if "loss" in self.train:
            args.append("loss=" + self.objective(self.train["loss"], "/train/loss", "losses"))
        if "loss_weights" in self.train:
            weights = self.train["loss_weights"]
            text = self.value("loss_weights") if isinstance(weights, list) else "{" + ", ".join(
                f"{py_string(k)}: "
                f"{self.gen.value(v, f'/train/loss_weights/{escape(k)}', self.scope)}"
                for k, v in weights.items()) + "}"
            args.append(f"loss_weights={text}")
        if "metrics" in self.train:
            args.append("metrics=" + self.objective(self.train["metrics"], "/train/metrics",
                                                    "metrics"))
        jit = self.train.get("jit_compile", "auto")
        if jit != "auto":
            args.append(f"jit_compile={self.value('jit_compile')}")
        elif self.xla_auto:
            args.append(f"jit_compile=training.xla_pays_off(batches * {self.value('epochs', 1)})")
        spe, why = self.steps_per_execution()
        if spe != "1":
            args.append(f"steps_per_execution={spe}")
        w.blank(2)
        span = self.span("loss") if "loss" in self.train else None
        if self.takes_batches():
            w.line("def compile_model(model, batches=-1):", span)
        else:
            w.line("def compile_model(model):", span)
        with w.indented():
            if self.takes_batches():
                w.line('"""`model.compile` as `train` says; `batches`: the training batches '
                       'of an epoch."""')
            else:
                w.line('"""`model.compile` with the loss, metrics and options of `train`."""')
            for line in why:
                w.line(f"# {line}")
            w.line(call_text("model.compile", args, w.width), span)

    def takes_batches(self) -> bool:
        """Whether `compile_model` is told the batches of an epoch (for the steps per
        execution, or for XLA)."""
        return self.steps_per_execution()[0] == _CAPPED or self.xla_auto

    def fixed_int(self, key: str) -> int | None:
        """A `train` option's integer value, when the spec fixes one (directly or by a
        param); None when it is absent or computed."""
        v = self.train.get(key)
        if isinstance(v, dict) and "ref" in v:
            v = self.gen.params.get(v["ref"])
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def steps_per_execution(self) -> tuple[str, list[str]]:
        """`steps_per_execution` as Python, and comment lines that say why.

        The spec's number is Keras's. Unset (or "auto"), it is _DEFAULT_SPE steps per
        call into TensorFlow (fewer round trips from Python: the benchmark's biggest
        win), except where it would change what the program does: Keras calls batch
        hooks once per execution, so a callback that acts on batches keeps 1; and `fit`
        runs whole executions, so with `steps_per_epoch` or `validation_steps` it is a
        divisor of them. Otherwise it is capped by the batches in an epoch (_CAPPED),
        known only when the data is loaded. (And 1 for `fit` under MirroredStrategy,
        which fails with more in Keras 3.15.)"""
        spe = self.train.get("steps_per_execution", "auto")
        if spe != "auto":
            return self.value("steps_per_execution"), []
        if self.loop == "fit" and self.distribute.get("strategy") == "mirrored":
            # Keras 3.15's fit fails with several steps per execution on several replicas
            return "1", ["one step per execution: Keras's fit fails with more on several "
                         "replicas (keras-team/keras#19246)"]
        batchwise = [name for name in (self.batch_callback(call) for call in
                                       self.train.get("callbacks") or []) if name]
        if batchwise:
            return "1", [f"one step per execution: {batchwise[0]} acts after every batch"]
        fixed = [key for key in ("steps_per_epoch", "validation_steps") if key in self.train]
        if not fixed:
            return _CAPPED, [f"{_DEFAULT_SPE} steps per call into TensorFlow (fewer round "
                             "trips), at most an epoch's"]
        counts = [self.fixed_int(key) for key in fixed]
        if None in counts:
            return "1", ["one step per execution: the steps per epoch are computed"]
        spe = max(d for d in range(1, _DEFAULT_SPE + 1) if all(n % d == 0 for n in counts))
        return str(spe), [f"up to {_DEFAULT_SPE} steps per call into TensorFlow, a divisor of "
                          f"{' and '.join(fixed)}", "(Keras runs whole executions)"]

    def batch_callback(self, call: Any) -> str | None:
        """The name of a callback that acts on batches, not only epochs: it needs one
        step per execution to act after every batch. None for an epoch callback."""
        if not isinstance(call, dict) or not isinstance(call.get("call"), str):
            return None
        entry = catalog.lookup("callbacks", call["call"])
        name = (entry or {}).get("name") or call["call"]
        if entry is None or name == "TerminateOnNaN":
            return name  # unknown: assume the worst; TerminateOnNaN checks every batch
        params = [p["name"] for p in entry.get("params", [])]
        given = dict(zip(params, call.get("args", []), strict=False)) | call.get("kwargs", {})
        if name == "LambdaCallback":
            return name if any("batch" in key for key in given) else None
        if "save_freq" in given and given["save_freq"] not in ("epoch", False):
            return name  # saves every so many batches
        if name == "TensorBoard" and (given.get("update_freq", "epoch") != "epoch" or
                                      given.get("profile_batch", 0) not in (0, [0, 0])):
            return name
        return None

    def callbacks(self, w: CodeWriter) -> None:
        gen = self.gen
        calls = self.train.get("callbacks") or []
        w.blank(2)
        w.line("def make_callbacks():", self.span("callbacks") if calls else None)
        with w.indented():
            w.line('"""The callbacks of `train`; their paths are relative to the spec."""')
            if not calls and self.loop == "custom" and not self.gen.data_by_epoch():
                w.line("return []")
                return
            found = backup_callback(self.train)
            w.line("return [")
            with w.indented():
                for i, call in enumerate(calls):
                    at = f"/train/callbacks/{i}"
                    if self.loop == "custom" and found == i:
                        w.line("# BackupAndRestore: the custom loop checkpoints itself "
                               "(CHECKPOINT_DIR)", gen.span(at))
                        continue
                    w.line(self.callback(call, at, w.width - 1) + ",", gen.span(at))
                if self.loop != "custom" and found is None:
                    w.line("# a killed run of the same experiment resumes from it")
                    w.line("backup.BackgroundBackupAndRestore(CHECKPOINT_DIR, "
                           "experiment=experiment()),")
                if self.gen.data_by_epoch():
                    w.line("seeds.DataEpoch(EPOCH),  # the data's order and augmentation")
            w.line("]")

    def callback(self, call: dict[str, Any], at: str, budget: int) -> str:
        """A callback construction, its path arguments placed under SPEC_DIR."""
        gen = self.gen
        entry = catalog.lookup("callbacks", call["call"]) or {}
        params = [p["name"] for p in entry.get("params", [])]
        schedule = self.epoch_schedule(call)
        args = []
        for i, arg in enumerate(call.get("args", [])):
            name = params[i] if i < len(params) else None
            if i == schedule:
                args.append(self.schedule(arg, f"{at}/args/{i}"))
                continue
            text = gen.value(arg, f"{at}/args/{i}", self.scope)
            args.append(f"training.spec_path(SPEC_DIR, {text})"
                        if name in PATH_ARGS and isinstance(arg, str) else text)
        for key, arg in call.get("kwargs", {}).items():
            if key == schedule:
                args.append(f"{key}={self.schedule(arg, f'{at}/kwargs/{escape(key)}')}")
                continue
            text = gen.value(arg, f"{at}/kwargs/{escape(key)}", self.scope)
            if key in PATH_ARGS and isinstance(arg, str):
                text = f"training.spec_path(SPEC_DIR, {text})"
            args.append(f"{key}={text}")
        name = entry.get("name") or call["call"]
        if name == "BackupAndRestore" and self.loop != "custom":
            return call_text("backup.BackgroundBackupAndRestore",
                             [*args, "experiment=experiment()"], budget)
        return call_text(f"keras.callbacks.{name}", args, budget)

    def epoch_schedule(self, call: Any) -> int | str | None:
        """Where a `LearningRateScheduler(ExponentialDecay(…))` has its schedule object
        (the argument's index or keyword): Keras wants a function there, which
        `training.schedule_by_epoch` makes of it. None for any other callback."""
        if not isinstance(call, dict) or call.get("call") != "LearningRateScheduler":
            return None
        args, kwargs = call.get("args", []), call.get("kwargs", {})
        if args and isinstance(args[0], dict) and "call" in args[0]:
            return 0
        if isinstance(kwargs.get("schedule"), dict) and "call" in kwargs["schedule"]:
            return "schedule"
        return None

    def schedule(self, call: dict[str, Any], at: str) -> str:
        text = self.gen.construct(call, at, "schedules", self.scope, budget=60)
        return f"training.schedule_by_epoch({text})"

    def metric_objects(self, w: CodeWriter) -> None:
        """`make_metrics()`: Keras metric objects for the custom loop, which keeps its
        own (one set for training, one for validation)."""
        gen = self.gen
        metrics = self.train.get("metrics") or []
        per_output = isinstance(metrics, dict)
        outputs = gen.model_names("outputs")
        w.blank(2)
        w.line("def make_metrics():", self.span("metrics") if "metrics" in self.train else None)
        with w.indented():
            w.line('"""(output, metric) pairs ("accuracy" as `model.compile` resolves it)."""')
            w.line("return [")
            with w.indented():
                groups = metrics.items() if per_output else [(None, metrics)]
                for output, items in groups:
                    for i, m in enumerate(items):
                        key = (f"/train/metrics/{escape(output)}/{i}" if per_output
                               else f"/train/metrics/{i}")
                        target = output if per_output else (
                            outputs[0] if len(outputs) == 1 else None)
                        w.line(f"({py_string(target) if per_output else 'None'}, "
                               f"{self.metric(m, key, target)}),", gen.span(key))
            w.line("]")

    def metric(self, m: Any, at: str, output: str | None) -> str:
        if isinstance(m, dict) and "call" in m:
            return self.gen.construct(m, at, "metrics", self.scope)
        if m in ("accuracy", "acc"):
            loss = self.gen_loss_name(output)
            cls = ("SparseCategoricalAccuracy" if "sparse" in loss else
                   "CategoricalAccuracy" if "categorical" in loss else
                   "BinaryAccuracy" if "binary" in loss else "Accuracy")
            return f"keras.metrics.{cls}(name={py_string(m)})"
        return f"keras.metrics.get({py_string(m)})"

    def gen_loss_name(self, output: str | None) -> str:
        loss = self.train.get("loss")
        if isinstance(loss, dict) and "call" not in loss:
            loss = loss.get(output or "", "")
        if isinstance(loss, dict):
            return catalog.snake_case(loss.get("call", ""))
        return loss if isinstance(loss, str) else ""

    def loss_functions(self, w: CodeWriter) -> None:
        """`loss_functions()`: per-example losses for the custom loop."""
        gen = self.gen
        loss = self.train.get("loss")
        weights = self.train.get("loss_weights")
        outputs = gen.model_names("outputs")
        table = loss if isinstance(loss, dict) and "call" not in loss else {
            o: loss for o in outputs}
        w.blank(2)
        w.line("def loss_functions():", self.span("loss") if loss is not None else None)
        with w.indented():
            w.line('"""Each output\'s loss, per example (the loop averages over the global '
                   'batch), and weight."""')
            w.line("return {")
            with w.indented():
                for i, (name, v) in enumerate(table.items()):
                    at = f"/train/loss/{escape(name)}" if table is loss else "/train/loss"
                    if isinstance(v, dict) and "call" in v:
                        fn = gen.construct(v, at, "losses", self.scope, ["reduction=None"])
                    else:
                        entry = catalog.lookup("losses", v) or {}
                        fn = f"keras.losses.{entry.get('name') or v}"  # per example already
                        if entry.get("kind") == "class":
                            fn += "(reduction=None)"
                    if isinstance(weights, dict):
                        weight = gen.value(weights.get(name, 1.0),
                                           f"/train/loss_weights/{escape(name)}", self.scope)
                    elif isinstance(weights, list) and i < len(weights):
                        weight = gen.value(weights[i], f"/train/loss_weights/{i}", self.scope)
                    else:
                        weight = "1.0"
                    w.line(f"{py_string(name)}: ({fn}, {weight}),", gen.span(at))
            w.line("}")

    def verbose(self) -> str:
        """`train()`'s and `main()`'s default verbosity: the spec's `verbose`, which a
        caller's argument overrides (`main` passes 0 on a multi-worker job's other workers)."""
        return self.value("verbose", "auto")

    def train_fn(self, w: CodeWriter) -> None:
        w.blank(2)
        w.line(f"def train(verbose={self.verbose()}):", self.gen.span("/train"))
        with w.indented():
            w.line('"""Train as `train { … }` says; returns the model, its history and data."""')
            self.prologue(w)
            self.loop_call(w)
            w.line("return model, history, datasets")

    def prologue(self, w: CodeWriter) -> None:
        """Seeds, precision, strategy, data, and the model built inside the scope."""
        t = self.train
        if "seed" in t:
            w.line(f"keras.utils.set_random_seed({self.value('seed')})", self.span("seed"))
        if t.get("deterministic"):
            w.line("tf.config.experimental.enable_op_determinism()", self.span("deterministic"))
        if t.get("mixed_precision", "float32") != "float32":
            w.line(f"keras.mixed_precision.set_global_policy({self.value('mixed_precision')})",
                   self.span("mixed_precision"))
        self.strategy(w)
        # a data error's line is found upwards from here: `train`, not the strategy
        w.line("splits = load_splits()", self.gen.span("/train") if self.distribute else None)
        w.line("datasets = make_datasets(splits)")
        w.line("with strategy.scope():  # variables are created where the strategy wants")
        with w.indented():
            self.model_lines(w)

    def model_lines(self, w: CodeWriter, splits: str = "splits", datasets: str = "datasets"
                    ) -> None:
        """`model = build_model()`, its data check, adapt and compile (inside the
        strategy's scope): `train()`'s, and each tuning trial's (`codegen/tune.py`)."""
        w.line("model = build_model()")
        w.line(f"check_data(model, {datasets}[\"train\"], LOSSES)")
        if adapted_layers(self.gen):
            w.line("# adapted on the training data as it is: not shuffled, not augmented")
            w.line(f"adapt(model, pipeline({splits}[\"train\"], \"adapt\"))")
        if self.takes_batches():
            w.line("# the optimizer and metrics, in the scope too (told the batches of an "
                   "epoch)")
            w.line(f"compile_model(model, int({datasets}[\"train\"].cardinality()))")
        else:
            w.line("compile_model(model)  # the optimizer and metrics, in the scope too")

    def accumulate(self) -> bool:
        """Whether the custom loop accumulates gradients over several steps."""
        value = self.train.get("accumulate", 1)
        return self.loop == "custom" and value != 1

    def loop_call(self, w: CodeWriter, trial: dict[str, str] | None = None) -> None:
        """`history = training.<loop>(…)`: the spec's loop and its settings. `trial`: a
        tuning trial's (`codegen/tune.py`) names for `return`, the datasets, strategy,
        callbacks, verbose, epochs and checkpoint_dir, which replace `train()`'s."""
        t, loop = self.train, self.loop
        names = {"datasets": "datasets", "strategy": "strategy", "return": "history =",
                 "callbacks": "make_callbacks()", "checkpoint_dir": "CHECKPOINT_DIR",
                 "verbose": "verbose",
                 "epochs": f"epochs={self.value('epochs', 1)}"} | (trial or {})
        args = ["model", names["datasets"]]
        if loop == "custom":
            args += [names["strategy"], "loss_functions()", "make_metrics"]
        args += [names["callbacks"], names["verbose"], names["epochs"]]
        if loop == "custom":
            args += ["outputs=OUTPUTS", f"checkpoint_dir={names['checkpoint_dir']}",
                     "experiment=experiment()"]
        for key in ("steps_per_epoch", "validation_steps"):
            if key in t:
                args.append(f"{key}={self.value(key)}")
        if self.accumulate():
            args.append(f"accumulate={self.value('accumulate')}")
        jit = t.get("jit_compile", "auto")
        if loop == "custom" and (jit is True or self.xla_auto):
            # one replica: XLA compiles the whole step, the update with it (as `fit`
            # does); several: the update synchronises them, so only the passes
            one = self.distribute.get("strategy", "default") in ("default", "one_device")
            args.append(f"xla={py_string('step' if one or jit is not True else 'passes')}")
        # a training error is the loop's: at `epochs` for fit, `loop` for the others
        key = "epochs" if loop == "fit" else "loop"
        span = self.span(key) if key in t else self.gen.span("/train")
        w.line(call_text(f"{names['return']} training.{loop}", args, w.width), span)

    def main(self, w: CodeWriter) -> None:
        w.blank(2)
        w.line(f"def main(run_dir=\".\", verbose={self.verbose()}):")
        with w.indented():
            w.line('"""Train, save the model and metrics, evaluate on the test split'
                   + ('; export, verify."""' if self.exports else '."""'))
            if self.multi_worker:
                w.line("chief = distribute.is_chief()  # only the chief writes the run directory")
                w.line("model, history, datasets = train(verbose if chief else 0)")
                w.line("with distribute.output_dir(run_dir) as where:  # the others: scratch")
                with w.indented():
                    w.line("training.save_run(where, model, history, datasets)")
            else:
                w.line("model, history, datasets = train(verbose)")
                w.line("training.save_run(run_dir, model, history, datasets)")
            if self.exports:
                if self.multi_worker:
                    w.line("if chief:  # one copy of each export")
                    w.level += 1
                w.line("export_all(model, run_dir, datasets)", self.gen.span("/export"))
                w.line("verify_exports(run_dir)", self.gen.span("/export"))
                if self.multi_worker:
                    w.level -= 1
            w.line("return model")
        w.blank(2)
        w.line('if __name__ == "__main__":')
        with w.indented():
            w.line("# python <this file> [RUN_DIR] [--spec-dir DIR]: errors in one line, "
                   "exit status 1")
            w.line("run_dir, SPEC_DIR = script.arguments(SPEC_DIR)")
            w.line("sys.exit(script.run(main, run_dir, SPEC_DIR))")
