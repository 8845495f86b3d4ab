"""The tune half of the generated program: `tune { … }` -> a KerasTuner HyperModel.

Writes, between the exports and `main()`:

- `class HyperModel(tuning.HyperModel)`: `set_params(hp)` sets the tuned params,
  the program's own constants, from KerasTuner's `hp` calls (`hp.Int("hidden", 32,
  256, step=32, default=64)`, the spec's names and arguments); `build(hp)` sets them
  and builds, checks, adapts and compiles the model with `train()`'s own lines
  (`TrainGenerator.model_lines`); `fit` trains it with the spec's loop and callbacks
  (`TrainGenerator.loop_call`), the tuner's callbacks added. `run`'s code is
  unchanged: the same functions read the same constants, which a trial sets.
- `search(directory, max_trials=None, verbose=0)`: the strategy and the data, built
  once for every trial, then `tuning.search` (the runtime's, on KerasTuner).

Importing this module never imports TensorFlow or KerasTuner: generating code is
text work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..lang.ir import escape
from ..lang.tunespace import Hyperparameter, Tuning
from .pytext import call_text, py_string
from .writer import CodeWriter

if TYPE_CHECKING:
    from .model import Generator
    from .train import TrainGenerator

# keyword arguments whose KerasTuner default need not be written
_DEFAULTS = {"step": None, "sampling": "linear"}
# positional arguments of KerasTuner's hp methods, after the name
_POSITIONAL = {"Int": ("min_value", "max_value"), "Float": ("min_value", "max_value"),
               "Choice": ("values",), "Fixed": ("value",), "Boolean": ()}


class TuneGenerator:
    def __init__(self, gen: Generator, train: TrainGenerator, tuning: Tuning):
        self.gen = gen
        self.train = train
        self.tuning = tuning

    @property
    def imports(self) -> set[str]:
        return {"runtime:tuning", "runtime:distribute", "runtime:training"}

    def emit(self, w: CodeWriter) -> None:
        self.hypermodel(w)
        self.search(w)

    def hp_args(self, h: Hyperparameter) -> list[str]:
        """The arguments of `hp.Int("hidden", 32, 256, step=32, default=64)`: the space
        entry as KerasTuner's call, its default arguments left out."""
        args = [py_string(h.name)]
        args += [self.gen.literal(h.kwargs[key]) for key in _POSITIONAL[h.kind]]
        for key, value in h.kwargs.items():
            if key not in _POSITIONAL[h.kind] and (key not in _DEFAULTS
                                                   or value != _DEFAULTS[key]):
                args.append(f"{key}={self.gen.literal(value)}")
        return args

    def seed(self) -> str | None:
        """The seed every trial starts from: `train`'s, else `tune`'s."""
        if "seed" in self.train.train:
            return self.train.value("seed")
        return None if self.tuning.seed is None else self.gen.literal(self.tuning.seed)

    def hypermodel(self, w: CodeWriter) -> None:
        gen, t = self.gen, self.tuning
        w.blank(2)
        w.line(f"# `tune {{ … }}`: `tfspec tune` runs `search`, KerasTuner's {t.tuner} over "
               "the params below.", gen.span("/tune"))
        w.line("class HyperModel(tuning.HyperModel):", gen.span("/tune"))
        with w.indented():
            w.line('"""The spec as a KerasTuner HyperModel: a trial sets the tuned params '
                   'from `hp`, then')
            w.line("builds and trains the model as `train()` does (the data is built once, "
                   'in `search`)."""')
            w.blank(1)
            w.line("def set_params(self, hp):", gen.span("/tune/space"))
            with w.indented():
                w.line('"""Set the tuned params to this trial\'s values (the spec\'s are '
                       'their defaults)."""')
                consts = [gen.consts[h.name] for h in t.space]
                if consts:
                    w.line(f"global {', '.join(consts)}  # the functions above read them")
                for h in t.space:
                    w.line(call_text(f"{gen.consts[h.name]} = hp.{h.kind}", self.hp_args(h),
                                     w.width), gen.span(f"/tune/space/{escape(h.name)}"))
                if not consts:
                    w.line("hp.Fixed(\"unused\", 0)  # a space KerasTuner can hold")
            w.blank(1)
            w.line("def build(self, hp):")
            with w.indented():
                w.line('"""A trial\'s model, built and compiled as `train()` does it."""')
                w.line("self.set_params(hp)")
                seed = self.seed()
                if seed is not None:
                    w.line(f"keras.utils.set_random_seed({seed})  # every trial starts from "
                           "this seed")
                w.line("with self.strategy.scope():")
                with w.indented():
                    self.train.model_lines(w, "self.splits", "self.datasets")
                w.line("return model")
            w.blank(1)
            self.fit(w)

    def fit(self, w: CodeWriter) -> None:
        hyperband = self.tuning.algorithm == "hyperband"
        trial: dict[str, Any] = {
            "return": "return", "datasets": "self.datasets", "strategy": "self.strategy",
            "callbacks": "callbacks", "verbose": "verbose",
            "checkpoint_dir": "self.checkpoint_dir",
        }
        if hyperband:
            # Hyperband trains a model for a few epochs, then a better one on from there
            w.line("def fit(self, hp, model, callbacks, epochs, initial_epoch=0, verbose=0):")
            trial["epochs"] = "epochs=epochs - initial_epoch"
        else:
            w.line("def fit(self, hp, model, callbacks, verbose=0):")
        with w.indented():
            w.line('"""Train as `train()` does; `callbacks`: the tuner\'s, after the spec\'s '
                   '(but its backup)."""')
            w.line("callbacks = tuning.trial_callbacks(make_callbacks(), callbacks)")
            self.train.loop_call(w, trial)

    def search(self, w: CodeWriter) -> None:
        gen, t = self.gen, self.tuning
        train = self.train.train
        w.blank(2)
        w.line("def search(directory, max_trials=None, verbose=0):", gen.span("/tune"))
        with w.indented():
            w.line('"""Run `tune { … }` with KerasTuner\'s state in `directory` (a search '
                   'there resumes)."""')
            if train.get("deterministic"):
                w.line("tf.config.experimental.enable_op_determinism()",
                       self.train.span("deterministic"))
            if train.get("mixed_precision", "float32") != "float32":
                w.line("keras.mixed_precision.set_global_policy("
                       f"{self.train.value('mixed_precision')})",
                       self.train.span("mixed_precision"))
            self.train.strategy(w)
            w.line("splits = load_splits()")
            w.line("hypermodel = HyperModel(strategy, splits, make_datasets(splits))")
            trials = "max_trials" if t.max_trials is None else f"max_trials or {t.max_trials}"
            args = ["hypermodel", "directory", py_string(t.tuner),
                    f"objective={py_string(t.objective)}",
                    f"direction={py_string(t.direction)}", f"max_trials={trials}"]
            if t.seed is not None:
                args.append(f"seed={gen.literal(t.seed)}")
            args += [f"{key}={gen.literal(value)}" for key, value in t.options.items()]
            args.append("verbose=verbose")
            w.line(call_text("return tuning.search", args, w.width), gen.span("/tune"))
