"""The data half of compiled programs, run for real.

Every source reads real files written into a tmp folder next to its spec (or the
data shipped in examples/data), through the generated `load_splits()` /
`pipeline()`, then a tiny model trains one epoch on it. The only stand-ins are the
two the issue names: Keras's downloader is pointed at a local file of the real
`mnist.npz` layout, and `tfds.testing.mock_data` stands in for a prepared TFDS
dataset. Then: pipeline options, data/model mismatches as located E501
diagnostics, adapted preprocessing inside the exported SavedModel, and
`tfspec data`.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from data_fixtures import (
    EXAMPLES,
    copy_shipped,
    dataset_ops,
    prepare_tfds_points,
    source_position,
    write_boston_npz,
    write_color_csv,
    write_generator_module,
    write_mnist_npz,
    write_png_folders,
    write_points_npz,
    write_spec,
    write_tfrecords,
)

from tfspec.codegen.program import Compiled, compile_file
from tfspec.inspect.dataview import Prepared, prepare
from tfspec.inspect.dataview import datasets as load_datasets
from tfspec.jobs.build import quiet_tensorflow
from tfspec.lang.diagnostics import SpecError
from tfspec.lang.validate import validate_file

quiet_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

# -- helpers --------------------------------------------------------------------------------


def spec_losses(prepared: Prepared) -> Any:
    """The spec's loss as `model.compile` takes it: one name, or one per output."""
    losses = prepared.namespace["LOSSES"]
    return next(iter(losses.values())) if len(losses) == 1 else dict(losses)


def train_one_epoch(compiled: Compiled) -> tuple[Prepared, float]:
    """`prepare`, then one epoch of `fit` with the spec's loss; returns the loss."""
    prepared = prepare(compiled)
    model = prepared.model
    model.compile(optimizer="adam", loss=spec_losses(prepared))
    history = model.fit(
        prepared.datasets["train"],
        validation_data=prepared.datasets.get("validation"),
        epochs=1,
        verbose=0,
        shuffle=False,  # the pipeline shuffles (Keras warns that it ignores this for datasets)
    )
    loss = history.history["loss"][-1]
    assert np.isfinite(loss), history.history
    if "validation" in prepared.datasets:
        assert np.isfinite(history.history["val_loss"][-1]), history.history
    return prepared, float(loss)


def first(tree: Any) -> Any:
    return next(iter(tree.values())) if isinstance(tree, dict) else tree


def sizes(datasets: dict[str, Any]) -> dict[str, int]:
    """Examples per split, counted by iterating the batched pipelines."""
    return {
        name: sum(int(first(y).shape[0]) for _, y in dataset)
        for name, dataset in datasets.items()
    }


def ids(dataset: Any, key: str | None = None) -> list[int]:
    """The ids (feature column 0) of a pipeline's examples, in order."""
    out: list[int] = []
    for x, _ in dataset:
        x = x[key] if key else x
        out += [int(v) for v in np.asarray(x)[:, 0]]
    return out


def compile_spec(directory: Path, text: str, **kwargs: Any) -> Compiled:
    return compile_file(write_spec(directory, text), **kwargs)


def data_error(compiled: Compiled) -> tuple[Any, str]:
    """The one E501 diagnostic that `prepare` raises, and its rendered text."""
    with pytest.raises(SpecError) as caught:
        prepare(compiled)
    diags = list(caught.value.diagnostics)
    assert [d.code for d in diags] == ["E501"], [str(d.message) for d in diags]
    return diags[0], str(caught.value)


def assert_at_source(diag: Any, compiled: Compiled) -> None:
    line, col = source_position(Path(compiled.spec_file))
    assert diag.span is not None, diag.message
    assert (diag.span.line, diag.span.col) == (line, col), diag


SPARSE = "sparse_categorical_crossentropy"

SEQUENTIAL_POINTS = """
    model Points sequential {{
      input x: float32[4]
      Dense(3, activation = "softmax")
    }}

    train {{
      optimizer = "adam"
      loss = "{loss}"
      epochs = 1
    }}
"""

# -- 1. every source, from real files, trains one epoch ---------------------------------------


