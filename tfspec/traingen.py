"""The training half of the generated program: `train` and `distribute` -> Keras code.

Writes `make_strategy()`, `make_optimizer()`, `compile_model()`,
`make_callbacks()`, `train()` and `main()`. The loop is `model.fit` inside the
strategy's scope, with variables (model, optimizer, metrics) created there, as
the tf.distribute guide requires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import catalog
from .located import escape
from .writer import CodeWriter

if TYPE_CHECKING:
    from .compiler import Generator

# Callback arguments that are paths: relative to the spec's folder, like data paths.
PATH_ARGS = {"filepath", "backup_dir", "filename", "log_dir"}
_STRATEGIES = {
    "default": "tf.distribute.get_strategy()",
    "one_device": "tf.distribute.OneDeviceStrategy({device})",
    "mirrored": "tf.distribute.MirroredStrategy({devices})",
}
_ALL_REDUCE = {"nccl": "tf.distribute.NcclAllReduce()",
               "ring": "tf.distribute.HierarchicalCopyAllReduce()"}


class TrainGenerator:
    def __init__(self, gen: Generator, train: dict[str, Any], distribute: dict[str, Any]):
        self.gen = gen
        self.train = train
        self.distribute = distribute
        from .compiler import _Scope

        self.scope = _Scope(values={})

    def span(self, key: str, section: str = "train"):
        return self.gen.span(f"/{section}/{escape(key)}")

    def value(self, key: str, default: Any = None) -> str:
        if key not in self.train:
            return self.gen.literal(default)
        return self.gen.value(self.train[key], f"/train/{escape(key)}", self.scope)

    def emit(self, w: CodeWriter) -> None:
        self.strategy(w)
        self.optimizer(w)
        self.compile(w)
        self.callbacks(w)
        self.train_fn(w)
        self.main(w)

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
                    args.append("devices=" + self.gen.value(self.distribute["devices"],
                                                            "/distribute/devices", self.scope))
                comm = self.distribute.get("communication", "auto")
                if comm in _ALL_REDUCE:
                    args.append(f"cross_device_ops={_ALL_REDUCE[comm]}")
                w.line(f"return tf.distribute.MirroredStrategy({', '.join(args)})")
            else:  # default; the others are refused before the program runs
                w.line("return tf.distribute.get_strategy()")

    def optimizer(self, w: CodeWriter) -> None:
        gen = self.gen
        opt = self.train.get("optimizer", "adam")
        extra = []
        for key, kwarg in (("clip_norm", "clipnorm"), ("clip_value", "clipvalue"),
                           ("global_clip_norm", "global_clipnorm"),
                           ("accumulate", "gradient_accumulation_steps")):
            if key in self.train and not (key == "accumulate" and self.train[key] == 1):
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
            return "{" + ", ".join(f"{_q(k)}: {self.objective(x, f'{at}/{escape(k)}', category)}"
                                   for k, x in v.items()) + "}"
        return self.gen.value(v, at, self.scope)

    def compile(self, w: CodeWriter) -> None:
        args = ["optimizer=make_optimizer()"]
        if "loss" in self.train:
            args.append("loss=" + self.objective(self.train["loss"], "/train/loss", "losses"))
        if "loss_weights" in self.train:
            weights = self.train["loss_weights"]
            text = self.value("loss_weights") if isinstance(weights, list) else "{" + ", ".join(
                f"{_q(k)}: {self.gen.value(v, f'/train/loss_weights/{escape(k)}', self.scope)}"
                for k, v in weights.items()) + "}"
            args.append(f"loss_weights={text}")
        if "metrics" in self.train:
            args.append("metrics=" + self.objective(self.train["metrics"], "/train/metrics",
                                                    "metrics"))
        jit = self.train.get("jit_compile", "auto")
        if jit != "auto":
            args.append(f"jit_compile={self.value('jit_compile')}")
        spe = self.train.get("steps_per_execution", 1)
        if spe == "auto":
            args.append('steps_per_execution="auto"')
        elif spe != 1:
            args.append(f"steps_per_execution={self.value('steps_per_execution')}")
        w.blank(2)
        w.line("def compile_model(model):", self.span("loss") if "loss" in self.train else None)
        with w.indented():
            w.line('"""`model.compile` with the loss, metrics and options of `train`."""')
            from .compiler import call_text

            w.line(call_text("model.compile", args, w.width), self.span("loss")
                   if "loss" in self.train else None)

    def callbacks(self, w: CodeWriter) -> None:
        gen = self.gen
        calls = self.train.get("callbacks") or []
        w.blank(2)
        w.line("def make_callbacks():", self.span("callbacks") if calls else None)
        with w.indented():
            w.line('"""The callbacks of `train`; their paths are relative to the spec."""')
            if not calls:
                w.line("return []")
                return
            w.line("return [")
            with w.indented():
                for i, call in enumerate(calls):
                    at = f"/train/callbacks/{i}"
                    w.line(self.callback(call, at, w.width - 4) + ",", gen.span(at))
            w.line("]")

    def callback(self, call: dict[str, Any], at: str, budget: int) -> str:
        """A callback construction, its path arguments placed under SPEC_DIR."""
        gen = self.gen
        entry = catalog.lookup("callbacks", call["call"]) or {}
        params = [p["name"] for p in entry.get("params", [])]
        args = []
        for i, arg in enumerate(call.get("args", [])):
            name = params[i] if i < len(params) else None
            text = gen.value(arg, f"{at}/args/{i}", self.scope)
            args.append(f"str(SPEC_DIR / {text})" if name in PATH_ARGS and isinstance(arg, str)
                        else text)
        for key, arg in call.get("kwargs", {}).items():
            text = gen.value(arg, f"{at}/kwargs/{escape(key)}", self.scope)
            if key in PATH_ARGS and isinstance(arg, str):
                text = f"str(SPEC_DIR / {text})"
            args.append(f"{key}={text}")
        from .compiler import call_text

        return call_text(f"keras.callbacks.{entry.get('name') or call['call']}", args, budget)

    def train_fn(self, w: CodeWriter) -> None:
        t = self.train
        w.blank(2)
        w.line("def train(verbose=\"auto\"):", self.gen.span("/train"))
        with w.indented():
            w.line('"""Train as `train { … }` says; returns the model, its history and data."""')
            if "seed" in t:
                w.line(f"keras.utils.set_random_seed({self.value('seed')})", self.span("seed"))
            if t.get("deterministic"):
                w.line("tf.config.experimental.enable_op_determinism()",
                       self.span("deterministic"))
            policy = t.get("mixed_precision", "float32")
            if policy != "float32":
                w.line(f"keras.mixed_precision.set_global_policy({self.value('mixed_precision')})",
                       self.span("mixed_precision"))
            w.line("strategy = make_strategy()")
            w.line("datasets = make_datasets()")
            w.line("with strategy.scope():  # variables are created where the strategy wants")
            with w.indented():
                w.line("model = build_model()")
                w.line("check_data(model, datasets[\"train\"], LOSSES)")
                w.line("adapt(model, datasets[\"train\"])")
                w.line("compile_model(model)")
            args = ['datasets["train"]', 'validation_data=datasets.get("validation")',
                    f"epochs={self.value('epochs', 1)}"]
            for key in ("steps_per_epoch", "validation_steps"):
                if key in t:
                    args.append(f"{key}={self.value(key)}")
            args += ["shuffle=False",  # the tf.data pipeline shuffles (make_datasets)
                     "callbacks=make_callbacks()",
                     f"verbose={self.value('verbose') if 'verbose' in t else 'verbose'}"]
            from .compiler import call_text

            w.line(call_text("history = model.fit", args, w.width), self.span("epochs")
                   if "epochs" in t else None)
            w.line("return model, history, datasets")

    def main(self, w: CodeWriter) -> None:
        w.blank(2)
        w.line("def main(run_dir=\".\", verbose=\"auto\"):")
        with w.indented():
            w.line('"""Train, evaluate on the test split, and save the model and metrics."""')
            w.line("run_dir = pathlib.Path(run_dir)")
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
            w.line("return model")
        w.blank(2)
        w.line('if __name__ == "__main__":')
        with w.indented():
            w.line('main(sys.argv[1] if len(sys.argv) > 1 else ".")')


def _q(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)
