"""The training half of the generated program: `train` and `distribute` -> Keras code.

Writes `make_strategy()`, `make_optimizer()`, `compile_model()`,
`make_callbacks()`, `train()` and `main()`. The loop is `model.fit` inside the
strategy's scope, with variables (model, optimizer, metrics) created there, as
the tf.distribute guide requires.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..lang import catalog
from ..lang.located import escape
from ..lang.transfer import calls
from .export import ExportGenerator
from .pytext import Scope, call_text, py_string, snake
from .writer import CodeWriter

if TYPE_CHECKING:
    from .model import Generator

# Callback arguments that are paths: relative to the spec's folder, like data paths.
PATH_ARGS = {"filepath", "backup_dir", "filename", "log_dir"}
_STRATEGIES = {
    "default": "tf.distribute.get_strategy()",
    "one_device": "tf.distribute.OneDeviceStrategy({device})",
    "mirrored": "tf.distribute.MirroredStrategy({devices})",
}
_ALL_REDUCE = {"nccl": "tf.distribute.NcclAllReduce()",
               "ring": "tf.distribute.HierarchicalCopyAllReduce()"}


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


# The `fit` and `on_batch` loops' BackupAndRestore (see TrainGenerator.backup_class).
_BACKUP_CLASS = '''
class BackgroundBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, written in the background. When an epoch ends (or
    every `save_freq` batches) the variables of the model (seed generators included)
    and of the optimizer are copied, and a thread writes the copy to `backup.npz` while
    training goes on; the file is replaced whole, so a kill leaves the last backup."""

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__(backup_dir, save_freq, double_checkpoint, delete_checkpoint)
        self.path = pathlib.Path(backup_dir) / "backup.npz"
        self.writer = self.writing = None

    def state(self):
        return self.model.variables + self.model.optimizer.variables

    def on_train_begin(self, logs=None):
        self.writer = concurrent.futures.ThreadPoolExecutor(1)  # its thread, until the end
        if not self.path.exists():
            return
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        with np.load(self.path) as saved:
            values = [saved[f"v{i}"] for i in range(len(saved.files) - 1)]
            epoch = int(saved["epoch"])
        variables = self.state()
        if [v.shape for v in values] != [tuple(v.shape) for v in variables]:
            raise ValueError(f"{self.path} is the backup of another model: delete it to "
                             "train this one from the start")
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        self.model._initial_epoch = epoch  # where fit starts, as Keras's callback does
        self._current_epoch = epoch  # what a backup within the first epoch records

    def _save_model(self):  # Keras calls it when a backup is due
        values = [variable.numpy() for variable in self.state()]  # a copy, now
        self.wait()  # one write at a time
        self.writing = self.writer.submit(self.write, values, self._current_epoch)

    def write(self, values, epoch):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        with open(scratch, "wb") as file:
            np.savez(file, epoch=epoch, **{f"v{i}": value for i, value in enumerate(values)})
        os.replace(scratch, self.path)

    def wait(self):
        if self.writing is not None:
            self.writing.result()  # raises what the write raised

    def on_train_end(self, logs=None):
        self.writer.shutdown()  # the last write is done
        self.wait()
        super().on_train_end(logs)  # deletes the backup if delete_checkpoint
