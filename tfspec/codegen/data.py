"""The data half of the generated program: a `data { … }` section -> tf.data code.

`program.write_program` hands the data section to `DataGenerator`, which writes:

- `load_splits()`: the source's real loader (one `source_<name>` method per
  source: numpy for `.npz`, the csv module, `keras.utils.image_dataset_from_directory`,
  tensorflow_datasets, TFRecord parsing…) returning per split the `(features,
  labels)` arrays of the sources that load into memory (ARRAY_SOURCES), or an
  unbatched `tf.data` dataset of them;
- `pipeline()` / `make_datasets()`: for arrays, shuffled row indices, batched, and
  one parallel gather per batch; for datasets, cache, shuffle, batch in the order of
  TensorFlow's tf.data performance guide; then augment and prefetch;
- `adapt()`: fits the layers that learn from data (Normalization,
  TextVectorization, StringLookup…) on the training split, inside the model, so an
  exported model takes raw inputs;
- `check_data()`: compares the data's element spec with the model's inputs,
  outputs and losses before any step runs.

Generic helpers are fixed text (`_HELPERS`), written only when a program needs them.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from ..lang.located import escape
from .pytext import Scope, call_text
from .writer import CodeWriter

if TYPE_CHECKING:
    from .model import Generator, LayerInfo

# Sources that load whole arrays into memory: their pipeline gathers batches of rows.
ARRAY_SOURCES = {"npz", "csv", "synthetic", "keras"}

# Layer arguments that, when missing, mean the layer must be adapted to data.
ADAPTED_BY = {
    "Normalization": ("mean",),
    "TextVectorization": ("vocabulary",),
    "StringLookup": ("vocabulary",),
    "IntegerLookup": ("vocabulary",),
    "Discretization": ("bin_boundaries",),
}

_HELPERS: dict[str, str] = {
    "BatchSeeds": '''
class BatchSeeds:
    """`augment(features)` that every run repeats. Its random layers draw their seeds
    from (seed, layer, draw, epoch, batch number) instead of from their seed
    generators, whose state the batches augmented in parallel would share and race
    for: the same batch of the same epoch is augmented the same way in every run,
    resumed or not, however many batches are augmented at once."""

    def __init__(self, augment, seed):
        self.augment, self.batch, self.draws = augment, None, 0
        # every layer, those inside RandAugment, AugMix or Pipeline too
        for number, layer in enumerate(augment._flatten_layers(include_self=False)):
            stream = (seed if getattr(layer, "seed", None) is None else layer.seed, number)
            for generator in list(vars(layer).values()):
                if isinstance(generator, keras.random.SeedGenerator):
                    generator.next = functools.partial(self.draw, stream, generator.state.dtype)

    def __call__(self, batch, features):
        # traced once by `map`: the seeds are tensors of the batch's number
        self.batch, self.draws = batch, 0
        return self.augment(features, training=True)

    def draw(self, stream, dtype, ordered=True):
        seed = tf.constant(stream, tf.int64)
        for data in (self.draws, current_epoch(), self.batch):
            seed = tf.random.experimental.stateless_fold_in(seed, data)
        self.draws += 1
        return tf.cast(seed, dtype)
''',
    "model_outputs": '''
def model_outputs(model):
    """The model's output tensors by output name, for every kind of model."""
    try:
        structure = model.output
    except AttributeError:  # keras.Sequential keeps its graph inside
        structure = model.outputs[0]
    return structure if isinstance(structure, dict) else {OUTPUTS[0]: structure}
''',
    "split_arrays": '''
