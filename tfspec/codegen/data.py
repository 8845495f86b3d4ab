"""The data half of the generated program: a `data { … }` section -> calls into
`tfspec.runtime.data`.

`program.write_program` hands the data section to `DataGenerator`, which writes
what the spec says and leaves the machinery to the runtime:

- `load_splits()`: the source's loader call (`np.load` of the `.npz`, `data.read_csv`,
  `keras.utils.image_dataset_from_directory`, `tfds.load`, TFRecord files…) with its
  arguments, then `data.split_arrays` (arrays in memory) or `data.split_dataset`;
- `augment_layers()`: the spec's augmentation layers, as Keras constructor calls;
- `pipelines()`: a `data.Pipeline` of the section's settings (batch, shuffle, seed,
  cache, repeat, parallel, prefetch); `pipeline(split, name)` batches one split with
  it, `make_datasets()` every split (the training data's endless form with them);
- `check_data()`, `adapt()`: one runtime call each, `adapt` one per layer that learns
  from data (Normalization, TextVectorization…).

Each call carries its spec span, so that an error the runtime raises is reported
at the spec line that asked for it (the data source, a layer to adapt…).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from ..lang.ir import escape, resolve
from .pytext import Scope, call_text, py_string
from .writer import CodeWriter

if TYPE_CHECKING:
    from ..lang.diagnostics import Span
    from .model import Generator, LayerInfo

# Layer arguments that, when missing, mean the layer must be adapted to data.
ADAPTED_BY = {
    "Normalization": ("mean",),
    "TextVectorization": ("vocabulary",),
    "StringLookup": ("vocabulary",),
    "IntegerLookup": ("vocabulary",),
    "Discretization": ("bin_boundaries",),
}


class DataGenerator:
    def __init__(self, gen: Generator, data: dict[str, Any], at: str = "/data"):
        self.gen = gen
        self.data = data
        self.at = at
        self.imports: set[str] = {"runtime:data"}
        if gen.data_by_epoch():
            self.imports.add("runtime:seeds")  # EPOCH = seeds.Epoch() (program.py)
        self.scope = Scope(values={})  # data values see params only

    # -- values ----------------------------------------------------------------------------

    def value(self, key: str, default: Any = None) -> str:
        if key not in self.data:
            return self.gen.literal(default)
        return self.gen.value(self.data[key], f"{self.at}/{escape(key)}", self.scope)

    def source_arg(self, name: str, default: Any = None) -> str:
        """A source argument as Python, by name or position (per tfspec.lang.sources)."""
        from ..lang.sources import SOURCES

        call = self.data["source"]
        params = [p["name"] for p in SOURCES[call["call"]]["params"]]
        at = f"{self.at}/source"
        if name in call.get("kwargs", {}):
            return self.gen.value(call["kwargs"][name], f"{at}/kwargs/{escape(name)}", self.scope)
        index = params.index(name)
        if index < len(call.get("args", [])):
            return self.gen.value(call["args"][index], f"{at}/args/{index}", self.scope)
        return self.gen.literal(default)

    def split(self, key: str) -> Any:
        return (self.data.get("split") or {}).get(key)

    def fractions(self) -> tuple[str, str, str]:
        split = self.data.get("split") or {}
        sat = f"{self.at}/split"
        out = []
        for key in ("validation", "test"):
            v = split.get(key, 0.0)
            out.append(self.gen.value(v, f"{sat}/{key}", self.scope) if not isinstance(v, str)
                       else "0.0")
        out.append(self.gen.value(split["seed"], f"{sat}/seed", self.scope)
                   if "seed" in split else "0")
        return out[0], out[1], out[2]

    def span(self, key: str = "source") -> Span | None:
        return self.gen.span(f"{self.at}/{key}")

    def given(self, key: str) -> Span | None:
        """The span of a setting the spec gives (None for a default)."""
        return self.span(key) if key in self.data else None

    # -- the functions -------------------------------------------------------------------------

    def emit(self, w: CodeWriter) -> None:
        source = self.data["source"]["call"]
        w.blank(2)
        w.line("def load_splits():", self.span())
        with w.indented():
            getattr(self, f"source_{source}")(w)
        self.augment(w)
        self.pipeline(w)
        self.check(w)
        self.adapt(w)

    def doc(self, w: CodeWriter, what: str) -> None:
        where = self.gen.where(f"{self.at}/source")
        if len(what) + len(where) + 12 <= w.width:
            w.line(f'"""{what} ({where})."""')
        else:
            w.line(f'"""{what}')
            w.line(f'({where})."""')

    def array_splits(self, w: CodeWriter) -> None:
        validation, test, seed = self.fractions()
        w.line(f"return data.split_arrays(features, labels, validation={validation}, "
               f"test={test}, seed={seed})", self.span("split"))

    def dataset_splits(self, w: CodeWriter) -> None:
        validation, test, seed = self.fractions()
        w.line(f"return data.split_dataset(dataset, validation={validation}, test={test}, "
               f"seed={seed})", self.span("split"))

    # -- sources ------------------------------------------------------------------------------

    def raw_arg(self, name: str, default: Any = None) -> Any:
        """A source argument's IR value, given by keyword or by position."""
        from ..lang.sources import SOURCES

        call = self.data["source"]
        if name in call.get("kwargs", {}):
            return call["kwargs"][name]
        params = [p["name"] for p in SOURCES[call["call"]]["params"]]
        index = params.index(name)
        args = call.get("args", [])
        return args[index] if index < len(args) else default

    def names(self, arg: str, default: str) -> list[str] | str:
        raw = self.raw_arg(arg, default)
        return raw if isinstance(raw, (str, list)) else default

    def source_npz(self, w: CodeWriter) -> None:
        self.imports.add("numpy")
        self.doc(w, "The arrays of the `.npz` archive, split")
        path = self.source_arg("path")
        w.line(f"with np.load(SPEC_DIR / {path}) as archive:", self.span())
        with w.indented():
            w.line(f"features = {self.pick('archive', self.names('x', 'x'), 'inputs')}")
            w.line(f"labels = {self.pick('archive', self.names('y', 'y'), 'outputs')}")
        self.array_splits(w)

    def pick(self, table: str, names: list[str] | str, side: str) -> str:
        """`archive["x"]`, or a dict keyed by the model's input/output names."""
        if isinstance(names, str):
            return f"{table}[{py_string(names)}]"
        keys = self.gen.model_names(side)
        items = ", ".join(f"{py_string(k)}: {table}[{py_string(n)}]"
                          for k, n in zip(keys, names, strict=False))
        return "{" + items + "}"

    def source_csv(self, w: CodeWriter) -> None:
        self.doc(w, "The columns of the CSV file, split")
        args = [f"SPEC_DIR / {self.source_arg('path')}"]
        for key, default in (("delimiter", ","), ("header", True), ("na_value", "")):
            text = self.source_arg(key, default)
            if text != self.gen.literal(default):
                args.append(f"{key}={text}")
        w.line(_call("columns = data.read_csv", args, w.width), self.span())
        # `csv(…, label = …)`, or the section's `labels = [...]`
        label = self.raw_arg("label") or self.data.get("labels")
        labels = label if isinstance(label, list) else [label] if label else []
        outputs = self.gen.model_names("outputs")
        args = ["columns", "INPUTS"]
        if len(labels) == 1:
            args.append(f"labels={py_string(labels[0])}")
        elif labels:
            args.append("labels={" + ", ".join(f"{py_string(o)}: {py_string(c)}" for o, c
                                               in zip(outputs, labels, strict=False)) + "}")
        features = self.raw_arg("features") or self.data.get("features")
        if isinstance(features, list):
            args.append(f"features={features!r}")
        # a missing column is an error at the source
        w.line(_call("features, labels = data.csv_arrays", args, w.width), self.span())
        self.array_splits(w)

    def source_keras(self, w: CodeWriter) -> None:
        name = self.raw_arg("name", "mnist")
        self.doc(w, f"`keras.datasets.{name}`: its own test split; validation held out")
        w.line(f"(x_train, y_train), (x_test, y_test) = keras.datasets.{name}.load_data()",
               self.span())
        if name in ("imdb", "reuters"):
            # word-index sequences of every length: padded to the model's input length
            w.line("x_train, x_test = data.pad_to_input(INPUTS, x_train, x_test)")
        validation, _, seed = self.fractions()
        w.line(f"splits = data.split_arrays(x_train, y_train, validation={validation}, "
               f"test=0.0, seed={seed})")
        w.line('return splits | {"test": (x_test, y_test)}')

    def source_synthetic(self, w: CodeWriter) -> None:
        self.doc(w, "Random tensors shaped like the model's inputs and outputs")
        args = ["build_model()", "INPUTS", "OUTPUTS", "LOSSES"]
        for key, default in (("samples", 256), ("classes", None), ("seed", 0)):
            text = self.source_arg(key, default)
            if text != self.gen.literal(default):
                args.append(f"{key}={text}")
        w.line(_call("features, labels = data.synthetic", args, w.width), self.span())
        self.array_splits(w)

    def source_images(self, w: CodeWriter) -> None:
        self.doc(w, "Images from class folders (keras.utils.image_dataset_from_directory)")
        args = [f"SPEC_DIR / {self.source_arg('directory')}",
                f"image_size={self.source_arg('size', [256, 256])}"]
        for key, default in (("labels", "inferred"), ("label_mode", "int"),
                             ("color_mode", "rgb"), ("interpolation", "bilinear"),
                             ("crop_to_aspect_ratio", False)):
            text = self.source_arg(key, default)
            if text != self.gen.literal(default):
                args.append(f"{key}={text}")
        args += ["batch_size=None", "shuffle=False"]  # tfspec batches and shuffles itself
        w.line(_call("dataset = keras.utils.image_dataset_from_directory", args, w.width),
               self.span())
        self.dataset_splits(w)

    def source_text(self, w: CodeWriter) -> None:
        self.doc(w, "Texts from class folders (keras.utils.text_dataset_from_directory)")
        args = [f"SPEC_DIR / {self.source_arg('directory')}"]
        for key, default in (("labels", "inferred"), ("label_mode", "int"),
                             ("max_length", None)):
            text = self.source_arg(key, default)
            if text != self.gen.literal(default):
                args.append(f"{key}={text}")
        args += ["batch_size=None", "shuffle=False"]
        w.line(_call("dataset = keras.utils.text_dataset_from_directory", args, w.width),
               self.span())
        self.dataset_splits(w)

    def source_tfds(self, w: CodeWriter) -> None:
        self.imports.add("tensorflow_datasets")
        self.doc(w, "A TensorFlow Datasets dataset (tfds.load, no download unless asked)")
        name = self.source_arg("name")
        split = self.source_arg("split", "train")
        data_dir = self.source_arg("data_dir", None)
        common = [f"data_dir={'None' if data_dir == 'None' else f'SPEC_DIR / {data_dir}'}",
                  f"as_supervised={self.source_arg('as_supervised', True)}",
                  f"download={self.source_arg('download', False)}"]
        named = {k: self.split(k) for k in ("validation", "test")
                 if isinstance(self.split(k), str)}
        fractions = {k: self.split(k) for k in ("validation", "test")
                     if isinstance(self.split(k), (int, float))}
        base = self.raw_arg("split", "train")
        if named and fractions and isinstance(base, str) and "[" not in base:
            # a fraction beside a named split: cut it from the end of the training split
            start = round(100 * (1 - sum(fractions.values())))
            parts = {"train": f"{base}[:{start}%]"}
            for key, fraction in fractions.items():
                end = start + round(100 * fraction)
                parts[key] = f"{base}[{start}%:{end}%]"
                start = end
            named = {**{k: v for k, v in parts.items() if k != "train"}, **named}
            split = py_string(parts["train"])
        if named:
            w.line("splits = {}")
            for key, value in [("train", None), *named.items()]:
                which = split if value is None else py_string(value)
                w.line(_call(f"splits[{py_string(key)}] = tfds.load", [name, f"split={which}",
                                                                 *common], w.width),
                       self.span())
            w.line("return splits")
            return
        w.line(_call("dataset = tfds.load", [name, f"split={split}", *common], w.width),
               self.span())
        self.dataset_splits(w)

    def source_tfrecord(self, w: CodeWriter) -> None:
        self.doc(w, "tf.train.Example records; features described by the model's inputs")
        args = [f"SPEC_DIR.glob({self.source_arg('pattern')})", "INPUTS"]
        for key, default in (("label", "label"), ("compression", "")):
            text = self.source_arg(key, default)
            if text != self.gen.literal(default):
                args.append(f"{key}={text}")
        w.line(_call("dataset = data.read_tfrecords", args, w.width), self.span())
        self.dataset_splits(w)

    def source_generator(self, w: CodeWriter) -> None:
        target = self.raw_arg("target", "")
        module, _, function = target.partition(":")
        self.imports.add(f"module:{module}")
        self.doc(w, f"Examples from `{target}` (allowed with --allow-module {module})")
        w.line("signature = data.generator_signature(build_model(), INPUTS, OUTPUTS, LOSSES)",
               self.span())
        w.line(f"dataset = tf.data.Dataset.from_generator({module.split('.')[-1]}."
               f"{function}, output_signature=signature)")
        self.imports.add("tensorflow")
        self.dataset_splits(w)

    # -- the pipeline -----------------------------------------------------------------------

    def shuffle_seed(self) -> str:
        """The data's shuffle seed as Python (`data.seed`, else the split's), or "None"."""
        if "seed" in self.data:
            return self.value("seed")
        return self.fractions()[2] if "seed" in (self.data.get("split") or {}) else "None"

    def augment(self, w: CodeWriter) -> None:
        """`augment_layers()`: the layers that augment whole training batches, made by
        the pipeline when it builds the training split."""
        augment = self.data.get("augment") or []
        if not augment:
            return
        w.blank(2)
        w.line("def augment_layers():", self.span("augment"))
        with w.indented():
            w.line('"""The layers that augment the training batches, made for each '
                   'pipeline."""')
            w.line("return keras.Sequential([", self.span("augment"))
            with w.indented():
                for i, call in enumerate(augment):
                    at = f"{self.at}/augment/{i}"
                    w.line(self.gen.construct(call, at, "layers", self.scope) + ",",
                           self.gen.span(at))
            w.line('], name="augment")')

    def settings(self) -> list[tuple[str, Span | None]]:
        """`data.Pipeline`'s arguments from the section (defaults left out), each with
        the span of the setting it comes from."""
        d = self.data
        out = [(f"batch={self.value('batch', 32)}", self.given("batch"))]
        if d.get("drop_remainder"):
            out.append((f"drop_remainder={self.value('drop_remainder')}",
                        self.given("drop_remainder")))
        if d.get("shuffle", True) is not True:
            out.append((f"shuffle={self.value('shuffle')}", self.given("shuffle")))
        if self.shuffle_seed() != "None":
            at = "seed" if "seed" in d else "split"
            out.append((f"seed={self.shuffle_seed()}", self.given(at)))
        cache = d.get("cache", True)
        if isinstance(cache, str):
            # a new name when the data section (or a param) changes: TensorFlow
            # would otherwise go on reading a cache of the old data
            key = hashlib.sha1(json.dumps([d, self.gen.params], sort_keys=True,
                                          default=str).encode()).hexdigest()[:8]
            out.append((f"cache=SPEC_DIR / {py_string(cache)}", self.given("cache")))
            out.append((f"cache_key={py_string(key)}", self.given("cache")))
        elif cache is not True:
            out.append((f"cache={self.value('cache')}", self.given("cache")))
        if d.get("repeat", False) is not False:
            out.append((f"repeat={self.value('repeat')}", self.given("repeat")))
        for key in ("parallel", "prefetch"):
            if d.get(key, "auto") != "auto":
                out.append((f"{key}={self.value(key)}", self.given(key)))
        if d.get("augment"):
            out.append(("augment=augment_layers", self.given("augment")))
        if self.gen.data_by_epoch():
            out.append(("epoch=EPOCH", None))
        return out

    def pipeline(self, w: CodeWriter) -> None:
        """`pipelines()`: a `data.Pipeline` of the section's settings, made when called
        (a param they name is read then); `pipeline(split, name)` and `make_datasets()`
        batch splits with it."""
        w.blank(2)
        w.line("def pipelines():", self.span())
        with w.indented():
            w.line('"""How `data { … }` batches each split: its settings."""')
            settings = self.settings()
            one = f"return data.Pipeline({', '.join(t for t, _ in settings)})"
            if len(one) <= w.width:
                w.line(one, self.span())
            else:
                w.line("return data.Pipeline(", self.span())
                with w.indented():
                    for text, span in settings:
                        w.line(text + ",", span)
                w.line(")")
        w.blank(2)
        w.line("def pipeline(split, name):", self.span())
        with w.indented():
            w.line('"""One split batched as `data { … }` says ("adapt": the training data '
                   'as it is)."""')
            w.line("return pipelines()(split, name)", self.span())
        w.blank(2)
        w.line("def make_datasets(splits=None):", self.span())
        with w.indented():
            w.line('"""The batched `train`, `validation` and `test` pipelines that exist, and '
                   'the')
            w.line('training data epoch after epoch for the loop (a data.Datasets)."""')
            w.line("return pipelines().datasets(load_splits() if splits is None else splits)",
                   self.span())

    def check(self, w: CodeWriter) -> None:
        """`check_data()`: its errors are the data source's (E501 at `source =`)."""
        w.blank(2)
        w.line("def check_data(model, dataset, losses):", self.span())
        with w.indented():
            w.line('"""Stop before training when the data cannot feed the model."""')
            w.line("data.check_data(model, dataset, INPUTS, OUTPUTS, losses)", self.span())

    def adapt(self, w: CodeWriter) -> None:
        """`adapt(model, train)`: fit each layer that learns from data, in the model
        (no function when none does)."""
        layers = adapted_layers(self.gen)
        if not layers:
            return
        w.blank(2)
        w.line("def adapt(model, train):", self.span())
        with w.indented():
            w.line('"""Fit the layers that learn from data (their vocabulary, mean…) to the')
            w.line('training split, inside the model: the exported model takes raw inputs."""')
            # a subclassed model has no graph to cut: its layer takes a model input as is
            subclass = (self.gen.ir.get("model") or {}).get("kind") == "subclass"
            last = ", through_model=False" if subclass else ""
            for info in layers:
                w.line(f"data.adapt(model, train, {py_string(info.name)}{last})",
                       gen_span(self.gen, info))


def adapted_layers(gen: Generator) -> list[LayerInfo]:
    """The layers the program adapts to the training data (`Normalization`, …), in
    the model's order: those the spec did not give what they would learn."""
    return [info for info in gen.layers
            if info.cls in ADAPTED_BY and not info.template and not has_state(gen, info)]


def has_state(gen: Generator, info: LayerInfo) -> bool:
    """Whether a layer was given what it would otherwise learn (`vocabulary = …`)."""
    node = resolve(gen.ir, info.at)
    kwargs = node.get("kwargs", {}) if isinstance(node, dict) else {}
    return any(k in kwargs for k in ADAPTED_BY.get(info.cls, ()))


def gen_span(gen: Generator, info: Any):
    return gen.span(info.at)


def _call(head: str, args: list[str], width: int) -> str:
    return call_text(head, args, width - 4)
