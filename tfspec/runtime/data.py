"""The data half of a program: splits, sources' fixed parts, tf.data pipelines, the data
check and adaptation.

A program's `load_splits()` calls its source (numpy, the csv module, Keras's
folder readers, TensorFlow Datasets…) and splits what it loads with `split_arrays`
(arrays in memory) or `split_dataset` (a tf.data dataset of examples); its
`pipeline(split, name)` calls `pipeline` with the spec's settings. Before training
`check_data` compares the data with the model, and `adapt` fits the layers that
learn from data.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .seeds import BatchSeeds, Epoch

Inputs = Mapping[str, tuple[tuple[Any, ...], str]]  # INPUTS: name -> (shape, dtype)
Splits = dict[str, Any]  # "train" / "validation" / "test" -> arrays or a dataset


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


def pipeline(split: Any, name: str, *, batch: int = 32, drop_remainder: bool = False,
             shuffle: bool | int = True, seed: int | None = None,
             cache: bool | str | os.PathLike[str] = True, cache_key: str = "",
             repeat: bool | int = False, parallel: int | str = "auto",
             prefetch: int | str = "auto", augment: Callable[[], keras.Layer] | None = None,
             epoch: Epoch | None = None) -> tf.data.Dataset:
    """One split batched for training, as TensorFlow's tf.data guide recommends.

    `split`: the `(features, labels)` arrays of a split, or a dataset of examples.
    `name`: "train" (shuffled, repeated, augmented), "validation", "test", or "adapt"
    (the training data as it is, for `adapt`). Arrays in memory are fed by
    shuffling their row numbers and gathering each batch's rows; a dataset (or
    arrays with a file `cache`) is cached, shuffled and batched. `augment` makes the
    layers that augment whole training batches; `"auto"` is tf.data.AUTOTUNE. With
    a `seed` the training data's order and augmentation are functions of (seed,
    `epoch`) alone, so a resumed run sees what an uninterrupted one does.
    """
    training = name == "train"
    if seed is not None and training and (shuffle is not False or augment is not None) and (
            epoch is None):
        raise ValueError("a seeded pipeline needs the `epoch` that orders its data")
    parallel_calls = tf.data.AUTOTUNE if parallel == "auto" else parallel
    file_cache = not isinstance(cache, bool)
    if isinstance(split, tf.data.Dataset) or file_cache:
        dataset = split if isinstance(split, tf.data.Dataset) else (
            tf.data.Dataset.from_tensor_slices(split))  # examples, for the file cache
        dataset = _examples(dataset, name, batch, drop_remainder, shuffle, seed, cache,
                            cache_key, repeat, parallel_calls, epoch)
    else:
        dataset = _gathered(split, training, batch, drop_remainder, shuffle, seed, repeat,
                            parallel_calls, epoch)
    if training and augment is not None:
        dataset = _augmented(dataset, augment(), seed, parallel_calls, epoch)
    return dataset.prefetch(tf.data.AUTOTUNE if prefetch == "auto" else prefetch)


def make_datasets(splits: Splits, pipeline: Callable[[Any, str], tf.data.Dataset]
                  ) -> dict[str, tf.data.Dataset]:
    """`pipeline(split, name)` of each split."""
    return {name: pipeline(split, name) for name, split in splits.items()}


def _seeded_shuffle(dataset: tf.data.Dataset, buffer: Any, seed: int,
                    epoch: Epoch) -> tf.data.Dataset:
    """Each epoch's order as a function of (seed, epoch) alone, so that a resumed run
    shuffles its epochs as an uninterrupted run does."""
    base, variable = dataset, epoch.variable
    return tf.data.Dataset.from_tensors(0).flat_map(
        lambda _: base.shuffle(buffer, seed=seed + variable, reshuffle_each_iteration=False)
    )


def _gathered(arrays: Any, training: bool, batch: int, drop_remainder: bool,
              shuffle: bool | int, seed: int | None, repeat: bool | int, parallel: Any,
              epoch: Epoch | None) -> tf.data.Dataset:
    """Arrays in memory: shuffling row numbers costs nothing per example, and one
    `tf.gather` per batch replaces a slice per example (and a cache). A seeded
    shuffle of the row numbers puts the rows in the order that the same shuffle of
    the examples would."""
    tensors = tf.nest.map_structure(tf.convert_to_tensor, arrays)
    count = len(tf.nest.flatten(arrays)[0])
    dataset = tf.data.Dataset.range(count)
    if training and shuffle is not False:
        # the whole split: its row numbers are all the buffer holds
        buffer = count if shuffle is True else shuffle
        if seed is None:
            dataset = dataset.shuffle(buffer)
        else:
            dataset = _seeded_shuffle(dataset, buffer, seed, epoch).apply(
                tf.data.experimental.assert_cardinality(count))
    dataset = _repeated_and_batched(dataset, training, repeat, batch, drop_remainder,
                                    parallel)
    dataset = dataset.map(
        lambda rows: tf.nest.map_structure(lambda t: tf.gather(t, rows), tensors),
        num_parallel_calls=parallel,
    )
    # a gather per batch needs no tuning, and tf.data's autotuner would take CPU from
    # training (AUTOTUNE then means fixed defaults): measured by
    # benchmarks/train_overhead.py on 2 cores, every other epoch or so trained a
    # third slower with it on
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _examples(dataset: tf.data.Dataset, name: str, batch: int, drop_remainder: bool,
              shuffle: bool | int, seed: int | None, cache: Any, cache_key: str,
              repeat: bool | int, parallel: Any, epoch: Epoch | None) -> tf.data.Dataset:
    """A dataset of examples: cache, shuffle, repeat, batch."""
    training = name == "train"
    if name != "adapt":  # one pass only: nothing to cache
        if cache is True:
            dataset = dataset.cache()
        elif cache is not False:
            # one file per split; the key changes with the spec's data section, or
            # TensorFlow would go on reading a cache of the old data
            path = os.fspath(cache)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            dataset = dataset.cache(f"{path}_{name}_{cache_key}")
    if training and shuffle is not False:
        if shuffle is True:
            size = int(dataset.cardinality())
            # the whole split when it is known and small, else 10,000
            buffer = size if 0 < size <= 10_000 else 10_000
        else:
            buffer = shuffle
        if seed is None:
            dataset = dataset.shuffle(buffer)
        else:
            size = dataset.cardinality()
            dataset = _seeded_shuffle(dataset, buffer, seed, epoch)
            if size >= 0:
                dataset = dataset.apply(tf.data.experimental.assert_cardinality(size))
    return _repeated_and_batched(dataset, training, repeat, batch, drop_remainder, parallel)


def _repeated_and_batched(dataset: tf.data.Dataset, training: bool, repeat: bool | int,
                          batch: int, drop_remainder: bool, parallel: Any) -> tf.data.Dataset:
    if training and repeat is not False:
        dataset = dataset.repeat() if repeat is True else dataset.repeat(repeat)
    return dataset.batch(batch, drop_remainder=drop_remainder, num_parallel_calls=parallel)


def _augmented(dataset: tf.data.Dataset, augment: keras.Layer, seed: int | None,
               parallel: Any, epoch: Epoch | None) -> tf.data.Dataset:
    """Whole training batches augmented in parallel; with a seed, reproducibly (BatchSeeds:
    a function of seed, epoch and batch number, so that resume repeats it too)."""
    if seed is None:
        return dataset.map(lambda x, y: (augment(x, training=True), y),
                           num_parallel_calls=parallel)
    seeded = BatchSeeds(augment, seed, epoch)
    return dataset.enumerate().map(
        lambda batch, example: (seeded(batch, example[0]), example[1]),
        num_parallel_calls=parallel,
    )


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
        largest = int(dataset.take(64).reduce(
            tf.constant(0, tf.int64),
            lambda top, batch: tf.maximum(top, tf.cast(tf.reduce_max(
                batch[1] if not isinstance(batch[1], dict) else batch[1][name]), tf.int64)),
        ))
        if largest >= units:
            raise ValueError(
                f"the labels of output `{name}` go up to {largest}, but it has "
                f"{units} units: it needs at least {largest + 1}"
            )


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
    features = train.map(lambda x, y: x)
    if through_model:
        features = features.map(keras.Model(model.inputs, found.input))
    found.adapt(features)