def split_arrays(features, labels, validation, test, seed):
    """Shuffle once with `seed` and hold out the last fractions: the same every run.
    Returns the `(features, labels)` arrays of each split."""
    count = len(labels if not isinstance(labels, dict) else next(iter(labels.values())))
    order = np.random.default_rng(seed).permutation(count)
    n_test = round(count * test)
    n_validation = round(count * validation)
    n_train = count - n_validation - n_test
    parts = {
        "train": order[:n_train],
        "validation": order[n_train:n_train + n_validation],
        "test": order[n_train + n_validation:],
    }

    def take(tree, index):
        if isinstance(tree, dict):
            return {key: value[index] for key, value in tree.items()}
        return tree[index]

    return {
        name: (take(features, index), take(labels, index))
        for name, index in parts.items()
        if len(index)
    }
''',
    "split_dataset": '''
def split_dataset(dataset, validation, test, seed):
    """Fractions of a dataset: one seeded shuffle (the same every run), then take/skip."""
    count = int(dataset.cardinality())
    if count < 0:  # unknown (files, generators): count once
        count = int(dataset.reduce(0, lambda n, _: n + 1))
    dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=False)
    n_test = round(count * test)
    n_validation = round(count * validation)
    n_train = count - n_validation - n_test
    parts = {
        "train": dataset.take(n_train),
        "validation": dataset.skip(n_train).take(n_validation),
        "test": dataset.skip(n_train + n_validation),
    }
    sizes = {"train": n_train, "validation": n_validation, "test": n_test}
    # tell tf.data (and Keras's progress and epoch ends) how long each split is
    return {
        name: part.apply(tf.data.experimental.assert_cardinality(sizes[name]))
        for name, part in parts.items()
        if sizes[name]
    }
''',
    "read_csv": '''