'''


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
        names = {"json", "sys"}
        if self.loop == "custom":
            names.add("shutil")
        else:
            names |= {"concurrent.futures", "numpy", "os"}  # BackgroundBackupAndRestore
        if self.multi_worker:
            names |= {"os", "tempfile"}
        return names | (self.exports.imports if self.exports else set())

    @property
    def loop(self) -> str:
        """The loop the program uses: the spec's, except where a strategy rules it out."""
        if self.distribute.get("strategy") == "multi_worker_mirrored":
            return "custom"  # Keras 3 `fit` fails under it (keras-team/keras#20585)
        return self.train.get("loop", "fit")

    def span(self, key: str, section: str = "train"):
        return self.gen.span(f"/{section}/{escape(key)}")

    def value(self, key: str, default: Any = None) -> str:
        if key not in self.train:
            return self.gen.literal(default)
        return self.gen.value(self.train[key], f"/train/{escape(key)}", self.scope)

    def emit(self, w: CodeWriter) -> None:
        if self.loop == "custom" or self.backup() is None:
            self.checkpoint_dir(w)
        self.strategy(w)
        self.optimizer(w)
        self.compile(w)
        self.callbacks(w)
        self.train_fn(w)
        if self.exports:
            self.exports.emit(w)
        self.main(w)

    def backup(self) -> tuple[int, dict[str, Any]] | None:
        for i, call in enumerate(self.train.get("callbacks") or []):
            if isinstance(call, dict) and call.get("call") == "BackupAndRestore":
                return i, call
        return None

    def checkpoint_dir(self, w: CodeWriter) -> None:
        """Where the custom loop's tf.train.CheckpointManager keeps the last epoch:
        the spec's BackupAndRestore folder, which that loop uses instead."""
        found = self.backup()
        w.blank(2)
        w.line("# Every epoch is checkpointed here; a killed run, started again, resumes.")
        if found:
            i, call = found
            arg = call.get("args", [None])[0] if call.get("args") else call.get(
                "kwargs", {}).get("backup_dir")
            at = f"/train/callbacks/{i}"
            w.line(f"CHECKPOINT_DIR = str(SPEC_DIR / {self.gen.value(arg, at, self.scope)})",
                   self.gen.span(at))
        else:
            name = self.gen.ir.get("name") or self.gen.ir["model"]["name"]
            w.line(f"CHECKPOINT_DIR = str(SPEC_DIR / \"runs\" / {py_string(name)} / "
                   "\"checkpoints\")")

    # -- pieces ------------------------------------------------------------------------------

    def strategy(self, w: CodeWriter) -> None:
        kind = self.distribute.get("strategy", "default")
        w.blank(2)
        w.line("def make_strategy():", self.span("strategy", "distribute"))
        with w.indented():
            w.line(f'"""`{kind}` distribution: where variables live and steps run."""')
            if kind == "one_device":
                device = self.gen.value(self.distribute.get("device", "/cpu:0"),
                                        "/distribute/device", self.scope)
                w.line(f"return {_STRATEGIES[kind].format(device=device)}")
            elif kind == "mirrored":
                args = []
                if "devices" in self.distribute:
                    devices = self.gen.value(self.distribute["devices"], "/distribute/devices",
                                             self.scope)
                    w.line(f"devices = {devices}", self.span("devices", "distribute"))
                    w.line("cpus = [d for d in devices if d.lower().startswith(\"/cpu:\")]")
                    w.line("if len(cpus) > 1:  # split the CPU into that many logical devices")
                    with w.indented():
                        w.line("try:")
                        with w.indented():
                            w.line("tf.config.set_logical_device_configuration(")
                            with w.indented():
                                w.line("tf.config.list_physical_devices(\"CPU\")[0],")
                                w.line("[tf.config.LogicalDeviceConfiguration()] * len(cpus),")
                            w.line(")")
                        w.line("except RuntimeError:  # TensorFlow has started: too late")
                        with w.indented():
                            w.line("pass")
                    w.line("# a missing device would make training wait forever: say so now")
                    w.line("here = {d.name.lower().replace(\"/device:\", \"/\") "
                           "for d in tf.config.list_logical_devices()}")
                    w.line("missing = [d for d in devices if d.lower() not in here]")
                    w.line("if missing:")
                    with w.indented():
                        w.line("raise ValueError(f\"no device {missing} on this machine; it has "
                               "{sorted(here)}\")")
                    args.append("devices=devices")
                comm = self.distribute.get("communication", "auto")
                if comm in _ALL_REDUCE:
                    args.append(f"cross_device_ops={_ALL_REDUCE[comm]}")
                w.line("return " + call_text("tf.distribute.MirroredStrategy", args,
                                             w.width - 7))
            elif kind == "multi_worker_mirrored":
                w.line("# the cluster comes from TF_CONFIG (set by `tfspec launch`, or per host)")
                if "cluster" in self.distribute:
                    cluster = self.gen.value(self.distribute["cluster"].get("worker", []),
                                             "/distribute/cluster/worker", self.scope)
                    w.line("os.environ.setdefault(\"TF_CONFIG\", json.dumps({", self.span(
                        "cluster", "distribute"))
                    with w.indented():
                        w.line(f"\"cluster\": {{\"worker\": {cluster}}},")
                        w.line("\"task\": {\"type\": \"worker\", \"index\": "
                               "int(os.environ.get(\"TFSPEC_WORKER\", \"0\"))},")
                    w.line("}))")
                comm = self.distribute.get("communication", "auto")
                impl = {"ring": "RING", "nccl": "NCCL"}.get(comm, "AUTO")
                w.line("options = tf.distribute.experimental.CommunicationOptions(")
                with w.indented():
                    w.line(f"implementation=tf.distribute.experimental."
                           f"CommunicationImplementation.{impl},")
                w.line(")")
                w.line("return tf.distribute.MultiWorkerMirroredStrategy("
                       "communication_options=options)")
            elif kind == "tpu":
                tpu = self.gen.value(self.distribute.get("tpu", ""), "/distribute/tpu",
                                     self.scope)
                w.line(f"resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu={tpu})")
                w.line("tf.config.experimental_connect_to_cluster(resolver)")
                w.line("tf.tpu.experimental.initialize_tpu_system(resolver)")
                w.line("return tf.distribute.TPUStrategy(resolver)")
            else:  # default
                w.line("return tf.distribute.get_strategy()")

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
                continue  # the custom loop accumulates gradients itself (see train())
            extra.append(f"{kwarg}={self.value(key)}")
        w.blank(2)
        w.line("def make_optimizer():", self.span("optimizer") if "optimizer" in self.train
               else None)
        with w.indented():
            w.line('"""The optimizer, created inside the strategy scope by `compile_model`."""')
            if isinstance(opt, str):
                entry = catalog.lookup("optimizers", opt) or {}
                call = {"call": entry.get("name") or opt}
            else:
                call = opt
            text = gen.construct(call, "/train/optimizer", "optimizers", self.scope, extra,
                                 w.width - 7)
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
            args.append(f"jit_compile=xla_pays_off(batches * {self.value('epochs', 1)})")
        spe, why = self.steps_per_execution()
        if spe != "1":
            args.append(f"steps_per_execution={spe}")
        if self.xla_auto:
            self.xla_pays_off(w)
        w.blank(2)
        span = self.span("loss") if "loss" in self.train else None
        if self.takes_batches():
            w.line("def compile_model(model, batches=-1):", span)
        else:
            w.line("def compile_model(model):", span)
        with w.indented():
            if self.takes_batches():
                w.line('"""`model.compile` with the loss, metrics and options of `train`; '
                       '`batches` is')
                w.line('the number of training batches in an epoch (negative: unknown)."""')
            else:
                w.line('"""`model.compile` with the loss, metrics and options of `train`."""')
            for line in why:
                w.line(f"# {line}")
            w.line(call_text("model.compile", args, w.width), self.span("loss")
                   if "loss" in self.train else None)

    def takes_batches(self) -> bool:
        """Whether `compile_model` is told the batches of an epoch (for the steps per
        execution, or for XLA)."""
        return self.steps_per_execution()[0] == _CAPPED or self.xla_auto

    def xla_pays_off(self, w: CodeWriter) -> None:
        w.blank(2)
        w.line("def xla_pays_off(steps):")
        with w.indented():
            w.line('"""`jit_compile = "auto"` for this model of dense layers. Keras\'s "auto" '
                   'means no XLA')
            w.line("on a CPU-only machine, where XLA makes convolutions slower; on dense "
                   "layers it")
            w.line("measured 1.0-2x the examples/s of `fit`, for 1-2 s of compiling. So on a "
                   "CPU,")
            w.line(f'XLA when the run has {XLA_MIN_STEPS:,} steps or more; elsewhere Keras\'s '
                   '"auto"."""')
            w.line("if any(device.device_type != \"CPU\" for device in "
                   "tf.config.list_physical_devices()):")
            with w.indented():
                w.line("return \"auto\"  # XLA where the model supports it")
            w.line(f"return steps >= {XLA_MIN_STEPS}")

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
                         "replicas", "(keras-team/keras#19246)"]
        batchwise = [name for name in (self.batch_callback(call) for call in
                                       self.train.get("callbacks") or []) if name]
        if batchwise:
            return "1", [f"one step per execution: {batchwise[0]} acts after every batch"]
        fixed = [key for key in ("steps_per_epoch", "validation_steps") if key in self.train]
        if not fixed:
            return _CAPPED, [f"{_DEFAULT_SPE} steps per call into TensorFlow (fewer round "
                             "trips from Python), but", "not more than an epoch has"]
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
        w.line("def spec_path(relative):")
        with w.indented():
            w.line('"""A path in the spec\'s folder for a callback to write; its folder is '
                   'made."""')
            w.line("path = SPEC_DIR / relative")
            w.line("path.parent.mkdir(parents=True, exist_ok=True)")
            w.line("return str(path)")
        if self.gen.data_by_epoch():
            w.blank(2)
            w.line("class DataEpoch(keras.callbacks.Callback):")
            with w.indented():
                w.line('"""Tells the data pipeline which epoch it is (see EPOCH)."""')
                w.line("")
                w.line("def on_epoch_begin(self, epoch, logs=None):")
                with w.indented():
                    w.line("current_epoch().assign(epoch)")
                w.line("")
                w.line("def on_epoch_end(self, epoch, logs=None):")
                with w.indented():
                    w.line("current_epoch().assign(epoch + 1)  # Keras may open the next epoch's "
                           "data now")
        if self.random_layers() and self.loop == "custom":
            self.random_state(w)
        if self.loop != "custom":
            self.backup_class(w)
        if any(self.epoch_schedule(call) is not None for call in calls):
            w.blank(2)
            w.line("def schedule_by_epoch(schedule):")
            with w.indented():
                w.line('"""A `keras.optimizers.schedules` schedule as LearningRateScheduler '
                       'wants it,')
                w.line("`schedule(epoch, learning_rate)`: the schedule's learning rate at the "
                       "epoch")
                w.line('(its steps count epochs here)."""')
                w.line("")
                w.line("def learning_rate(epoch, current):")
                with w.indented():
                    w.line("del current  # the schedule alone decides")
                    w.line("return float(schedule(epoch))")
                w.line("")
                w.line("return learning_rate")
        w.blank(2)
        w.line("def make_callbacks():", self.span("callbacks") if calls else None)
        with w.indented():
            w.line('"""The callbacks of `train`; their paths are relative to the spec."""')
            if not calls and self.loop == "custom" and not self.gen.data_by_epoch():
                w.line("return []")
                return
            skip = self.backup() if self.loop == "custom" else None
            w.line("return [")
            with w.indented():
                for i, call in enumerate(calls):
                    at = f"/train/callbacks/{i}"
                    if skip and skip[0] == i:
                        w.line("# BackupAndRestore: the custom loop checkpoints itself "
                               "(CHECKPOINT_DIR)", gen.span(at))
                        continue
                    w.line(self.callback(call, at, w.width - 4) + ",", gen.span(at))
                if self.loop != "custom" and self.backup() is None:
                    w.line("BackgroundBackupAndRestore(CHECKPOINT_DIR),  # resume if killed")
                if self.gen.data_by_epoch():
                    w.line("DataEpoch(),")
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
            args.append(f"spec_path({text})" if name in PATH_ARGS and isinstance(arg, str)
                        else text)
        for key, arg in call.get("kwargs", {}).items():
            if key == schedule:
                args.append(f"{key}={self.schedule(arg, f'{at}/kwargs/{escape(key)}')}")
                continue
            text = gen.value(arg, f"{at}/kwargs/{escape(key)}", self.scope)
            if key in PATH_ARGS and isinstance(arg, str):
                text = f"spec_path({text})"
            args.append(f"{key}={text}")
        name = entry.get("name") or call["call"]
        if name == "BackupAndRestore" and self.loop != "custom":
            return call_text("BackgroundBackupAndRestore", args, budget)
        return call_text(f"keras.callbacks.{name}", args, budget)

    def epoch_schedule(self, call: Any) -> int | str | None:
        """Where a `LearningRateScheduler(ExponentialDecay(…))` has its schedule object
        (the argument's index or keyword): Keras wants a function there, which
        `schedule_by_epoch` makes of it. None for any other callback."""
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
        return f"schedule_by_epoch({text})"

    def random_layers(self) -> bool:
        """Whether the model may have random state to back up: a layer that takes a
        `seed` (Dropout, GaussianNoise, the RNNs, attention, Random* preprocessing…)."""
        ir = self.gen.ir
        return any(
            any(p["name"] == "seed" for p in (catalog.lookup("layers", name) or {}).get(
                "params", []))
            for name in _calls([ir.get("model"), ir.get("blocks")])
        )

    def random_state(self, w: CodeWriter) -> None:
        """`random_state(model)`, which the custom loop's checkpoint tracks."""
        w.blank(2)
        w.line("def random_state(model):")
        with w.indented():
            w.line('"""The model\'s variables that are not weights: the seed generators\' '
                   'states of its')
            w.line("random layers (Dropout…). Without them a resumed run would draw the "
                   "first epoch\'s")
            w.line('dropout masks again."""')
            w.line("weights = {id(variable) for variable in model.weights}")
            w.line("return [variable for variable in model.variables if id(variable) not in "
                   "weights]")

    def backup_class(self, w: CodeWriter) -> None:
        """The `fit` loop's BackupAndRestore: Keras's, but the backup is a copy of the
        variables that a thread writes while the next epoch trains."""
        found = self.backup()  # its errors point at the spec's callback, or at `train`
        span = self.gen.span(f"/train/callbacks/{found[0]}" if found else "/train")
        w.blank(2)
        w.line(_BACKUP_CLASS.strip("\n"), span)

    def train_fn(self, w: CodeWriter) -> None:
        loop = self.loop
        if loop != "fit":
            self.metric_objects(w)
        if loop == "custom":
            self.loss_functions(w)
        w.blank(2)
        w.line("def train(verbose=\"auto\"):", self.gen.span("/train"))
        with w.indented():
            w.line('"""Train as `train { … }` says; returns the model, its history and data."""')
            self.prologue(w)
            getattr(self, f"loop_{loop}")(w)

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
        w.line("strategy = make_strategy()")
        w.line("splits = load_splits()")
        w.line("datasets = make_datasets(splits)")
        w.line("with strategy.scope():  # variables are created where the strategy wants")
        with w.indented():
            w.line("model = build_model()")
            w.line("check_data(model, datasets[\"train\"], LOSSES)")
            w.line("# adapted on the training data as it is: not shuffled, not augmented")
            w.line("adapt(model, pipeline(splits[\"train\"], \"adapt\"))")
            if self.takes_batches():
                w.line("# the optimizer and metrics, in the scope too (told the batches of an "
                       "epoch)")
                w.line(f"compile_model(model, {self.steps()})")
            else:
                w.line("compile_model(model)  # the optimizer and metrics, in the scope too")
            if self.loop == "custom":
                w.line("model.optimizer.build(model.trainable_variables)")
                w.line("metrics = make_metrics()")
                w.line("losses = loss_functions()")
                if self.accumulate():
                    w.line("# gradient accumulation: a sum per replica, applied every "
                           f"{self.value('accumulate')} steps")
                    w.line("accumulated = [")
                    with w.indented():
                        w.line("tf.Variable(")
                        with w.indented():
                            w.line("tf.zeros_like(v),")
                            w.line("trainable=False,")
                            w.line("synchronization=tf.VariableSynchronization.ON_READ,")
                            w.line("aggregation=tf.VariableAggregation.SUM,")
                        w.line(")")
                        w.line("for v in model.trainable_variables")
                    w.line("]")

    def accumulate(self) -> bool:
        """Whether the custom loop accumulates gradients over several steps."""
        value = self.train.get("accumulate", 1)
        return self.loop == "custom" and value != 1

    def fit_verbose(self) -> str:
        return self.value("verbose") if "verbose" in self.train else "verbose"

    def loop_fit(self, w: CodeWriter) -> None:
        t = self.train
        args = ['datasets["train"]', 'validation_data=datasets.get("validation")',
                f"epochs={self.value('epochs', 1)}"]
        for key in ("steps_per_epoch", "validation_steps"):
            if key in t:
                args.append(f"{key}={self.value(key)}")
        args += ["shuffle=False",  # the tf.data pipeline shuffles (make_datasets)
                 "callbacks=make_callbacks()", f"verbose={self.fit_verbose()}"]
        w.line(call_text("history = model.fit", args, w.width), self.span("epochs")
               if "epochs" in t else None)
        w.line("return model, history, datasets")

    def callback_list(self, w: CodeWriter, steps: str) -> None:
        w.line("callbacks = keras.callbacks.CallbackList(")
        with w.indented():
            w.line("make_callbacks(),")
            w.line("add_history=True,")
            w.line("add_progbar=verbose != 0,")
            w.line("model=model,")
            w.line("verbose=1 if verbose == \"auto\" else verbose,")
            w.line(f"epochs={self.value('epochs', 1)},")
            w.line(f"steps={steps},")
        w.line(")")
        w.line("history = next(c for c in callbacks.callbacks "
               "if isinstance(c, keras.callbacks.History))")

    def steps(self) -> str:
        if "steps_per_epoch" in self.train:
            return self.value("steps_per_epoch")
        return "int(datasets[\"train\"].cardinality())"

    def loop_on_batch(self, w: CodeWriter) -> None:
        epochs = self.value("epochs", 1)
        if "verbose" in self.train:
            w.line(f"verbose = {self.fit_verbose()}")
        self.callback_list(w, self.steps())
        w.line("callbacks.on_train_begin()  # BackgroundBackupAndRestore restores a backup")
        w.line("# where the backup left off (the attribute Keras's `fit` reads too)")
        w.line(f"for epoch in range(model._initial_epoch or 0, {epochs}):", self.span("loop"))
        with w.indented():
            w.line("model.reset_metrics()")
            w.line("callbacks.on_epoch_begin(epoch)")
            w.line("logs = {}")
            take = f".take({self.value('steps_per_epoch')})" if "steps_per_epoch" in \
                self.train else ""
            w.line(f"for step, (features, labels) in enumerate(datasets[\"train\"]{take}):")
            with w.indented():
                w.line("callbacks.on_train_batch_begin(step)")
                w.line("logs = model.train_on_batch(features, labels, return_dict=True)")
                w.line("callbacks.on_train_batch_end(step, logs)")
            w.line("if \"validation\" in datasets:")
            with w.indented():
                w.line("model.reset_metrics()")
                w.line("validation = {}")
                vtake = f".take({self.value('validation_steps')})" if "validation_steps" in \
                    self.train else ""
                w.line(f"for features, labels in datasets[\"validation\"]{vtake}:")
                with w.indented():
                    w.line("validation = model.test_on_batch(features, labels, "
                           "return_dict=True)")
                w.line("logs.update({f\"val_{k}\": v for k, v in validation.items()})")
            w.line("callbacks.on_epoch_end(epoch, logs)")
            w.line("if model.stop_training:")
            with w.indented():
                w.line("break")
        w.line("callbacks.on_train_end(logs)")
        w.line("return model, history, datasets")

    def loop_custom(self, w: CodeWriter) -> None:
        t = self.train
        take = f".take({self.value('steps_per_epoch')})" if "steps_per_epoch" in t else ""
        w.line("# each worker reads its share of every batch (in-memory data has no files "
               "to shard)")
        w.line("options = tf.data.Options()")
        w.line("options.experimental_distribute.auto_shard_policy = "
               "tf.data.experimental.AutoShardPolicy.DATA")
        w.line(f"train_data = datasets[\"train\"]{take}.with_options(options)")
        w.line("batches_per_epoch = int(train_data.cardinality())  # negative: unknown")
        w.line("train_data = strategy.experimental_distribute_dataset(train_data)")
        w.line("steps_per_execution = model.steps_per_execution  # as compile_model set it")
        w.line("")
        w.line("def compute_loss(labels, predictions):")
        with w.indented():
            w.line('"""Each output\'s per-example loss, averaged over the GLOBAL batch (the')
            w.line("tf.distribute guide: replicas' gradients are summed), weighted and "
                   'summed."""')
            w.line("if not isinstance(predictions, dict):")
            with w.indented():
                w.line("predictions, labels = {OUTPUTS[0]: predictions}, {OUTPUTS[0]: labels}")
            w.line("total = 0.0")
            w.line("for name, (function, weight) in losses.items():")
            with w.indented():
                w.line("per_example = function(labels[name], predictions[name])")
                w.line("total += weight * tf.nn.compute_average_loss(per_example)")
            w.line("if model.losses:  # weight regularizers, scaled for the replicas")
            with w.indented():
                w.line("total += tf.nn.scale_regularization_loss(tf.add_n(model.losses))")
            w.line("return total")
        w.line("")
        w.line("def float32(predictions):")
        with w.indented():
            w.line('"""Losses and metrics in float32, whatever the mixed-precision policy."""')
            w.line("return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), predictions)")
        w.line("")
        w.line("def update(metric_list, labels, predictions):")
        with w.indented():
            w.line("for output, metric in metric_list:")
            with w.indented():
                w.line("if output is None:")
                with w.indented():
                    w.line("metric.update_state(labels, predictions)")
                w.line("else:")
                with w.indented():
                    w.line("metric.update_state(labels[output], predictions[output])")
        w.line("")
        jit = t.get("jit_compile", "auto") is True
        auto = self.xla_auto  # XLA as compile_model decided (xla_pays_off)
        # one replica: XLA compiles the whole step, the update with it (as `fit` does);
        # several: the update synchronises them, so XLA compiles only the passes
        whole = jit and self.distribute.get("strategy", "default") in ("default", "one_device")
        # XLA as Keras decided in compile_model: it turns XLA off where the model's
        # layers or `deterministic` rule it out (and warns)
        decorator = "@tf.function(jit_compile=model.jit_compile)"
        if jit and not whole:
            w.line(decorator, self.span("jit_compile"))
            w.line("def gradients_of(features, labels):")
            with w.indented():
                w.line('"""The forward and backward pass, compiled by XLA on each replica (the '
                       'update')
                w.line('synchronises replicas, so it stays outside the XLA function)."""')
                w.line("with tf.GradientTape() as tape:")
                with w.indented():
                    w.line("predictions = float32(model(features, training=True))")
                    w.line("loss = compute_loss(labels, predictions)")
                    w.line("scaled = model.optimizer.scale_loss(loss)  # mixed precision")
                w.line("return loss, predictions, tape.gradient(scaled, "
                       "model.trainable_variables)")
            w.line("")
        if whole or auto:
            w.line(f"{decorator}  # XLA: the whole step, on one replica",
                   self.span("jit_compile") if whole else None)
        w.line("def train_step(features, labels):")
        with w.indented():
            if jit and not whole:
                w.line("loss, predictions, gradients = gradients_of(features, labels)")
            else:
                w.line("with tf.GradientTape() as tape:")
                with w.indented():
                    w.line("predictions = float32(model(features, training=True))")
                    w.line("loss = compute_loss(labels, predictions)")
                    w.line("scaled = model.optimizer.scale_loss(loss)  # mixed precision")
                w.line("gradients = tape.gradient(scaled, model.trainable_variables)")
            if self.accumulate():
                w.line("for total, gradient in zip(accumulated, gradients, strict=True):")
                with w.indented():
                    w.line(f"total.assign_add(gradient / {self.value('accumulate')})")
            else:
                w.line("# clipping is the optimizer's (clipnorm, clipvalue, global_clipnorm)")
                w.line("model.optimizer.apply_gradients(zip(gradients, "
                       "model.trainable_variables, strict=True))")
            w.line("update(metrics[\"train\"], labels, predictions)")
            w.line("return loss")
        if self.accumulate():
            w.line("")
            w.line("def apply_step():")
            with w.indented():
                w.line("gradients = [total.read_value() for total in accumulated]")
                w.line("model.optimizer.apply_gradients(zip(gradients, "
                       "model.trainable_variables, strict=True))")
                w.line("for total in accumulated:")
                with w.indented():
                    w.line("total.assign(tf.zeros_like(total))")
        w.line("")
        if whole or auto:
            w.line(decorator, self.span("jit_compile") if whole else None)
        w.line("def test_step(features, labels):")
        with w.indented():
            w.line("predictions = float32(model(features, training=False))")
            w.line("update(metrics[\"validation\"], labels, predictions)")
            w.line("return compute_loss(labels, predictions)")
        w.line("")
        w.line("# the epoch's summed losses and batches stay in TensorFlow: Python reads them "
               "for")
        w.line("# the callbacks' logs once an execution (not once a step), and the steps "
               "never wait")
        w.line("sums = {split: (tf.Variable(0.0), tf.Variable(0, dtype=tf.int64))")
        w.line("        for split in (\"train\", \"validation\")}")
        w.line("")
        w.line("def mean_loss(split):")
        with w.indented():
            w.line('"""The mean loss of the epoch\'s batches so far (a tensor)."""')
            w.line("total, batches = sums[split]")
            w.line("return total / tf.cast(tf.maximum(batches, 1), tf.float32)")
        w.line("")
        w.line("def run_steps(step, split):")
        with w.indented():
            w.line('"""A tf.function that runs `step` on every replica for the next '
                   '`steps_per_execution`')
            w.line("batches of an iterator, or what is left of them (one call from Python, "
                   "like `fit`),")
            w.line('and returns how many batches of the epoch it has run so far."""')
            w.line("total, batches = sums[split]")
            w.line("")
            w.line("@tf.function")
            w.line("def run(iterator):")
            with w.indented():
                w.line("for _ in tf.range(steps_per_execution):")
                with w.indented():
                    w.line("batch = iterator.get_next_as_optional()")
                    w.line("if not batch.has_value():  # the end of the epoch's data")
                    with w.indented():
                        w.line("break")
                    w.line("per_replica = strategy.run(step, args=batch.get_value())")
                    w.line("loss = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, "
                           "axis=None)")
                    w.line("total.assign_add(loss)")
                    w.line("batches.assign_add(1)")
                    if self.accumulate():
                        w.line("# apply the accumulated gradients every "
                               f"{self.value('accumulate')} training batches")
                        w.line(f"if step is train_step and batches % "
                               f"{self.value('accumulate')} == 0:", self.span("accumulate"))
                        with w.indented():
                            w.line("strategy.run(apply_step)")
                w.line("return batches.read_value()")
            w.line("")
            w.line("return run")
        w.line("")
        w.line("train_steps, test_steps = run_steps(train_step, \"train\"), "
               "run_steps(test_step, \"validation\")")
        w.line("")
        w.line("# resume from the last epoch's checkpoint, if a killed run left one")
        w.line("epoch = tf.Variable(0, dtype=tf.int64, trainable=False)")
        if self.random_layers():
            w.line("checkpoint = tf.train.Checkpoint(")
            with w.indented():
                w.line("model=model, optimizer=model.optimizer, epoch=epoch, "
                       "random_state=random_state(model),")
            w.line(")")
        else:
            w.line("checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, "
                   "epoch=epoch)")
        if self.multi_worker:
            w.line("# every worker saves (the save is collective); only the chief's is kept")
            w.line("directory = CHECKPOINT_DIR if is_chief() else tempfile.mkdtemp()")
            w.line("manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1)")
        else:
            w.line("manager = tf.train.CheckpointManager(checkpoint, CHECKPOINT_DIR, "
                   "max_to_keep=1)")
        w.line("checkpoint.restore(manager.latest_checkpoint)")
        if "verbose" in t:
            w.line(f"verbose = {self.fit_verbose()}")
        self.callback_list(w, self.steps())
        w.line("callbacks.on_train_begin()")
        w.line("logs = {}")
        w.line(f"for current in range(int(epoch.numpy()), {self.value('epochs', 1)}):",
               self.span("loop"))
        with w.indented():
            w.line("callbacks.on_epoch_begin(current)")
            w.line("for total, batches in sums.values():")
            with w.indented():
                w.line("total.assign(0.0)")
                w.line("batches.assign(0)")
            w.line("for _, metric in metrics[\"train\"] + metrics[\"validation\"]:")
            with w.indented():
                w.line("metric.reset_state()")
            w.line("iterator, done = iter(train_data), 0")
            w.line("while done != batches_per_epoch and not model.stop_training:")
            with w.indented():
                w.line("callbacks.on_train_batch_begin(done)")
                w.line("ran = int(train_steps(iterator))  # waits for this execution's steps")
                w.line("if ran == done:  # no data was left")
                with w.indented():
                    w.line("break")
                w.line("done = ran")
                w.line("logs = {\"loss\": mean_loss(\"train\"), **results(metrics[\"train\"])}")
                w.line("callbacks.on_train_batch_end(done - 1, logs)")
            w.line("logs = {\"loss\": mean_loss(\"train\"), **results(metrics[\"train\"])}")
            w.line("if \"validation\" in datasets:")
            with w.indented():
                vtake = f".take({self.value('validation_steps')})" if "validation_steps" in t \
                    else ""
                w.line(f"validation = datasets[\"validation\"]{vtake}.with_options(options)")
                w.line("iterator = iter(strategy.experimental_distribute_dataset(validation))")
                w.line("done = 0")
                w.line("while (ran := int(test_steps(iterator))) > done:  # to the end of the "
                       "data")
                with w.indented():
                    w.line("done = ran")
                w.line("logs[\"val_loss\"] = mean_loss(\"validation\")")
                w.line("logs.update({f\"val_{k}\": v for k, v in "
                       "results(metrics[\"validation\"]).items()})")
            w.line("epoch.assign(current + 1)")
            w.line("manager.save()")
            w.line("callbacks.on_epoch_end(current, logs)")
            w.line("if model.stop_training:")
            with w.indented():
                w.line("break")
        w.line("callbacks.on_train_end(logs)")
        w.line("shutil.rmtree(manager.directory, ignore_errors=True)  # done: nothing to "
               "resume")
        w.line("return model, history, datasets")

    def metric_objects(self, w: CodeWriter) -> None:
        """`make_metrics()`: Keras metric objects, for loops that keep their own."""
        gen = self.gen
        metrics = self.train.get("metrics") or []
        per_output = isinstance(metrics, dict)
        outputs = gen.model_names("outputs")
        w.blank(2)
        w.line("def make_metrics():", self.span("metrics") if "metrics" in self.train else None)
        with w.indented():
            w.line('"""Metric objects for training and validation; "accuracy" is resolved by')
            w.line('the loss, as `model.compile` does."""')
            w.line("def build():")
            with w.indented():
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
            w.line("return {\"train\": build(), \"validation\": build()}")
        w.blank(2)
        w.line("def results(metric_list):")
        with w.indented():
            w.line('"""`{name: value}` of each metric, prefixed by its output when there are '
                   'several."""')
            w.line("out = {}")
            w.line("for output, metric in metric_list:")
            with w.indented():
                w.line("name = metric.name if output is None or len(OUTPUTS) == 1 else "
                       "f\"{output}_{metric.name}\"")
                w.line("out[name] = metric.result()  # a tensor: the callbacks read it")
            w.line("return out")

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
            return snake(loss.get("call", ""))
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

    @property
    def multi_worker(self) -> bool:
        return self.distribute.get("strategy") == "multi_worker_mirrored"

    def main(self, w: CodeWriter) -> None:
        if self.multi_worker:
            w.blank(2)
            w.line("def is_chief():")
            with w.indented():
                w.line('"""Worker 0 (or the chief) keeps checkpoints, the model and metrics; '
                       'the')
                w.line('others write to scratch space, as the multi-worker guide says."""')
                w.line("task = json.loads(os.environ.get(\"TF_CONFIG\", \"{}\")).get("
                       "\"task\", {})")
                w.line("return task.get(\"type\") == \"chief\" or task.get(\"index\", 0) "
                       "== 0")
        w.blank(2)
        w.line("def main(run_dir=\".\", verbose=\"auto\"):")
        with w.indented():
            w.line('"""Train, evaluate on the test split, and save the model and metrics'
                   + ('; then\nexport and verify."""' if self.exports else '."""'))
            w.line("run_dir = pathlib.Path(run_dir)")
            if self.multi_worker:
                w.line("if not is_chief():")
                with w.indented():
                    w.line("task = json.loads(os.environ[\"TF_CONFIG\"])[\"task\"]")
                    w.line("run_dir = run_dir / f\"worker-{task['index']}\"")
                    w.line("verbose = 0")
            w.line("run_dir.mkdir(parents=True, exist_ok=True)")
            w.line("model, history, datasets = train(verbose)")
            w.line('metrics = {"history": history.history}')
            w.line('if "test" in datasets:')
            with w.indented():
                w.line('metrics["test"] = model.evaluate(datasets["test"], return_dict=True, '
                       'verbose=0)')
            w.line('model.save(run_dir / "model.keras")')
            w.line('(run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, '
                   'default=float))')
            if self.exports:
                if self.multi_worker:
                    w.line("if is_chief():  # one copy of each export")
                    w.level += 1
                w.line("export_all(model, run_dir, datasets)", self.gen.span("/export"))
                w.line("verify_exports(run_dir)", self.gen.span("/export"))
                if self.multi_worker:
                    w.level -= 1
            w.line("return model")
        w.blank(2)
        w.line('if __name__ == "__main__":')
        with w.indented():
            w.line('main(sys.argv[1] if len(sys.argv) > 1 else ".")')