def test_npz_digits_trains(tmp_path):
    copy_shipped(tmp_path / "data", "digits.npz")
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "digits"

        data {
          source = npz("data/digits.npz", x = "images", y = "labels")
          split { validation = 0.2, test = 0.1, seed = 7 }
          batch = 64
        }

        model Net functional {
          input image: float32[8, 8, 1]
          output digit = image
            |> Rescaling(1 / 16)
            |> Flatten()
            |> Dense(10, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """)
    prepared, _ = train_one_epoch(compiled)
    # 1797 digits: round(359.4) validation, round(179.7) test, the rest train
    assert sizes(prepared.datasets) == {"train": 1258, "validation": 359, "test": 180}
    x, y = prepared.datasets["train"].element_spec
    assert x.shape.as_list() == [None, 8, 8, 1] and x.dtype == tf.float32
    assert y.shape.as_list() == [None] and y.dtype.is_integer


def test_npz_two_arrays_feed_two_named_inputs(tmp_path):
    write_points_npz(tmp_path / "points.npz", count=40)
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "pair"

        data {
          source = npz("points.npz", x = ["a", "b"], y = "y")
          split { validation = 0.25, seed = 1 }
          batch = 8
        }

        model Pair functional {
          input a: float32[3]
          input b: float32[2]
          joint = Concatenate()([a, b])
          output label = Dense(3, activation = "softmax")(joint)
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """)
    prepared, _ = train_one_epoch(compiled)
    assert sizes(prepared.datasets) == {"train": 30, "validation": 10}
    features, _ = prepared.datasets["train"].element_spec
    assert isinstance(features, dict) and sorted(features) == ["a", "b"]
    assert features["a"].shape.as_list() == [None, 3]
    assert features["b"].shape.as_list() == [None, 2]
    for x, _ in prepared.datasets["validation"]:  # each array went to its own input
        np.testing.assert_array_equal(x["a"][:, 0], x["b"][:, 0])


def test_csv_iris_trains(tmp_path):
    copy_shipped(tmp_path, "iris.csv")
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "iris"

        data {
          source = csv("iris.csv", label = "species")
          split { validation = 0.2, seed = 42 }
          batch = 16
        }

        model Iris sequential {
          input features: float32[4]
          Dense(8, activation = "relu")
          Dense(3, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """)
    prepared, _ = train_one_epoch(compiled)
    assert sizes(prepared.datasets) == {"train": 120, "validation": 30}
    labels = np.concatenate([y for _, y in prepared.datasets["train"]] +
                            [y for _, y in prepared.datasets["validation"]])
    assert sorted(np.bincount(labels)) == [50, 50, 50]


def test_csv_string_column_feeds_a_named_input(tmp_path):
    write_color_csv(tmp_path / "colors.csv", count=40)
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "colors"

        data {
          source = csv("colors.csv", label = "label")
          split { validation = 0.25, seed = 2 }
          batch = 8
        }

        model Colors functional {
          input size: float32[]
          input color: string[]
          s = size |> Reshape([1])
          c = color |> StringLookup() |> Embedding(8, 2)
          joint = Concatenate()([s, c])
          output red = Dense(1, activation = "sigmoid")(joint)
        }

        train {
          optimizer = "adam"
          loss = "binary_crossentropy"
          epochs = 1
        }
    """)
    prepared, _ = train_one_epoch(compiled)
    assert sizes(prepared.datasets) == {"train": 30, "validation": 10}
    features, _ = prepared.datasets["train"].element_spec
    assert sorted(features) == ["color", "size"]
    assert features["color"].dtype == tf.string
    assert features["size"].dtype == tf.float32
    lookup = next(layer for layer in prepared.model.layers
                  if isinstance(layer, keras.layers.StringLookup))
    assert sorted(lookup.get_vocabulary()[1:]) == ["blue", "green", "red"]  # adapted


def test_images_from_class_folders_train(tmp_path):
    write_png_folders(tmp_path / "pictures", per_class=8, size=(12, 10))
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "pictures"

        data {
          source = images("pictures", size = [8, 8])
          split { validation = 0.25, seed = 3 }
          batch = 4
        }

        model Pictures sequential {
          input image: float32[8, 8, 3]
          Rescaling(1 / 255)
          Flatten()
          Dense(2, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """)
    prepared, _ = train_one_epoch(compiled)
    assert sizes(prepared.datasets) == {"train": 12, "validation": 4}
    x, y = prepared.datasets["train"].element_spec
    assert x.shape.as_list() == [None, 8, 8, 3]
    labels = np.concatenate([y for _, y in prepared.datasets["train"]] +
                            [y for _, y in prepared.datasets["validation"]])
    assert np.bincount(labels).tolist() == [8, 8]  # cat 0, dog 1: the folder names


TEXT_SPEC = """
    tfspec 1
    name "reviews"

    data {
      source = text("data/reviews", label_mode = "binary")
      split { validation = 0.2, seed = 1 }
      batch = 16
    }

    model Reviews functional {
      input text: string[]
      tokens = text |> TextVectorization(max_tokens = 200, output_sequence_length = 16)
      h = tokens |> Embedding(200, 8) |> GlobalAveragePooling1D()
      output positive = Dense(1, activation = "sigmoid")(h)
    }

    train {
      optimizer = "adam"
      loss = "binary_crossentropy"
      epochs = 1
    }
"""


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """The shipped reviews, a TextVectorization model, prepared and trained once."""
    folder = tmp_path_factory.mktemp("text")
    copy_shipped(folder / "data", "reviews")
    compiled = compile_spec(folder, TEXT_SPEC)
    prepared, loss = train_one_epoch(compiled)
    return folder, compiled, prepared, loss


def test_text_from_class_folders_trains(text_run):
    _, _, prepared, loss = text_run
    assert np.isfinite(loss)
    assert sizes(prepared.datasets) == {"train": 64, "validation": 16}
    x, y = prepared.datasets["train"].element_spec
    assert x.dtype == tf.string and y.shape.as_list() == [None, 1]
    vectorize = next(layer for layer in prepared.model.layers
                     if isinstance(layer, keras.layers.TextVectorization))
    vocabulary = vectorize.get_vocabulary()
    assert len(vocabulary) > 20 and vocabulary[:2] == ["", "[UNK]"]  # adapted to the reviews


def test_keras_mnist_loads_through_keras_datasets(tmp_path, monkeypatch):
    import keras.src.datasets.mnist as mnist_module

    fake = write_mnist_npz(tmp_path / "downloads" / "mnist.npz", train=40, test=10)
    calls = []

    def get_file(fname=None, origin=None, **kwargs):
        calls.append((fname, origin))
        return str(fake)

    monkeypatch.setattr(mnist_module, "get_file", get_file)
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "mnist"

        data {
          source = keras("mnist")
          split { validation = 0.25, seed = 4 }
          batch = 8
        }

        model Mnist sequential {
          input image: float32[28, 28]
          Rescaling(1 / 255)
          Flatten()
          Dense(10, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """)
    prepared, _ = train_one_epoch(compiled)
    # the program asked keras.datasets.mnist for its file, and read our small one
    assert calls and calls[0][0] == "mnist.npz" and calls[0][1].endswith("/mnist.npz")
    assert sizes(prepared.datasets) == {"train": 30, "validation": 10, "test": 10}


def test_keras_boston_housing_regression(tmp_path, monkeypatch):
    import keras.src.datasets.boston_housing as boston_module

    fake = write_boston_npz(tmp_path / "downloads" / "boston_housing.npz", count=50)
    calls = []

    def get_file(fname=None, origin=None, **kwargs):
        calls.append((fname, origin))
        return str(fake)

    monkeypatch.setattr(boston_module, "get_file", get_file)
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "boston"

        data {
          source = keras("boston_housing")
          split { validation = 0.25, seed = 5 }
          batch = 8
        }

        model Boston sequential {
          input x: float32[13]
          Dense(1)
        }

        train {
          optimizer = "adam"
          loss = "mse"
          epochs = 1
        }
    """)
    prepared, _ = train_one_epoch(compiled)
    assert calls and calls[0][0] == "boston_housing.npz"
    # keras holds out 20% as its test split; tfspec holds out 25% of the rest
    assert sizes(prepared.datasets) == {"train": 30, "validation": 10, "test": 10}


TFDS_SPEC = """
    tfspec 1
    name "tfds-mnist"

    data {
      source = tfds("mnist", split = "train[:80%]", data_dir = "tfds")
      split { validation = "test" }
      batch = 4
    }

    model Mnist sequential {
      input image: uint8[28, 28, 1]
      Rescaling(1 / 255)
      Flatten()
      Dense(10, activation = "softmax")
    }

    train {
      optimizer = "adam"
      loss = "sparse_categorical_crossentropy"
      epochs = 1
    }
"""


def test_tfds_mock_named_and_sliced_splits(tmp_path):
    """`tfds.load` of mnist under `tfds.testing.mock_data`: the mocked reader makes
    as many examples as tfds's own slicing of the requested split says (20 train
    and 10 test examples in all), so the sizes show which split was asked for."""
    import tensorflow_datasets as tfds

    requested = []
    totals = {"train": SimpleNamespace(num_examples=20), "test": SimpleNamespace(num_examples=10)}

    def as_dataset(builder, split, decoders=None, read_config=None, **kwargs):
        requested.append(split)
        (part,) = tfds.core.ReadInstruction.from_spec(split).to_absolute(totals)
        count = (part.to or totals[part.splitname].num_examples) - (part.from_ or 0)
        images = np.random.default_rng(count).integers(0, 256, (count, 28, 28, 1), "uint8")
        labels = np.arange(count, dtype="int64") % 10
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})

    compiled = compile_spec(tmp_path, TFDS_SPEC)
    assert "download=False" in compiled.source  # the default, left as it is
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        prepared, _ = train_one_epoch(compiled)
    assert requested == ["train[:80%]", "test"]
    assert sizes(prepared.datasets) == {"train": 16, "validation": 10}
    x, _ = prepared.datasets["train"].element_spec
    assert x.shape.as_list() == [None, 28, 28, 1] and x.dtype == tf.uint8


# Keras warns so at the end of a first epoch of unknown size: see test_file_splits_know_their_size
UNKNOWN_SIZE = pytest.mark.filterwarnings("ignore:Your input ran out of data")


@UNKNOWN_SIZE
@pytest.mark.parametrize("compression", ["", "GZIP"])
def test_tfrecord_examples_feed_named_inputs(tmp_path, compression):
    write_tfrecords(tmp_path / "records", count=40, files=2, compression=compression)
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "records"

        data {
          source = tfrecord("records/*.tfrecord", label = "label", compression = "COMPRESSION")
          split { validation = 0.25, seed = 6 }
          batch = 8
        }

        model Records functional {
          input pixels: float32[4]
          input extra: float32[2]
          joint = Concatenate()([pixels, extra])
          output label = Dense(3, activation = "softmax")(joint)
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """.replace("COMPRESSION", compression))
    prepared, _ = train_one_epoch(compiled)
    assert sizes(prepared.datasets) == {"train": 30, "validation": 10}
    train, validation = (ids(prepared.datasets[s], "pixels") for s in ("train", "validation"))
    assert sorted(train + validation) == list(range(40))  # both files, each record once


GENERATOR_SPEC = """
    tfspec 1
    name "generated"

    data {{
      source = generator("{module}:examples")
      split {{ validation = 0.25, seed = 7 }}
      batch = 8
      cache = {cache}
    }}
""" + SEQUENTIAL_POINTS


@UNKNOWN_SIZE
def test_generator_module_allowed_trains(tmp_path):
    module = "tfspec_test_gen_train"
    write_generator_module(tmp_path, module, count=40)
    path = write_spec(tmp_path, GENERATOR_SPEC.format(module=module, cache="true", loss=SPARSE))
    compiled = compile_file(path, allow_modules=(module,))
    prepared, _ = train_one_epoch(compiled)
    assert sizes(prepared.datasets) == {"train": 30, "validation": 10}
    assert sys.modules[module].CALLS  # the spec's module really produced the examples


def test_generator_module_not_allowed_is_e409(tmp_path):
    module = "tfspec_test_gen_denied"
    write_generator_module(tmp_path, module)
    path = write_spec(tmp_path, GENERATOR_SPEC.format(module=module, cache="true", loss=SPARSE))
    result = validate_file(path)
    assert [d.code for d in result.diagnostics if d.is_error] == ["E409"]
    with pytest.raises(SpecError) as caught:
        compile_file(path)
    assert "E409" in str(caught.value)
    assert module not in sys.modules


def test_synthetic_two_inputs_two_outputs(tmp_path):
    text = (EXAMPLES / "two_tower.tfspec").read_text(encoding="utf-8")
    text = text.replace("samples = 512", "samples = 64").replace(
        "batch = 32", "split { validation = 0.25, seed = 8 }\n  batch = 16")
    compiled = compile_spec(tmp_path, text)
    prepared, _ = train_one_epoch(compiled)
    assert sizes(prepared.datasets) == {"train": 48, "validation": 16}
    features, labels = prepared.datasets["train"].element_spec
    assert sorted(features) == ["item", "query"] and sorted(labels) == ["category", "score"]
    categories = np.concatenate([y["category"] for _, y in prepared.datasets["train"]])
    assert categories.min() >= 0 and categories.max() < 5


def tfds_points_spec(data_dir: str) -> str:
    return f"""
        tfspec 1
        name "tfds-points"

        data {{
          source = tfds("tfspec_test_points", split = "train[:50%]", data_dir = "{data_dir}")
          split {{ validation = "test" }}
          batch = 4
        }}
    """ + SEQUENTIAL_POINTS.format(loss=SPARSE)


def test_tfds_local_dataset_without_mocks(tmp_path):
    """A real TFDS dataset prepared on disk: real slicing, real reader, no download."""
    prepare_tfds_points(tmp_path / "tfds")
    compiled = compile_spec(tmp_path, tfds_points_spec(str(tmp_path / "tfds")))
    prepared, _ = train_one_epoch(compiled)
    assert sizes(prepared.datasets) == {"train": 15, "validation": 10}
    # tfds's own slicing: the first half of `train` as tfds stored it (it shuffles on write)
    import tensorflow_datasets as tfds

    whole = tfds.load("tfspec_test_points", split="train", data_dir=str(tmp_path / "tfds"),
                      as_supervised=True, download=False)
    stored = [int(x[0]) for x, _ in whole.as_numpy_iterator()]
    assert sorted(ids(prepared.datasets["train"])) == sorted(stored[:15])
    assert sorted(ids(prepared.datasets["validation"])) == list(range(30, 40))


def test_tfds_data_dir_is_relative_to_the_spec(tmp_path, monkeypatch):
    prepare_tfds_points(tmp_path / "tfds")
    compiled = compile_spec(tmp_path, tfds_points_spec("tfds"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    prepared = prepare(compiled)
    assert sizes(prepared.datasets) == {"train": 15, "validation": 10}


@pytest.mark.parametrize(("keyword", "positional"), [
    ('csv("iris.csv", label = "species")', 'csv("iris.csv", "species")'),
    ('npz("points.npz", x = "a", y = "y")', 'npz("points.npz", "a", "y")'),
], ids=["csv", "npz"])
def test_positional_source_arguments_mean_the_same(tmp_path, keyword, positional):
    copy_shipped(tmp_path, "iris.csv")
    write_points_npz(tmp_path / "points.npz", count=30)
    loaded = []
    for source in (keyword, positional):
        compiled = compile_spec(tmp_path, f"""
            tfspec 1
            name "positional"

            data {{
              source = {source}
              shuffle = false
            }}
        """ + SEQUENTIAL_POINTS.format(loss=SPARSE))
        loaded.append(load_datasets(compiled)["train"])
    assert loaded[0].element_spec == loaded[1].element_spec
    for (x, y), (x0, y0) in zip(loaded[1], loaded[0], strict=True):
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)


# -- 2. pipeline options ----------------------------------------------------------------------


def points_spec(data: str, loss: str = SPARSE) -> str:
    return """
        tfspec 1
        name "points"

        data {
    """ + data + """
        }
    """ + SEQUENTIAL_POINTS.format(loss=loss)


def points(tmp_path: Path, data: str, count: int = 103, **kwargs: Any) -> Compiled:
    if not (tmp_path / "points.npz").exists():
        write_points_npz(tmp_path / "points.npz", count=count)
    return compile_spec(tmp_path, points_spec(data), **kwargs)


def op(dataset: Any, name: str) -> list:
    """The constant arguments of the one `name` op of a pipeline."""
    found = [args for kind, args in dataset_ops(dataset) if kind == name]
    assert len(found) == 1, dataset_ops(dataset)
    return found[0]


def test_batch_and_drop_remainder(tmp_path):
    kept = prepare(points(tmp_path, """
      source = npz("points.npz")
      batch = 10
      shuffle = false
    """)).datasets["train"]
    assert [int(x.shape[0]) for x, _ in kept] == [10] * 10 + [3]
    assert kept.element_spec[0].shape.as_list() == [None, 4]

    dropped = prepare(points(tmp_path, """
      source = npz("points.npz")
      batch = 10
      drop_remainder = true
      shuffle = false
    """)).datasets["train"]
    assert [tuple(x.shape) for x, _ in dropped] == [(10, 4)] * 10
    assert dropped.element_spec[0].shape.as_list() == [10, 4]  # a static batch size
    assert op(dropped, "ParallelBatchDataset")[1:] == [10, -1, True]  # AUTOTUNE calls


def test_shuffle_with_seed_is_reproducible_and_reshuffles(tmp_path):
    data = """
      source = npz("points.npz")
      batch = 103
      shuffle = 50
      seed = 5
    """
    # the order is a function of (seed, epoch): the program's EPOCH says which epoch
    # (its DataEpoch callback sets it), so a resumed run shuffles like the first
    first = prepare(points(tmp_path, data))
    first_run, epoch = first.datasets["train"], first.namespace["EPOCH"]
    epoch.assign(0)
    epoch_1 = ids(first_run)
    epoch.assign(1)
    epoch_2 = ids(first_run)
    assert sorted(epoch_1) == list(range(103))
    assert epoch_1 != epoch_2  # shuffled again every epoch
    second = prepare(points(tmp_path, data))
    second.namespace["EPOCH"].assign(1)
    assert ids(second.datasets["train"]) == epoch_2  # epoch 2's order, straight away
    second.namespace["EPOCH"].assign(0)
    assert ids(second.datasets["train"]) == epoch_1
    assert op(first_run, "ShuffleDatasetV3")[1] == 50

    fixed = prepare(points(tmp_path, """
      source = npz("points.npz")
      batch = 103
      shuffle = false
    """)).datasets["train"]
    assert ids(fixed) == ids(fixed) and sorted(ids(fixed)) == list(range(103))
    assert ids(fixed) != epoch_1
    assert "ShuffleDatasetV3" not in [kind for kind, _ in dataset_ops(fixed)]


def test_shuffle_true_buffers_the_whole_split(tmp_path):
    train = prepare(points(tmp_path, """
      source = npz("points.npz")
      split { validation = 0.2, seed = 3 }
    """)).datasets
    assert op(train["train"], "ShuffleDatasetV3")[1] == 82  # 103 - round(20.6)
    assert "ShuffleDatasetV3" not in [kind for kind, _ in dataset_ops(train["validation"])]


@pytest.mark.parametrize("cache", ["true", "false"])
def test_memory_cache_reads_the_source_once(tmp_path, cache):
    module = f"tfspec_test_gen_cache_{cache}"
    write_generator_module(tmp_path, module, count=40)
    path = write_spec(tmp_path, GENERATOR_SPEC.format(module=module, cache=cache, loss=SPARSE))
    train = prepare(compile_file(path, allow_modules=(module,))).datasets["train"]
    calls = sys.modules[module].CALLS
    epoch_1 = ids(train)
    after_1 = len(calls)
    epoch_2 = ids(train)
    assert sorted(epoch_1) == sorted(epoch_2) and len(epoch_1) == 30
    if cache == "true":
        assert len(calls) == after_1  # the second epoch came from the cache
        assert op(train, "CacheDatasetV2")[1] == ""  # in memory
    else:
        assert len(calls) > after_1  # the generator ran again
        assert "CacheDatasetV2" not in [kind for kind, _ in dataset_ops(train)]


def test_file_cache_is_written_under_the_spec_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    prepared = prepare(points(tmp_path, """
      source = npz("points.npz")
      split { validation = 0.2, seed = 3 }
      cache = "cache/x"
    """))
    train = prepared.datasets["train"]
    cached = op(train, "CacheDatasetV2")[1]
    # the file name carries a key of the data section, so a changed spec re-reads its data
    assert cached.startswith(str(tmp_path.resolve() / "cache" / "x_train_")), cached
    for name in ("train", "validation"):
        list(prepared.datasets[name])  # a whole pass writes the cache
    written = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert any(n.startswith("x_train_") for n in written), written
    assert any(n.startswith("x_validation_") for n in written), written  # one per split
    assert not list(elsewhere.iterdir())  # nothing relative to the working directory
    assert sorted(ids(train)) == sorted(ids(train))  # read back from the files


def test_file_cache_keeps_validation_and_test_apart(tmp_path):
    prepared = prepare(points(tmp_path, """
      source = npz("points.npz")
      split { validation = 0.2, test = 0.1, seed = 3 }
      cache = "cache/x"
    """))
    validation = ids(prepared.datasets["validation"])
    test = ids(prepared.datasets["test"])
    assert len(validation) == 21 and len(test) == 10
    assert not set(validation) & set(test)


def test_prefetch_and_parallel(tmp_path):
    defaults = prepare(points(tmp_path, """
      source = npz("points.npz")
      batch = 16
      shuffle = false
    """)).datasets["train"]
    tuned = prepare(points(tmp_path, """
      source = npz("points.npz")
      batch = 16
      shuffle = false
      prefetch = 3
      parallel = 2
    """)).datasets["train"]
    assert op(defaults, "PrefetchDataset")[1] == -1  # tf.data.AUTOTUNE
    assert op(defaults, "ParallelBatchDataset")[2] == -1
    assert op(tuned, "PrefetchDataset")[1] == 3
    assert op(tuned, "ParallelBatchDataset")[2] == 2
    assert ids(tuned) == ids(defaults)  # the same examples, however they are fetched


def test_repeat(tmp_path):
    counted = prepare(points(tmp_path, """
      source = npz("points.npz")
      split { validation = 0.2, seed = 3 }
      repeat = 2
    """)).datasets
    assert sizes(counted) == {"train": 2 * 82, "validation": 21}
    train = ids(counted["train"])
    assert sorted(train) == sorted(2 * list(set(train)))  # each training example twice
    assert op(counted["train"], "RepeatDataset")[1] == 2

    forever = compile_spec(tmp_path, points_spec("""
      source = npz("points.npz")
      split { validation = 0.2, seed = 3 }
      repeat = true
    """).replace("epochs = 1", "epochs = 1\n  steps_per_epoch = 3"))
    prepared = prepare(forever)
    assert int(prepared.datasets["train"].cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    assert int(prepared.datasets["validation"].cardinality()) > 0
    prepared.model.compile(optimizer="adam", loss=SPARSE)
    history = prepared.model.fit(prepared.datasets["train"], steps_per_epoch=3, epochs=1,
                                 verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][-1])


def assert_disjoint_and_complete(split_ids: dict[str, list[int]], count: int) -> None:
    everything = [i for part in split_ids.values() for i in part]
    assert sorted(everything) == list(range(count)), split_ids  # each example exactly once


def test_fraction_splits_of_arrays_are_deterministic_and_disjoint(tmp_path):
    data = """
      source = npz("points.npz")
      split { validation = 0.2, test = 0.1, seed = 3 }
    """
    run_1 = prepare(points(tmp_path, data)).datasets
    run_2 = prepare(points(tmp_path, data)).datasets
    split_ids = {name: ids(dataset) for name, dataset in run_1.items()}
    assert {k: len(v) for k, v in split_ids.items()} == {"train": 72, "validation": 21,
                                                        "test": 10}
    assert_disjoint_and_complete(split_ids, 103)
    assert ids(run_2["validation"]) == split_ids["validation"]
    assert ids(run_2["test"]) == split_ids["test"]
    other_seed = prepare(points(tmp_path, data.replace("seed = 3", "seed = 4"))).datasets
    assert sorted(ids(other_seed["validation"])) != sorted(split_ids["validation"])


def test_fraction_splits_of_files_are_deterministic_and_disjoint(tmp_path):
    write_tfrecords(tmp_path / "records", count=40, files=2)
    text = """
        tfspec 1
        name "records"

        data {
          source = tfrecord("records/*.tfrecord", label = "label")
          split { validation = 0.2, test = 0.1, seed = 9 }
          batch = 8
        }

        model Records functional {
          input pixels: float32[4]
          input extra: float32[2]
          joint = Concatenate()([pixels, extra])
          output label = Dense(3, activation = "softmax")(joint)
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """
    run_1 = prepare(compile_spec(tmp_path, text)).datasets
    run_2 = prepare(compile_spec(tmp_path, text)).datasets
    split_ids = {name: ids(dataset, "pixels") for name, dataset in run_1.items()}
    assert {k: len(v) for k, v in split_ids.items()} == {"train": 28, "validation": 8,
                                                        "test": 4}
    assert_disjoint_and_complete(split_ids, 40)
    assert ids(run_1["validation"], "pixels") == split_ids["validation"]  # every epoch
    assert ids(run_2["validation"], "pixels") == split_ids["validation"]  # every run
    assert sorted(ids(run_2["train"], "pixels")) == sorted(split_ids["train"])


def test_file_splits_know_their_size(tmp_path):
    write_tfrecords(tmp_path / "records", count=40, files=2)
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "records"

        data {
          source = tfrecord("records/*.tfrecord", label = "label")
          split { validation = 0.25, seed = 6 }
          batch = 8
        }

        model Records sequential {
          input pixels: float32[4]
          Dense(3, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """)
    datasets = prepare(compiled).datasets
    assert int(datasets["train"].cardinality()) == 4  # 30 examples in batches of 8
    assert int(datasets["validation"].cardinality()) == 2


def test_augment_applies_to_the_training_split_only(tmp_path):
    copy_shipped(tmp_path / "data", "digits.npz")
    data = """
      source = npz("data/digits.npz", x = "images", y = "labels")
      split { validation = 0.2, seed = 7 }
      batch = 64
      shuffle = false
      seed = 1
    """
    model = """
        model Net functional {
          input image: float32[8, 8, 1]
          output digit = image |> Flatten() |> Dense(10, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """
    head = '\n        tfspec 1\n        name "digits"\n\n        data {\n'
    plain = prepare(compile_spec(tmp_path, head + data + "        }\n" + model)).datasets
    augmented = prepare(compile_spec(
        tmp_path, head + data + '      augment = [RandomFlip("horizontal")]\n        }\n'
        + model)).datasets
    for (x, y), (x0, y0) in zip(augmented["validation"], plain["validation"], strict=True):
        np.testing.assert_array_equal(x, x0)  # validation batches unchanged
        np.testing.assert_array_equal(y, y0)
    flipped = kept = 0
    for (x, y), (x0, y0) in zip(augmented["train"], plain["train"], strict=True):
        np.testing.assert_array_equal(y, y0)
        for image, original in zip(np.asarray(x), np.asarray(x0), strict=True):
            if np.allclose(image, original[:, ::-1]) and not np.allclose(image, original):
                flipped += 1
            else:
                np.testing.assert_allclose(image, original)  # flipped or untouched
                kept += 1
    assert flipped > 100 and kept > 100, (flipped, kept)


def test_augment_with_a_seed_is_a_function_of_seed_epoch_and_batch(tmp_path):
    """Batches augmented in parallel would race for their layers' seed generators:
    with a data seed each batch's augmentation is a function of (seed, epoch, batch
    number), so two runs agree batch for batch, every epoch is augmented anew, and a
    resumed run (a new program at a later epoch) augments as the first run did."""
    images = np.random.default_rng(0).normal(size=(40, 8, 8, 1)).astype("float32")
    np.savez(tmp_path / "images.npz", x=images, y=np.arange(40) % 3)
    text = """
        tfspec 1
        name "flips"

        data {
          source = npz("images.npz")
          batch = 4
          shuffle = false
          seed = 1
          augment = [
            Pipeline([RandomFlip("horizontal"), RandomTranslation(0.2, 0.2)]),  # nested
            GaussianNoise(0.1),
          ]
        }

        model Net functional {
          input image: float32[8, 8, 1]
          output label = image |> Flatten() |> Dense(3, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """

    def epochs(source: str, *numbers: int) -> list[np.ndarray]:
        program = prepare(compile_spec(tmp_path, source))
        out = []
        for number in numbers:
            program.namespace["EPOCH"].assign(number)
            out.append(np.concatenate([x for x, _ in program.datasets["train"]]))
        return out

    first, second = epochs(text, 0, 1), epochs(text, 0, 1)
    assert not np.allclose(first[0], images)  # augmented
    assert not np.allclose(first[0], first[1])  # anew every epoch
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)  # batch for batch, in parallel
    (resumed,) = epochs(text, 1)
    np.testing.assert_array_equal(resumed, first[1])
    # a layer's own seed is its stream's
    (reseeded,) = epochs(text.replace("GaussianNoise(0.1)", "GaussianNoise(0.1, seed = 9)"), 0)
    assert not np.allclose(reseeded, first[0])


# -- 3. data/model mismatches: one located E501, before any training step ------------------


def assert_data_error(compiled: Compiled, *names: str) -> str:
    """`prepare` stops with one E501 at the `source =` value; the message names
    every one of `names` (both sides of the mismatch)."""
    diag, text = data_error(compiled)
    assert_at_source(diag, compiled)
    for name in names:
        assert name in diag.message, (name, diag.message)
    line, col = source_position(Path(compiled.spec_file))
    assert f"spec.tfspec:{line}:{col}: error[E501]" in text
    return diag.message


def test_npz_array_names_that_are_not_the_model_inputs(tmp_path):
    """Fewer arrays than inputs: the input without data, and the arrays there are."""
    write_points_npz(tmp_path / "points.npz", count=20)
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "pair"

        data {
          source = npz("points.npz", x = ["a"], y = "y")
        }

        model Pair functional {
          input a: float32[3]
          input b: float32[2]
          output label = Concatenate()([a, b]) |> Dense(3, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """)
    assert_data_error(compiled, "`b`", "'a'")


def test_npz_arrays_feed_the_inputs_in_order(tmp_path):
    """`x = ["a", "b"]` lists arrays in the order of the model's inputs (docs/data.md)."""
    write_points_npz(tmp_path / "points.npz", count=20)
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "pair"

        data {
          source = npz("points.npz", x = ["a", "b"], y = "y")
        }

        model Pair functional {
          input query: float32[3]
          input item: float32[2]
          output label = Concatenate()([query, item]) |> Dense(3, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """)
    prepared = prepare(compiled)
    features, _ = prepared.datasets["train"].element_spec
    assert {name: tuple(spec.shape[1:]) for name, spec in features.items()} == {
        "query": (3,), "item": (2,)}


CSV_TWO_INPUTS = """
    tfspec 1
    name "colors"

    data {
      source = csv("colors.csv", label = "label")
    }

    model Colors functional {
      input size: float32[]
      input shade: string[]
      s = size |> Reshape([1])
      c = shade |> StringLookup() |> Embedding(8, 2)
      output red = Concatenate()([s, c]) |> Dense(1, activation = "sigmoid")
    }

    train {
      optimizer = "adam"
      loss = "binary_crossentropy"
      epochs = 1
    }
"""


def test_csv_without_a_column_for_an_input(tmp_path):
    write_color_csv(tmp_path / "colors.csv", count=20)
    assert_data_error(compile_spec(tmp_path, CSV_TWO_INPUTS), "`shade`", "color")


def test_csv_without_a_column_for_an_input_is_located(tmp_path):
    """What holds today of the case above: one E501 at the source."""
    write_color_csv(tmp_path / "colors.csv", count=20)
    assert_data_error(compile_spec(tmp_path, CSV_TWO_INPUTS), "shade")


def test_wrong_rank(tmp_path):
    copy_shipped(tmp_path / "data", "digits.npz")
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "digits"

        data {
          source = npz("data/digits.npz", x = "flat", y = "labels")
        }

        model Net functional {
          input image: float32[8, 8, 1]
          output digit = image |> Flatten() |> Dense(10, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """)
    assert_data_error(compiled, "`image`", "(64,)", "(8, 8, 1)")


def test_class_ids_with_a_one_hot_loss(tmp_path):
    write_points_npz(tmp_path / "points.npz", count=20)
    compiled = compile_spec(tmp_path, points_spec("""
      source = npz("points.npz", x = "x", y = "y")
    """, loss="categorical_crossentropy"))
    assert_data_error(compiled, "categorical_crossentropy", "class ids", "(3,)")


def test_one_hot_labels_with_a_sparse_loss(tmp_path):
    write_points_npz(tmp_path / "points.npz", count=20)
    compiled = compile_spec(tmp_path, points_spec("""
      source = npz("points.npz", x = "x", y = "y_onehot")
    """))
    assert_data_error(compiled, "sparse_categorical_crossentropy", "(3,)", "one-hot")


def test_labels_beyond_the_output_units(tmp_path):
    copy_shipped(tmp_path / "data", "digits.npz")
    compiled = compile_spec(tmp_path, """
        tfspec 1
        name "digits"

        data {
          source = npz("data/digits.npz", x = "images", y = "labels")
        }

        model Net functional {
          input image: float32[8, 8, 1]
          output digit = image |> Flatten() |> Dense(3, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """)
    assert_data_error(compiled, "`digit`", "9", "3 units")


def test_cli_data_reports_a_mismatch_without_a_traceback(tmp_path, capsys):
    from tfspec.cli import main

    copy_shipped(tmp_path / "data", "digits.npz")
    path = write_spec(tmp_path, """
        tfspec 1
        name "digits"

        data {
          source = npz("data/digits.npz", x = "flat", y = "labels")
        }

        model Net functional {
          input image: float32[8, 8, 1]
          output digit = image |> Flatten() |> Dense(10, activation = "softmax")
        }

        train {
          optimizer = "adam"
          loss = "sparse_categorical_crossentropy"
          epochs = 1
        }
    """)
    capsys.readouterr()
    assert main(["data", str(path)]) == 1
    out, err = capsys.readouterr()
    line, col = source_position(path)
    assert f"{path}:{line}:{col}: error[E501]" in err, err
    assert "`image`" in err and "(64,)" in err
    assert "Traceback" not in out + err


def test_cli_data_reports_a_load_error_without_a_traceback(tmp_path, capsys):
    from tfspec.cli import main

    write_color_csv(tmp_path / "colors.csv", count=20)
    path = write_spec(tmp_path, CSV_TWO_INPUTS)
    capsys.readouterr()
    assert main(["data", str(path)]) == 1
    out, err = capsys.readouterr()
    line, col = source_position(path)
    assert f"{path}:{line}:{col}: error[E501]" in err, err
    assert "shade" in err
    assert "Traceback" not in out + err


# -- 4. adapted preprocessing is inside the exported model ------------------------------------


def export_and_serve(model: Any, directory: Path, raw: Any) -> np.ndarray:
    """`model.export` (a SavedModel), loaded back; its `serve` endpoint on `raw`."""
    model.export(str(directory), verbose=False)
    loaded = tf.saved_model.load(str(directory))
    return np.asarray(loaded.serve(raw))


def test_iris_normalization_is_adapted_and_exported(tmp_path):
    shutil.copy(EXAMPLES / "iris_mlp.tfspec", tmp_path / "iris_mlp.tfspec")
    copy_shipped(tmp_path / "data", "iris.csv")
    compiled = compile_file(tmp_path / "iris_mlp.tfspec")
    prepared, _ = train_one_epoch(compiled)
    model = prepared.model
    normalization = next(layer for layer in model.layers
                         if isinstance(layer, keras.layers.Normalization))
    train = np.concatenate([x for x, _ in prepared.datasets["train"]])
    assert train.shape == (120, 4)
    # adapted on the training split, not left at mean 0 / variance 1
    np.testing.assert_allclose(np.ravel(normalization.mean), train.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(np.ravel(normalization.variance), train.var(axis=0), rtol=1e-3)
    assert np.all(np.abs(np.ravel(normalization.mean)) > 0.5)
    assert not np.allclose(np.ravel(normalization.variance), 1.0, atol=0.05)

    rows = np.loadtxt(tmp_path / "data" / "iris.csv", delimiter=",", skiprows=1)
    raw = rows[::10, :4].astype("float32")  # raw measurements in cm, as in the file
    served = export_and_serve(model, tmp_path / "serving", tf.constant(raw))
    np.testing.assert_allclose(served, model.predict(raw, verbose=0), atol=1e-5)
    assert served.shape == (15, 3)


def test_text_vectorization_is_adapted_and_exported(text_run, tmp_path):
    _, _, prepared, _ = text_run
    model = prepared.model
    raw = tf.constant([
        "A wonderful film with a moving story.",
        "Dull, slow and far too long.",
        "words it has never seen: zyzzyva quokka",
    ])
    served = export_and_serve(model, tmp_path / "serving", raw)
    np.testing.assert_allclose(served, model.predict(raw, verbose=0), atol=1e-5)
    assert served.shape == (3, 1)
    vectorize = next(layer for layer in model.layers
                     if isinstance(layer, keras.layers.TextVectorization))
    loaded = tf.saved_model.load(str(tmp_path / "serving"))
    (spec,) = loaded.signatures["serving_default"].structured_input_signature[1].values()
    assert spec.dtype == tf.string  # TF Serving feeds it raw strings
    tokens = np.asarray(vectorize(raw))
    assert tokens[0].any() and tokens.shape == (3, 16)  # the adapted vocabulary knows them


# -- 5. `tfspec data` -------------------------------------------------------------------------


IRIS = EXAMPLES / "iris_mlp.tfspec"


def test_cli_data_text(capsys):
    from tfspec.cli import main

    capsys.readouterr()
    assert main(["data", str(IRIS)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert "train: 120 examples" in out and "validation: 30 examples" in out
    assert "features: float32[None, 4]" in out
    assert "labels:   int64[None]" in out
    counts = [line for line in out.splitlines() if "label counts:" in line]
    assert len(counts) == 2 and all("0: " in c and "1: " in c and "2: " in c for c in counts)
    assert "example 0:" in out


def test_cli_data_json(capsys):
    from tfspec.cli import main

    capsys.readouterr()
    assert main(["data", "--format", "json", str(IRIS)]) == 0
    view = json.loads(capsys.readouterr().out)
    splits = view["splits"]
    assert sorted(splits) == ["train", "validation"]
    assert {name: split["examples"] for name, split in splits.items()} == {
        "train": 120, "validation": 30}
    for split in splits.values():
        assert split["features"] == {"shape": [None, 4], "dtype": "float32"}
        assert split["labels"] == {"shape": [None], "dtype": "int64"}
        assert sorted(split["label_counts"]) == ["0", "1", "2"]
        assert sum(split["label_counts"].values()) == split["examples"]
    # the same 150 flowers, 50 of each species, across the two splits
    for label in ("0", "1", "2"):
        assert sum(split["label_counts"][label] for split in splits.values()) == 50
    assert len(splits["train"]["first"]) == 3