def read_csv(path, delimiter=",", header=True, na_value=""):
    """Columns of a CSV file as numpy arrays: numbers where every cell is one."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file, delimiter=delimiter))
    names = rows.pop(0) if header else [f"column_{i}" for i in range(len(rows[0]))]
    columns = {}
    for i, name in enumerate(names):
        cells = [row[i] if row[i] != na_value else "nan" for row in rows]
        try:
            values = np.array([float(cell) for cell in cells])
        except ValueError:
            columns[name] = np.array(cells)
            continue
        whole = np.all(np.isfinite(values)) and np.all(values == np.round(values))
        columns[name] = values.astype("int64" if whole else "float32")
    return columns
''',
    "check_data": '''
def check_data(model, dataset, losses):
    """Stop before training when the data cannot feed the model (names, ranks, dtypes,
    labels against each loss), naming both sides."""
    features, labels = dataset.element_spec
    if isinstance(features, dict):
        for name in INPUTS:
            if name not in features:
                raise ValueError(
                    f"the model input `{name}` has no data: the data has the features "
                    f"{sorted(features)}"
                )
        pairs = [(name, features[name]) for name in INPUTS]
    else:
        if len(INPUTS) != 1:
            raise ValueError(
                f"the data has one feature tensor but the model has {len(INPUTS)} inputs "
                f"{sorted(INPUTS)}: give the source one array per input"
            )
        pairs = [(next(iter(INPUTS)), features)]
    for name, spec in pairs:
        want, dtype = INPUTS[name]
        got = tuple(spec.shape[1:])
        if len(want) != len(got) or any(w is not None and g is not None and w != g
                                         for w, g in zip(want, got, strict=True)):
            raise ValueError(
                f"the data for model input `{name}` has shape {got} per example, "
                f"but `{name}` is declared with shape {want}"
            )
        if (spec.dtype == tf.string) != (dtype == "string"):
            raise ValueError(
                f"the data for model input `{name}` is {spec.dtype.name}, "
                f"but `{name}` is declared {dtype}"
            )
    outputs = model_outputs(model)
    label_specs = labels if isinstance(labels, dict) else {name: labels for name in outputs}
    for name, loss in losses.items():
        if name not in label_specs or name not in outputs:
            continue
        label, output = label_specs[name], outputs[name]
        units = output.shape[-1]
        sparse = "sparse" in loss
        if sparse and len(label.shape) == len(output.shape) and label.shape[-1] not in (1, None):
            raise ValueError(
                f"`{loss}` expects integer class ids for output `{name}`, "
                f"but the labels have shape {tuple(label.shape[1:])} (one-hot?): "
                f"use `categorical_crossentropy`"
            )
        if "categorical" in loss and not sparse and len(label.shape) < len(output.shape):
            raise ValueError(
                f"`{loss}` expects one-hot labels of shape {tuple(output.shape[1:])} for "
                f"output `{name}`, but the labels are class ids: use "
                f"`sparse_categorical_crossentropy`"
            )
        if sparse and units is not None and label.dtype.is_integer:
            largest = int(dataset.take(64).reduce(
                tf.constant(0, tf.int64),
                lambda top, batch, name=name: tf.maximum(top, tf.cast(tf.reduce_max(
                    batch[1] if not isinstance(batch[1], dict) else batch[1][name]), tf.int64)),
            ))
            if largest >= units:
                raise ValueError(
                    f"the labels of output `{name}` go up to {largest}, but it has "
                    f"{units} units: it needs at least {largest + 1}"
                )
''',
}


class DataGenerator:
    def __init__(self, gen: Generator, data: dict[str, Any], at: str = "/data"):
        self.gen = gen
        self.data = data
        self.at = at
        self.helpers: list[str] = []
        self.imports: set[str] = {"tensorflow"}
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

    def span(self, key: str = "source"):
        return self.gen.span(f"{self.at}/{key}")

    # -- the functions -------------------------------------------------------------------------

    def emit(self, w: CodeWriter) -> None:
        source = self.data["source"]["call"]
        w.blank(2)
        w.line("def load_splits():", self.span())
        with w.indented():
            getattr(self, f"source_{source}")(w)
        self.pipeline(w)
        for name in self.helpers:
            w.blank(2)
            w.line(_HELPERS[name].strip("\n"), self.span())

    def need(self, helper: str) -> None:
        if helper not in self.helpers:
            self.helpers.append(helper)

    def doc(self, w: CodeWriter, what: str) -> None:
        where = self.gen.where(f"{self.at}/source")
        if len(what) + len(where) + 12 <= w.width:
            w.line(f'"""{what} ({where})."""')
        else:
            w.line(f'"""{what}')
            w.line(f'({where})."""')

    def array_splits(self, w: CodeWriter) -> None:
        validation, test, seed = self.fractions()
        self.need("split_arrays")
        self.imports.add("numpy")
        w.line(f"return split_arrays(features, labels, validation={validation}, "
               f"test={test}, seed={seed})", self.span("split"))

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
            return f"{table}[{_q(names)}]"
        keys = self.gen.model_names(side)
        items = ", ".join(f"{_q(k)}: {table}[{_q(n)}]" for k, n in zip(keys, names, strict=False))
        return "{" + items + "}"

    def source_csv(self, w: CodeWriter) -> None:
        self.imports |= {"numpy", "csv"}
        self.need("read_csv")
        self.doc(w, "The columns of the CSV file, split")
        path = self.source_arg("path")
        args = [f"SPEC_DIR / {path}"]
        for key, default in (("delimiter", ","), ("header", True), ("na_value", "")):
            text = self.source_arg(key, default)
            if text != self.gen.literal(default):
                args.append(f"{key}={text}")
        w.line(f"columns = read_csv({', '.join(args)})", self.span())
        # `csv(…, label = …)`, or the section's `labels = [...]`
        label = self.raw_arg("label") or self.data.get("labels")
        labels = label if isinstance(label, list) else [label] if label else []
        outputs = self.gen.model_names("outputs")
        if len(labels) == 1:
            w.line(f"labels = columns.pop({_q(labels[0])})")
        elif labels:
            w.line("labels = {" + ", ".join(f"{_q(o)}: columns.pop({_q(c)})"
                                            for o, c in zip(outputs, labels, strict=False))
                   + "}")
        else:
            w.line("labels = np.zeros(len(next(iter(columns.values()))), 'float32')")
        features = self.raw_arg("features") or self.data.get("features")
        if isinstance(features, list):
            w.line("columns = {name: columns[name] for name in " + repr(features) + "}")
        inputs = self.gen.model_names("inputs")
        if len(inputs) > 1:
            w.line("missing = [name for name in INPUTS if name not in columns]")
            w.line("if missing:")
            with w.indented():
                w.line("raise ValueError(")
                with w.indented():
                    w.line('f"the CSV has no column for the model input(s) '
                           '{\', \'.join(f\'`{name}`\' for name in missing)}; its columns are "')
                    w.line('f"{\', \'.join(sorted(columns))}"')
                w.line(")")
        if len(inputs) == 1:
            w.line("# one model input: the feature columns side by side, as float32")
            w.line("features = np.stack(list(columns.values()), axis=-1).astype(\"float32\")")
        else:
            w.line("features = {name: columns[name] for name in " + repr(inputs) + "}")
        self.array_splits(w)

    def source_keras(self, w: CodeWriter) -> None:
        name = self.raw_arg("name", "mnist")
        self.imports.add("numpy")
        self.doc(w, f"`keras.datasets.{name}`: its own test split; validation held out")
        w.line(f"(x_train, y_train), (x_test, y_test) = keras.datasets.{name}.load_data()",
               self.span())
        if name in ("imdb", "reuters"):
            # word-index sequences of every length: padded to the model's input length
            w.line("length = next(iter(INPUTS.values()))[0][0]")
            w.line("x_train = keras.utils.pad_sequences(x_train, maxlen=length)")
            w.line("x_test = keras.utils.pad_sequences(x_test, maxlen=length)")
        validation, _, seed = self.fractions()
        self.need("split_arrays")
        w.line(f"splits = split_arrays(x_train, y_train, validation={validation}, test=0.0, "
               f"seed={seed})")
        w.line('splits["test"] = (x_test, y_test)')
        w.line("return splits")

    def source_synthetic(self, w: CodeWriter) -> None:
        self.imports.add("numpy")
        self.doc(w, "Random tensors shaped like the model's inputs and outputs")
        samples = self.source_arg("samples", 256)
        classes = self.source_arg("classes", None)
        seed = self.source_arg("seed", 0)
        w.line(f"rng = np.random.default_rng({seed})", self.span())
        w.line("features = {}")
        w.line("for name, (shape, dtype) in INPUTS.items():")
        with w.indented():
            w.line(f"shape = ({samples}, *(d or 1 for d in shape))")
            w.line('if dtype == "string":')
            with w.indented():
                w.line('values = rng.choice(["red", "green", "blue", "grey"], size=shape)')
            w.line('elif "int" in dtype:')
            with w.indented():
                w.line(f"values = rng.integers(0, {classes} or 10, size=shape)")
            w.line("else:")
            with w.indented():
                w.line('values = rng.normal(size=shape).astype("float32")')
            w.line("features[name] = values")
        self.need("model_outputs")
        w.line("labels = {}")
        w.line("for name, tensor in model_outputs(build_model()).items():")
        with w.indented():
            w.line("units = tensor.shape[-1] or 1")
            w.line(f"if \"sparse\" in LOSSES.get(name, \"\") or ({classes} and units > 1):")
            with w.indented():
                w.line(f"labels[name] = rng.integers(0, min({classes} or units, units), "
                       f"size=({samples}, *tensor.shape[1:-1]))")
            w.line("elif units == 1:")
            with w.indented():
                w.line(f"labels[name] = rng.integers(0, 2, size=({samples}, 1))"
                       ".astype(\"float32\")")
            w.line("else:")
            with w.indented():
                w.line(f"labels[name] = rng.normal(size=({samples}, *tensor.shape[1:]))"
                       ".astype(\"float32\")")
        w.line("if len(features) == 1:")
        with w.indented():
            w.line("(features,) = features.values()")
        w.line("if len(labels) == 1:")
        with w.indented():
            w.line("(labels,) = labels.values()")
        self.array_splits(w)

    def dataset_splits(self, w: CodeWriter) -> None:
        validation, test, seed = self.fractions()
        self.need("split_dataset")
        w.line(f"return split_dataset(dataset, validation={validation}, test={test}, "
               f"seed={seed})", self.span("split"))

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
            split = _q(parts["train"])
        if named:
            w.line("splits = {}")
            for key, value in [("train", None), *named.items()]:
                which = split if value is None else _q(value)
                w.line(_call(f"splits[{_q(key)}] = tfds.load", [name, f"split={which}",
                                                                 *common], w.width),
                       self.span())
            w.line("return splits")
            return
        w.line(_call("dataset = tfds.load", [name, f"split={split}", *common], w.width),
               self.span())
        self.dataset_splits(w)

    def source_tfrecord(self, w: CodeWriter) -> None:
        self.doc(w, "tf.train.Example records; features described by the model's inputs")
        pattern = self.source_arg("pattern")
        label = self.raw_arg("label", "label")
        compression = self.source_arg("compression", "")
        w.line(f"files = sorted(str(p) for p in SPEC_DIR.glob({pattern}))", self.span())
        w.line("types = {\"string\": tf.string, \"int32\": tf.int64, \"int64\": tf.int64}")
        w.line("description = {")
        with w.indented():
            w.line("name: tf.io.FixedLenFeature(shape, types.get(dtype, tf.float32))")
            w.line("for name, (shape, dtype) in INPUTS.items()")
        w.line("}")
        w.line(f"description[{_q(label)}] = tf.io.FixedLenFeature([], tf.int64)")
        w.line("")
        w.line("def parse(record):")
        with w.indented():
            w.line("example = tf.io.parse_single_example(record, description)")
            w.line(f"label = example.pop({_q(label)})")
            w.line("if len(example) == 1:")
            with w.indented():
                w.line("(example,) = example.values()")
            w.line("return example, label")
        w.line("")
        w.line(_call("dataset = tf.data.TFRecordDataset", [
            "files", f"compression_type={compression}",
            "num_parallel_reads=tf.data.AUTOTUNE"], w.width))
        w.line("dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)")
        self.dataset_splits(w)

    def source_generator(self, w: CodeWriter) -> None:
        target = self.raw_arg("target", "")
        module, _, function = target.partition(":")
        self.imports.add(f"module:{module}")
        self.doc(w, f"Examples from `{target}` (allowed with --allow-module {module})")
        self.need("model_outputs")
        w.line("features = {n: tf.TensorSpec(s, d) for n, (s, d) in INPUTS.items()}",
               self.span())
        w.line("labels = {}")
        w.line("for name, tensor in model_outputs(build_model()).items():")
        with w.indented():
            w.line("if \"sparse\" in LOSSES.get(name, \"\"):  # class ids, not one-hot")
            with w.indented():
                w.line("labels[name] = tf.TensorSpec(tensor.shape[1:-1], tf.int64)")
            w.line("else:")
            with w.indented():
                w.line("labels[name] = tf.TensorSpec(tensor.shape[1:], tensor.dtype)")
        w.line("signature = (")
        with w.indented():
            w.line("next(iter(features.values())) if len(features) == 1 else features,")
            w.line("next(iter(labels.values())) if len(labels) == 1 else labels,")
        w.line(")")
        w.line(f"dataset = tf.data.Dataset.from_generator({module.split('.')[-1]}."
               f"{function}, output_signature=signature)")
        self.dataset_splits(w)

    # -- the pipeline -----------------------------------------------------------------------

    def gathers(self) -> bool:
        """Whether the pipeline gathers batches of rows from arrays in memory: the
        sources that load arrays, unless a file cache is asked for (which caches a
        dataset of examples)."""
        return self.data["source"]["call"] in ARRAY_SOURCES and not isinstance(
            self.data.get("cache", True), str)

    def shuffle_seed(self) -> str:
        """The data's shuffle seed as Python (`data.seed`, else the split's), or "None"."""
        if "seed" in self.data:
            return self.value("seed")
        return self.fractions()[2] if "seed" in (self.data.get("split") or {}) else "None"

    def pipeline(self, w: CodeWriter) -> None:
        arrays = self.data["source"]["call"] in ARRAY_SOURCES
        w.blank(2)
        w.line(f"def pipeline({'arrays' if arrays else 'dataset'}, split):", self.span())
        with w.indented():
            if self.gathers():
                w.line('"""One split of arrays in memory: shuffle the row numbers (the training '
                       "set's,")
                w.line("every epoch), batch them, gather each batch's rows in parallel, augment "
                       "whole")
                w.line('batches, and prefetch so that input overlaps training."""')
                w.line('training = split == "train"  # "adapt": the training data as it is')
                self.gather_rows(w)
            else:
                w.line('"""One split, tuned as TensorFlow\'s tf.data guide recommends: cache '
                       'what is')
                w.line("loaded, shuffle the training set every epoch, batch, augment whole "
                       "batches")
                w.line('in parallel, and prefetch so that input overlaps training."""')
                w.line('training = split == "train"  # "adapt": the training data as it is')
                if arrays:
                    w.line("# examples, for the file cache")
                    w.line("dataset = tf.data.Dataset.from_tensor_slices(arrays)")
                self.examples(w)
            self.augment(w)
            prefetch = self.data.get("prefetch", "auto")
            depth = "tf.data.AUTOTUNE" if prefetch == "auto" else self.value("prefetch")
            w.line(f"return dataset.prefetch({depth})",
                   self.span("prefetch") if "prefetch" in self.data else None)
        w.blank(2)
        w.line("def make_datasets(splits=None):", self.span())
        with w.indented():
            w.line('"""The batched `train`, `validation` and `test` pipelines that exist."""')
            w.line("splits = splits if splits is not None else load_splits()")
            w.line("return {name: pipeline(split, name) for name, split in splits.items()}")
        if self.gen.data_by_epoch():
            w.blank(2)
            w.line("def current_epoch():")
            with w.indented():
                w.line('"""EPOCH, made the first time it is needed."""')
                w.line("global EPOCH")
                w.line("if EPOCH is None:")
                with w.indented():
                    w.line("EPOCH = tf.Variable(0, dtype=tf.int64, trainable=False)")
                w.line("return EPOCH")
        self.adapt(w)
        self.need("check_data")
        self.need("model_outputs")

    def parallel_calls(self) -> str:
        parallel = self.data.get("parallel", "auto")
        return "tf.data.AUTOTUNE" if parallel == "auto" else self.value("parallel")

    def batch_line(self, w: CodeWriter) -> None:
        args = [self.value("batch", 32)]
        if self.data.get("drop_remainder"):
            args.append(f"drop_remainder={self.value('drop_remainder')}")
        args.append(f"num_parallel_calls={self.parallel_calls()}")
        w.line(f"dataset = dataset.batch({', '.join(args)})",
               self.span("batch") if "batch" in self.data else None)

    def repeat_line(self, w: CodeWriter) -> None:
        repeat = self.data.get("repeat", False)
        if repeat is not False:
            count = "" if repeat is True else self.value("repeat")
            w.line("if training:")
            with w.indented():
                w.line(f"dataset = dataset.repeat({count})", self.span("repeat"))

    def gather_rows(self, w: CodeWriter) -> None:
        """The pipeline of arrays in memory: shuffling row numbers costs nothing per
        example, and one `tf.gather` per batch replaces a slice per example (and a cache).
        A seeded shuffle of the row numbers puts the rows in the order that the same
        shuffle of the examples would."""
        shuffle = self.data.get("shuffle", True)
        seed = self.shuffle_seed()
        at = self.span("shuffle") if "shuffle" in self.data else None
        w.line("tensors = tf.nest.map_structure(tf.convert_to_tensor, arrays)")
        w.line("count = len(tf.nest.flatten(arrays)[0])")
        w.line("dataset = tf.data.Dataset.range(count)")
        if shuffle is not False:
            w.line("if training:")
            with w.indented():
                # the whole split: its row numbers are all the buffer holds
                buffer = "count" if shuffle is True else self.value("shuffle")
                if seed == "None":
                    w.line(f"dataset = dataset.shuffle({buffer})", at)
                else:
                    w.line("# each epoch's order is a function of (seed, epoch) alone, so a")
                    w.line("# resumed run shuffles its epochs as an uninterrupted run does")
                    w.line("indices, epoch = dataset, current_epoch()")
                    w.line("dataset = tf.data.Dataset.from_tensors(0).flat_map(")
                    with w.indented():
                        w.line(f"lambda _: indices.shuffle({buffer}, seed={seed} + epoch, "
                               "reshuffle_each_iteration=False)", at)
                    w.line(").apply(tf.data.experimental.assert_cardinality(count))")
        self.repeat_line(w)
        self.batch_line(w)
        w.line("dataset = dataset.map(")
        with w.indented():
            w.line("lambda rows: tf.nest.map_structure(lambda t: tf.gather(t, rows), "
                   "tensors),")
            w.line(f"num_parallel_calls={self.parallel_calls()},")
        w.line(")")
        # measured by benchmarks/train_overhead.py on 2 cores: with the autotuner on,
        # every other epoch or so trained a third slower
        w.line("# a gather per batch needs no tuning, and tf.data's autotuner would take "
               "CPU")
        w.line("# from training (AUTOTUNE then means fixed defaults)")
        w.line("options = tf.data.Options()")
        w.line("options.autotune.enabled = False")
        w.line("dataset = dataset.with_options(options)")

    def examples(self, w: CodeWriter) -> None:
        """The pipeline of a dataset of examples: cache, shuffle, repeat, batch."""
        cache = self.data.get("cache", True)
        if cache is not False:
            w.line('if split != "adapt":  # one pass only: nothing to cache')
            w.level += 1
        if cache is True:
            w.line("dataset = dataset.cache()", self.span("cache") if "cache" in
                   self.data else None)
        elif isinstance(cache, str):
            w.line(f"cache = SPEC_DIR / {_q(cache)}", self.span("cache"))
            w.line("cache.parent.mkdir(parents=True, exist_ok=True)")
            # a new name when the data section (or a param) changes: TensorFlow
            # would otherwise go on reading a cache of the old data
            key = hashlib.sha1(json.dumps([self.data, self.gen.params], sort_keys=True,
                                          default=str).encode()).hexdigest()[:8]
            w.line(f"# one file per split; {key} changes with the spec's data section")
            w.line(f"dataset = dataset.cache(f\"{{cache}}_{{split}}_{key}\")")
        if cache is not False:
            w.level -= 1
        shuffle = self.data.get("shuffle", True)
        seed = self.shuffle_seed()
        if shuffle is not False:
            w.line("if training:")
            with w.indented():
                if shuffle is True:
                    w.line("size = int(dataset.cardinality())")
                    w.line("# the whole split when it is known and small, else 10,000")
                    w.line("buffer = size if 0 < size <= 10_000 else 10_000")
                else:
                    w.line(f"buffer = {self.value('shuffle')}")
                if seed == "None":
                    w.line("dataset = dataset.shuffle(buffer)",
                           self.span("shuffle") if "shuffle" in self.data else None)
                else:
                    w.line("# each epoch's order is a function of (seed, epoch) alone, so a")
                    w.line("# resumed run shuffles its epochs as an uninterrupted run does")
                    w.line("base, size, epoch = dataset, dataset.cardinality(), "
                           "current_epoch()")
                    w.line("dataset = tf.data.Dataset.from_tensors(0).flat_map(")
                    with w.indented():
                        w.line(f"lambda _: base.shuffle(buffer, seed={seed} + epoch, "
                               "reshuffle_each_iteration=False)",
                               self.span("shuffle") if "shuffle" in self.data else None)
                    w.line(")")
                    w.line("if size >= 0:")
                    with w.indented():
                        w.line("dataset = dataset.apply("
                               "tf.data.experimental.assert_cardinality(size))")
        self.repeat_line(w)
        self.batch_line(w)

    def augment(self, w: CodeWriter) -> None:
        """Augment whole training batches in parallel; with a data seed, reproducibly
        (BatchSeeds: a function of seed, epoch and batch, so resume repeats it too)."""
        gen, at = self.gen, self.at
        augment = self.data.get("augment") or []
        if not augment:
            return
        seeded = self.shuffle_seed() != "None"
        w.line("if training:")
        with w.indented():
            first = "augment = BatchSeeds(keras.Sequential([" if seeded else \
                "augment = keras.Sequential(["
            w.line(first, self.span("augment"))
            with w.indented():
                for i, call in enumerate(augment):
                    w.line(gen.construct(call, f"{at}/augment/{i}", "layers", self.scope) + ",",
                           gen.span(f"{at}/augment/{i}"))
            if seeded:
                w.line(f"], name=\"augment\"), seed={self.shuffle_seed()})")
                w.line("dataset = dataset.enumerate().map(")
                with w.indented():
                    w.line("lambda batch, example: (augment(batch, example[0]), example[1]),")
                    w.line(f"num_parallel_calls={self.parallel_calls()},")
                w.line(")")
                self.need("BatchSeeds")
                self.imports.add("functools")
                return
            w.line("], name=\"augment\")")
            w.line("dataset = dataset.map(")
            with w.indented():
                w.line("lambda x, y: (augment(x, training=True), y),")
                w.line(f"num_parallel_calls={self.parallel_calls()},")
            w.line(")")

    def adapt(self, w: CodeWriter) -> None:
        """`adapt(model, train)`: fit each layer that learns from data, in the model."""
        layers = [info for info in self.gen.layers
                  if info.cls in ADAPTED_BY and not info.template and
                  not has_state(self.gen, info)]
        w.blank(2)
        w.line("def adapt(model, train):", self.span())
        with w.indented():
            w.line('"""Fit the layers that learn from data (their vocabulary, mean…) to the')
            w.line('training split, inside the model: the exported model takes raw inputs."""')
            if not layers:
                w.line("del model, train  # no layer of this model learns from data")
                return
            w.line("features = train.map(lambda x, y: x)")
            subclass = (self.gen.ir.get("model") or {}).get("kind") == "subclass"
            for info in layers:
                w.line(f"layer = model.get_layer({_q(info.name)})", gen_span(self.gen, info))
                if subclass:  # no graph to cut: the layer must take a model input as is
                    w.line("layer.adapt(features)")
                    continue
                w.line("# the tensors that reach the layer, computed from the raw features")
                w.line("reach = keras.Model(model.inputs, layer.input)")
                w.line("layer.adapt(features.map(reach))")


def has_state(gen: Generator, info: LayerInfo) -> bool:
    """Whether a layer was given what it would otherwise learn (`vocabulary = …`)."""
    node: Any = gen.ir
    for part in info.at.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node.get(part)
    kwargs = node.get("kwargs", {}) if isinstance(node, dict) else {}
    return any(k in kwargs for k in ADAPTED_BY.get(info.cls, ()))


def gen_span(gen: Generator, info: Any):
    return gen.span(info.at)


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _call(head: str, args: list[str], width: int) -> str:
    return call_text(head, args, width - 4)
