"""The data half of a program: splits, sources' fixed parts, tf.data pipelines, the data
check and adaptation.

A program's `load_splits()` calls its source (numpy, the csv module, Keras's
folder readers, TensorFlow Datasets…) and splits what it loads with `split_arrays`
(arrays in memory) or `split_dataset` (a tf.data dataset of examples); its
`pipelines()` is a `Pipeline` of the spec's settings, whose `training`, `evaluation`
and `adaptation` batch a split, and whose `datasets` are every split's, with the
training data's endless form (`Datasets`, `TrainingData`). Before training
`check_data` compares the data with the model, and `adapt` fits the layers that
learn from data.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .seeds import BatchSeeds, Epoch

Inputs = Mapping[str, tuple[tuple[Any, ...], str]]  # INPUTS: name -> (shape, dtype)
Splits = dict[str, Any]  # "train" / "validation" / "test" -> arrays or a dataset


# tf.data traces its functions through AutoGraph, which reads and rewrites their
# source (milliseconds each): the ones here have no Python control flow over tensors
_plain = tf.autograph.experimental.do_not_convert


# -- splits -----------------------------------------------------------------------------------


def split_arrays(features: Any, labels: Any, validation: float, test: float,
                 seed: int) -> Splits:
    """Shuffle once with `seed` and hold out the last fractions: the same every run.

    Returns the `(features, labels)` arrays of each split that has examples.
    """
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

    def take(tree: Any, index: np.ndarray) -> Any:
        if isinstance(tree, dict):
            return {key: value[index] for key, value in tree.items()}
        return tree[index]

    return {
        name: (take(features, index), take(labels, index))
        for name, index in parts.items()
        if len(index)
    }


def split_dataset(dataset: tf.data.Dataset, validation: float, test: float,
                  seed: int) -> Splits:
    """Fractions of a dataset: one seeded shuffle (the same every run), then take/skip.

    Each split knows its size (Keras's progress bar and epoch ends need it).
    """
    count = int(dataset.cardinality())
    if count < 0:  # unknown (files, generators): count once
        count = int(dataset.reduce(0, _plain(lambda n, _: n + 1)))
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
    return {
        name: part.apply(tf.data.experimental.assert_cardinality(sizes[name]))
        for name, part in parts.items()
        if sizes[name]
    }


# -- sources ----------------------------------------------------------------------------------


def read_csv(path: str | os.PathLike[str], delimiter: str = ",", header: bool = True,
             na_value: str = "") -> dict[str, np.ndarray]:
    """Columns of a CSV file as numpy arrays: int64 or float32 where every cell is a
    number (`na_value` cells are NaN), else strings."""
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


def csv_arrays(columns: dict[str, np.ndarray], inputs: Inputs,
               labels: str | Mapping[str, str] | None = None,
               features: Sequence[str] | None = None) -> tuple[Any, Any]:
    """`(features, labels)` of CSV columns.

    `labels`: the label column, or {output: column} for several outputs; None gives
    zeros. `features`: the feature columns (by default every other column). One
    model input takes the feature columns side by side as float32; several take the
    column of their name.
    """
    columns = dict(columns)
    if isinstance(labels, str):
        label_arrays: Any = columns.pop(labels)
    elif labels:
        label_arrays = {output: columns.pop(column) for output, column in labels.items()}
    else:
        label_arrays = np.zeros(len(next(iter(columns.values()))), "float32")
    if features is not None:
        columns = {name: columns[name] for name in features}
    if len(inputs) == 1:
        return np.stack(list(columns.values()), axis=-1).astype("float32"), label_arrays
    missing = [name for name in inputs if name not in columns]
    if missing:
        raise ValueError(
            f"the CSV has no column for the model input(s) "
            f"{', '.join(f'`{name}`' for name in missing)}; its columns are "
            f"{', '.join(sorted(columns))}"
        )
    return {name: columns[name] for name in inputs}, label_arrays


def model_outputs(model: keras.Model, outputs: Sequence[str]) -> dict[str, Any]:
    """The model's output tensors by output name (`outputs`: the names in order), for
    every kind of model."""
    try:
        structure = model.output
    except AttributeError:  # keras.Sequential keeps its graph inside
        structure = model.outputs[0]
    return structure if isinstance(structure, dict) else {outputs[0]: structure}


def synthetic(model: keras.Model, inputs: Inputs, outputs: Sequence[str],
              losses: Mapping[str, str], samples: int = 256, classes: int | None = None,
              seed: int = 0) -> tuple[Any, Any]:
    """Random `(features, labels)` arrays shaped like the model's inputs and outputs:
    strings, class ids below `classes` (or 10), or normal floats; labels are class
    ids for sparse losses (or with `classes`), 0/1 for one unit, else normal."""
    rng = np.random.default_rng(seed)
    features = {}
    for name, (shape, dtype) in inputs.items():
        shape = (samples, *(d or 1 for d in shape))
        if dtype == "string":
            values = rng.choice(["red", "green", "blue", "grey"], size=shape)
        elif "int" in dtype:
            values = rng.integers(0, classes or 10, size=shape)
        else:
            values = rng.normal(size=shape).astype("float32")
        features[name] = values
    labels = {}
    for name, tensor in model_outputs(model, outputs).items():
        units = tensor.shape[-1] or 1
        if "sparse" in losses.get(name, "") or (classes and units > 1):
            labels[name] = rng.integers(0, min(classes or units, units),
                                        size=(samples, *tensor.shape[1:-1]))
        elif units == 1:
            labels[name] = rng.integers(0, 2, size=(samples, 1)).astype("float32")
        else:
            labels[name] = rng.normal(size=(samples, *tensor.shape[1:])).astype("float32")
    return _one(features), _one(labels)


def generator_signature(model: keras.Model, inputs: Inputs, outputs: Sequence[str],
                        losses: Mapping[str, str]) -> tuple[Any, Any]:
    """The `output_signature` of a generator of `(features, labels)` for the model:
    the declared inputs, and per output its labels (class ids for a sparse loss)."""
    features = {n: tf.TensorSpec(s, d) for n, (s, d) in inputs.items()}
    labels = {}
    for name, tensor in model_outputs(model, outputs).items():
        if "sparse" in losses.get(name, ""):  # class ids, not one-hot
            labels[name] = tf.TensorSpec(tensor.shape[1:-1], tf.int64)
        else:
            labels[name] = tf.TensorSpec(tensor.shape[1:], tensor.dtype)
    return _one(features), _one(labels)


def read_tfrecords(files: Iterable[Any], inputs: Inputs, label: str = "label",
                   compression: str = "") -> tf.data.Dataset:
    """The `(features, label)` examples of `tf.train.Example` records, their features
    described by the model's inputs and an int64 `label`."""
    types = {"string": tf.string, "int32": tf.int64, "int64": tf.int64}
    description = {
        name: tf.io.FixedLenFeature(shape, types.get(dtype, tf.float32))
        for name, (shape, dtype) in inputs.items()
    }
    description[label] = tf.io.FixedLenFeature([], tf.int64)

    def parse(record: tf.Tensor) -> tuple[Any, tf.Tensor]:
        example = tf.io.parse_single_example(record, description)
        target = example.pop(label)
        return _one(example), target

    dataset = tf.data.TFRecordDataset(sorted(str(p) for p in files),
                                      compression_type=compression,
                                      num_parallel_reads=tf.data.AUTOTUNE)
    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def pad_to_input(inputs: Inputs, *sequences: Any) -> list[np.ndarray]:
    """Word-index sequences of every length, padded (or cut) to the length of the
    model's first input."""
    length = next(iter(inputs.values()))[0][0]
    return [keras.utils.pad_sequences(x, maxlen=length) for x in sequences]


def _one(tree: dict[str, Any]) -> Any:
    """A dict of one entry as its value (one model input or output takes a tensor)."""
    return next(iter(tree.values())) if len(tree) == 1 else tree


# -- pipelines --------------------------------------------------------------------------------

# The size of a batch to adapt layers with, from arrays in memory: adapt's Python
# loop over batches costs more than its arithmetic on small ones (measured: 32 ms to
# adapt a Normalization to 105 rows of iris in batches of 16, 2 ms in one)
ADAPT_BYTES = 64 << 20

# The graph seed TensorFlow pairs with an op's seed where no global seed is set
DEFAULT_GRAPH_SEED = 87654321

class TrainingData:
    """The training split's pipeline: `dataset`, one epoch (the one `epoch` holds when an
    iteration starts), and `epochs()`, the same data epoch after epoch."""

    def __init__(self, dataset: tf.data.Dataset,
                 endless: Callable[[], tf.data.Dataset] | None = None) -> None:
        self.dataset = dataset
        self._endless = None if endless is None else functools.cache(endless)

    def epochs(self) -> tf.data.Dataset | None:
        """The batches of `dataset` epoch after epoch without end, from the epoch that
        `epoch` holds when the iteration starts: each epoch's order and augmentation are
        `dataset`'s for that epoch. Made once, on first use (augmentation is traced
        again for it). A loop that reads one iterator through the whole of training
        does not pay for a new iterator every epoch (milliseconds: a short epoch feels
        them). None where the epochs have no known length."""
        return None if self._endless is None else self._endless()


class Datasets(dict[str, tf.data.Dataset]):
    """The batched pipelines by split name, and `training`: the training split's
    `TrainingData` (None: a plain dict of pipelines), whose endless form the loops read."""

    def __init__(self, datasets: Mapping[str, tf.data.Dataset],
                 training: TrainingData | None = None) -> None:
        super().__init__(datasets)
        self.training = training


def train_epochs(datasets: Mapping[str, tf.data.Dataset]) -> tf.data.Dataset | None:
    """The training data epoch after epoch (`TrainingData.epochs`) of `Datasets` that
    hold it; None for any other mapping of pipelines (a new iterator every epoch)."""
    training = datasets.training if isinstance(datasets, Datasets) else None
    return None if training is None else training.epochs()


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """How `data { … }` batches its splits, as TensorFlow's tf.data guide recommends:
    `training(split)`, `evaluation(split, name)`, `adaptation(split)`.

    A split is the `(features, labels)` arrays of a split, or a dataset of examples.
    Arrays in memory are sliced and batched, or when shuffled, fed by shuffling their
    row numbers and gathering each batch's rows; a dataset (or arrays with a file
    `cache`) is cached, shuffled and batched. `augment` makes the layers that augment
    whole training batches; `"auto"` is tf.data.AUTOTUNE. With a `seed` the training
    data's order and augmentation are functions of (seed, epoch, batch) alone, so a
    resumed run sees what an uninterrupted one does: an iteration is the epoch that
    `epoch` holds when it starts.
    """

    batch: int = 32
    drop_remainder: bool = False
    shuffle: bool | int = True
    seed: int | None = None
    cache: bool | str | os.PathLike[str] = True
    cache_key: str = ""
    repeat: bool | int = False
    parallel: int | str = "auto"
    prefetch: int | str = "auto"
    augment: Callable[[], keras.Layer] | None = None
    epoch: Epoch | None = None

    def __call__(self, split: Any, name: str) -> tf.data.Dataset:
        """The split called `name` ("train": its one epoch; "adapt": the training
        data as it is, for `adapt`): a program's `pipeline(split, name)`."""
        if name == "train":
            return self.training(split).dataset
        if name == "adapt":
            return self.adaptation(split)
        return self.evaluation(split, name)

    def datasets(self, splits: Splits) -> Datasets:
        """Each split's pipeline (a program's `make_datasets`), with the training data's
        endless form."""
        pipelines, training = {}, None
        for name, split in splits.items():
            if name == "train":
                training = self.training(split)
                pipelines[name] = training.dataset
            else:
                pipelines[name] = self.evaluation(split, name)
        return Datasets(pipelines, training)

    def training(self, split: Any) -> TrainingData:
        """The training split: shuffled, repeated and augmented as the settings say."""
        shuffled = self.shuffle is not False
        layer = self.augment() if self.augment is not None else None
        # the epoch is part of the data when it seeds the order or the augmentation
        numbered = self.seed is not None and (shuffled or layer is not None)
        if numbered and self.epoch is None:
            raise ValueError("a seeded pipeline needs the `epoch` that orders its data")
        examples, tensors, size, buffer = _source(split, "train", shuffled, self.cache,
                                                  self.cache_key)
        if self.shuffle is not True and self.shuffle is not False:
            buffer = self.shuffle
        batches = self._epoch_batches(examples, buffer if shuffled else None, layer)
        prepare = _preparation(tensors, layer, self.seed if numbered else None)
        epoch = self.epoch
        if numbered:
            assert epoch is not None
            one = _epoch_numbers(epoch, 1).flat_map(batches)

            def endless() -> tf.data.Dataset:
                return _epoch_numbers(epoch).flat_map(batches)
        else:
            one = batches(None)
            endless = one.repeat  # each pass shuffled anew
        # the batches of an epoch, where known (repeated: without end, or `repeat` passes)
        passes = 1 if self.repeat is False else self.repeat
        per_epoch = (tf.data.INFINITE_CARDINALITY if passes is True
                     else _batch_count(size * passes, self.batch, self.drop_remainder))
        if numbered and per_epoch is not None:  # the epoch's flat_map hides it
            one = one.apply(tf.data.experimental.assert_cardinality(per_epoch))
        finish = functools.partial(self._finished, prepare, self._in_memory(split))
        if per_epoch is None or per_epoch < 0:
            return TrainingData(finish(one))
        return TrainingData(finish(one), lambda: finish(endless()))

    def evaluation(self, split: Any, name: str) -> tf.data.Dataset:
        """A validation or test split (`name`: its own cache file), in order."""
        examples, *_ = _source(split, name, False, self.cache, self.cache_key)
        return self._finished(None, self._in_memory(split), self._batched(examples))

    def adaptation(self, split: Any) -> tf.data.Dataset:
        """The training data as it is (not shuffled, augmented or cached: one pass), for
        `adapt`. Layers adapt a batch at a time in Python: arrays in memory come in
        big batches (ADAPT_BYTES)."""
        examples = split if isinstance(split, tf.data.Dataset) else (
            tf.data.Dataset.from_tensor_slices(split))
        in_memory = self._in_memory(split)
        batch = max(self.batch, ADAPT_BYTES // max(1, _example_bytes(split))) if (
            in_memory) else self.batch
        return self._finished(None, in_memory, self._batched(examples, batch))

    def _in_memory(self, split: Any) -> bool:
        """Arrays in memory, fed without a file cache."""
        return not isinstance(split, tf.data.Dataset) and isinstance(self.cache, bool)

    def _parallel_calls(self) -> int:
        return tf.data.AUTOTUNE if self.parallel == "auto" else int(self.parallel)

    def _batched(self, data: tf.data.Dataset, batch: int | None = None) -> tf.data.Dataset:
        return data.batch(batch or self.batch, drop_remainder=self.drop_remainder,
                          num_parallel_calls=self._parallel_calls())

    def _epoch_batches(self, examples: tf.data.Dataset, buffer: int | None,
                       layer: keras.Layer | None) -> Callable[[Any], tf.data.Dataset]:
        """The training batches of an epoch by its number (a tensor; None: no seed),
        which seeds the order; each batch with the epoch and its number when they seed
        the augmentation (`layer`). `buffer`: the shuffle's (None: in order)."""

        def batches(number: Any) -> tf.data.Dataset:
            data = examples
            if buffer is not None:
                data = data.shuffle(buffer) if number is None else _seeded_shuffle(
                    data, buffer, self.seed + number)
            if self.repeat is not False:
                data = data.repeat() if self.repeat is True else data.repeat(self.repeat)
            return self._batched(data)

        @_plain
        def numbered_batches(number: Any) -> tf.data.Dataset:
            if layer is None or number is None:
                return batches(number)
            return tf.data.Dataset.zip(tf.data.Dataset.from_tensors(number).repeat(),
                                       batches(number).enumerate())

        return numbered_batches

    def _finished(self, prepare: Callable[..., Any] | None, in_memory: bool,
                  data: tf.data.Dataset) -> tf.data.Dataset:
        """Batches made ready (`prepare`: gathered, augmented) and prefetched."""
        if prepare is not None:
            data = data.map(prepare, num_parallel_calls=self._parallel_calls())
        if in_memory:
            # a gather or slice per batch needs no tuning, and tf.data's autotuner would
            # take CPU from training (AUTOTUNE then means fixed defaults): measured by
            # benchmarks/train_overhead.py on 2 cores, every other epoch or so trained
            # a third slower with it on
            options = tf.data.Options()
            options.autotune.enabled = False
            data = data.with_options(options)
        return data.prefetch(tf.data.AUTOTUNE if self.prefetch == "auto" else self.prefetch)


def pipeline(split: Any, name: str, **settings: Any) -> tf.data.Dataset:
    """One split batched as `Pipeline(**settings)` does, by its name: "train" (one
    epoch; `Pipeline.training` has its endless form too), "validation", "test", or
    "adapt" (the training data as it is)."""
    return Pipeline(**settings)(split, name)


def _epoch_numbers(epoch: Epoch, count: int | None = None) -> tf.data.Dataset:
    """`count` epoch numbers (or endless) from the one `epoch` holds when an iteration
    starts (read then, not when the dataset is made)."""
    variable = epoch.variable

    @_plain
    def numbers(_: Any) -> tf.data.Dataset:
        start = variable.read_value()
        return tf.data.Dataset.range(start, start + count if count else tf.int64.max)

    return tf.data.Dataset.from_tensors(0).flat_map(numbers)


def _example_bytes(arrays: Any) -> int:
    """The bytes of one example of arrays in memory (strings: as held by numpy)."""
    return sum(a.nbytes // max(1, len(a)) for a in map(np.asarray, tf.nest.flatten(arrays)))


def _seeded_shuffle(data: tf.data.Dataset, buffer: int, seed: tf.Tensor) -> tf.data.Dataset:
    """`data` shuffled by `seed` (a tensor, in a tf.data function) alone, the same each
    time it is iterated. TensorFlow pairs an op's seed with the global one (`train.seed`),
    and where that is 0 it tests the pair against (0, 0), using a tensor as a bool (an
    error): the pair's first half is TensorFlow's own default instead, whatever the
    global seed."""
    tf.compat.v1.get_default_graph().seed = DEFAULT_GRAPH_SEED  # the function's graph
    return data.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)


def _batch_count(examples: int, batch: int, drop_remainder: bool) -> int | None:
    """The batches of an epoch of `examples` examples (negative: unknown → None)."""
    if examples < 0:
        return None
    return examples // batch if drop_remainder else -(-examples // batch)


def _source(split: Any, name: str, shuffled: bool, cache: bool | str | os.PathLike[str],
            cache_key: str) -> tuple[tf.data.Dataset, Any, int, int]:
    """Where a pipeline starts: its examples (or the row numbers of arrays in memory),
    those arrays as tensors (or None), the examples of a pass (negative: unknown), and
    the buffer that shuffles the whole split."""
    if isinstance(split, tf.data.Dataset) or not isinstance(cache, bool):
        examples = _cached(split, name, cache, cache_key)
        size = int(examples.cardinality())
        # the whole split when it is known and small, else 10,000
        return examples, None, size, size if 0 < size <= 10_000 else 10_000
    size = len(tf.nest.flatten(split)[0])
    if shuffled:
        # arrays in memory, shuffled: shuffling row numbers costs nothing per example,
        # and one `tf.gather` per batch replaces a slice per example (and a cache); a
        # seeded shuffle of the row numbers puts the rows in the order that the same
        # shuffle of the examples would
        tensors = tf.nest.map_structure(tf.convert_to_tensor, split)
        return tf.data.Dataset.range(size), tensors, size, size
    # in order: sliced and batched, with no function for an iterator to start (a
    # gather's costs milliseconds a pass, as much as a short pass takes)
    return tf.data.Dataset.from_tensor_slices(split), None, size, size


def _cached(split: Any, name: str, cache: bool | str | os.PathLike[str],
            cache_key: str) -> tf.data.Dataset:
    """The examples of a split (arrays: for the file cache) cached as `cache` says."""
    dataset = split if isinstance(split, tf.data.Dataset) else (
        tf.data.Dataset.from_tensor_slices(split))
    if cache is False:
        return dataset
    if cache is True:
        return dataset.cache()
    # one file per split; the key changes with the spec's data section, or TensorFlow
    # would go on reading a cache of the old data
    path = os.fspath(cache)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return dataset.cache(f"{path}_{name}_{cache_key}")


def _preparation(tensors: Any, layer: keras.Layer | None,
                 seed: int | None) -> Callable[..., Any] | None:
    """What makes a batch ready, in one `map`: gathering its rows (arrays in memory:
    `tensors`), then augmenting its features with `layer` (with a `seed`,
    reproducibly: the elements are `(epoch, (number, batch))`)."""

    @_plain
    def examples(batch: Any) -> Any:
        if tensors is None:
            return batch
        return tf.nest.map_structure(lambda t: tf.gather(t, batch), tensors)

    if layer is None:
        return None if tensors is None else examples
    if seed is None:
        def augmented(batch: Any) -> Any:
            features, labels = examples(batch)
            return layer(features, training=True), labels

        return augmented
    seeded = BatchSeeds(layer, seed)

    def augmented_seeded(epoch: tf.Tensor, numbered: Any) -> Any:
        number, batch = numbered
        features, labels = examples(batch)
        return seeded(epoch, number, features), labels

    return augmented_seeded


# -- before training --------------------------------------------------------------------------


def check_data(model: keras.Model, dataset: tf.data.Dataset, inputs: Inputs,
               outputs: Sequence[str], losses: Mapping[str, str]) -> None:
    """Stop before training when the data cannot feed the model (names, ranks, dtypes,
    labels against each loss), naming both sides: raises ValueError."""
    features, labels = dataset.element_spec
    if isinstance(features, dict):
        for name in inputs:
            if name not in features:
                raise ValueError(
                    f"the model input `{name}` has no data: the data has the features "
                    f"{sorted(features)}"
                )
        pairs = [(name, features[name]) for name in inputs]
    else:
        if len(inputs) != 1:
            raise ValueError(
                f"the data has one feature tensor but the model has {len(inputs)} inputs "
                f"{sorted(inputs)}: give the source one array per input"
            )
        pairs = [(next(iter(inputs)), features)]
    for name, spec in pairs:
        want, dtype = inputs[name]
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
    tensors = model_outputs(model, outputs)
    label_specs = labels if isinstance(labels, dict) else {name: labels for name in tensors}
    for name, loss in losses.items():
        if name in label_specs and name in tensors:
            _check_labels(dataset, name, loss, label_specs[name], tensors[name])


def _check_labels(dataset: tf.data.Dataset, name: str, loss: str, label: Any,
                  output: Any) -> None:
    """One output's labels against its loss: class ids or one-hot, and below its units."""
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
        largest = _largest_label(dataset, name)
        if largest >= units:
            raise ValueError(
                f"the labels of output `{name}` go up to {largest}, but it has "
                f"{units} units: it needs at least {largest + 1}"
            )


# dataset -> {output: its largest class id in the first batches}: the data's, whatever
# the model (a search checks the same data against every trial's model)
_LARGEST: weakref.WeakKeyDictionary[tf.data.Dataset, dict[str, int]] = (
    weakref.WeakKeyDictionary())


def _largest_label(dataset: tf.data.Dataset, name: str) -> int:
    """The largest class id of output `name` in the first 64 batches of `dataset`."""
    known = _LARGEST.setdefault(dataset, {})
    if name not in known:
        known[name] = int(dataset.take(64).reduce(
            tf.constant(0, tf.int64),
            _plain(lambda top, batch: tf.maximum(top, tf.cast(tf.reduce_max(
                batch[1] if not isinstance(batch[1], dict) else batch[1][name]), tf.int64))),
        ))
    return known[name]


def adapt(model: keras.Model, train: tf.data.Dataset, layer: str,
          through_model: bool = True) -> None:
    """Fit the model's layer named `layer` (a Normalization, TextVectorization…) to
    the features of the training split, inside the model, so that an exported model
    takes raw inputs.

    `through_model`: feed the layer the tensors that reach it, computed from the
    raw features (a subclassed model has no graph to cut: its layer must take a
    model input as it is).
    """
    found = model.get_layer(layer)
    cut, pick = None, None  # the model up to the layer; the features of one input
    if through_model:
        # a layer on a model input takes that input's features as they are (a model
        # cut there would cost a new Keras model and its function, every adapt)
        direct = next((t for t in model.inputs if t is found.input), None)
        if direct is None:
            cut = keras.Model(model.inputs, found.input)
        elif isinstance(train.element_spec[0], dict):
            pick = direct.name
    if cut is None and int(train.cardinality()) == 1:
        # one batch (arrays in memory, see ADAPT_BYTES): its tensor, which Keras adapts
        # as it does arrays, with no dataset function to trace and no loop in Python
        features = next(iter(train))[0]
        found.adapt(features if pick is None else features[pick])
        return
    features = train.map(_plain(lambda x, y: x))
    if cut is not None:
        features = features.map(cut)
    elif pick is not None:
        features = features.map(_plain(lambda x: x[pick]))
    found.adapt(features)
