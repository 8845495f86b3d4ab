"""tfspec.runtime.data and .seeds, called directly with real TensorFlow on tiny data:
splits, CSV columns, the data check's messages, pipelines, seeded epochs and
augmentation seeds, adaptation."""

from __future__ import annotations

import numpy as np
import pytest

from tfspec.jobs.build import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfspec.runtime import data, seeds  # noqa: E402

INPUTS = {"x": ((3,), "float32")}


def dense_model(units: int = 4, activation: str = "softmax") -> keras.Model:
    x = keras.Input((3,), name="x")
    return keras.Model(x, keras.layers.Dense(units, activation=activation, name="y")(x))


def batches(features, labels, size: int = 5) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(size)


def rows(dataset: tf.data.Dataset) -> list[int]:
    """Feature column 0 of every example, in order."""
    return [int(v) for x, _ in dataset for v in np.asarray(x)[:, 0]]


# -- splits -----------------------------------------------------------------------------------


def test_split_arrays_holds_out_the_fractions_the_same_every_run():
    features = np.arange(100).reshape(50, 2)
    labels = np.arange(50)
    splits = data.split_arrays(features, labels, validation=0.2, test=0.1, seed=3)
    assert {name: len(y) for name, (_, y) in splits.items()} == {
        "train": 35, "validation": 10, "test": 5}
    ids = [set(y.tolist()) for _, y in splits.values()]
    assert set().union(*ids) == set(range(50)) and sum(map(len, ids)) == 50  # disjoint
    for x, y in splits.values():
        np.testing.assert_array_equal(x[:, 0], 2 * y)  # rows stay together
    again = data.split_arrays(features, labels, validation=0.2, test=0.1, seed=3)
    other = data.split_arrays(features, labels, validation=0.2, test=0.1, seed=4)
    np.testing.assert_array_equal(again["train"][1], splits["train"][1])
    assert not np.array_equal(other["train"][1], splits["train"][1])


def test_split_arrays_of_named_arrays_leaves_out_empty_splits():
    features = {"a": np.arange(10), "b": np.arange(10) * 10}
    labels = {"out": np.arange(10)}
    splits = data.split_arrays(features, labels, validation=0.3, test=0.0, seed=0)
    assert list(splits) == ["train", "validation"]
    x, y = splits["validation"]
    np.testing.assert_array_equal(x["b"], 10 * y["out"])


def test_split_dataset_knows_each_size_and_is_deterministic():
    dataset = tf.data.Dataset.range(20).filter(lambda n: n % 2 == 0)  # size unknown
    dataset = dataset.map(lambda n: (n, n))
    splits = data.split_dataset(dataset, validation=0.2, test=0.2, seed=1)
    assert {k: int(v.cardinality()) for k, v in splits.items()} == {
        "train": 6, "validation": 2, "test": 2}
    seen = [[int(x) for x, _ in split] for split in splits.values()]
    assert sorted(sum(seen, [])) == list(range(0, 20, 2))  # disjoint, whole
    assert seen == [[int(x) for x, _ in split] for split in splits.values()]  # every pass
    again = data.split_dataset(dataset, validation=0.2, test=0.2, seed=1)
    assert seen == [[int(x) for x, _ in split] for split in again.values()]


# -- sources ----------------------------------------------------------------------------------


def test_read_csv_types_each_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("n;f;s;gap\n1;0.5;red;2\n2;1.5;blue;?\n", encoding="utf-8")
    columns = data.read_csv(path, delimiter=";", na_value="?")
    assert {k: columns[k].dtype.name for k in ("n", "f", "gap")} == {
        "n": "int64", "f": "float32", "gap": "float32"}  # a missing cell is NaN
    assert columns["s"].dtype.kind == "U" and columns["s"].tolist() == ["red", "blue"]
    assert columns["n"].tolist() == [1, 2] and np.isnan(columns["gap"][1])
    headless = tmp_path / "h.csv"
    headless.write_text("1,2\n3,4\n", encoding="utf-8")
    assert list(data.read_csv(headless, header=False)) == ["column_0", "column_1"]


def test_csv_arrays_stack_one_input_and_name_several():
    columns = {"a": np.array([1, 2]), "b": np.array([0.5, 1.5], "float32"),
               "label": np.array([0, 1])}
    features, labels = data.csv_arrays(columns, INPUTS, labels="label")
    assert features.dtype == np.float32 and features.tolist() == [[1, 0.5], [2, 1.5]]
    assert labels.tolist() == [0, 1] and "label" in columns  # the caller's dict is kept
    two = {"a": ((), "int64"), "b": ((), "float32")}
    features, labels = data.csv_arrays(columns, two, labels={"out": "label"})
    assert sorted(features) == ["a", "b"] and list(labels) == ["out"]
    features, labels = data.csv_arrays(columns, INPUTS, features=["b"])
    assert features.shape == (2, 1) and labels.tolist() == [0.0, 0.0]  # no labels: zeros
    with pytest.raises(ValueError, match=r"no column for the model input\(s\) `c`; its "
                       r"columns are a, b, label"):
        data.csv_arrays(columns, {"a": ((), "int64"), "c": ((), "int64")})


def test_synthetic_data_fits_the_model_and_repeats():
    model = dense_model(4)
    losses = {"y": "sparse_categorical_crossentropy"}
    features, labels = data.synthetic(model, INPUTS, ["y"], losses, samples=8, seed=2)
    assert features.shape == (8, 3) and features.dtype == np.float32
    assert labels.shape == (8,) and labels.max() < 4
    again = data.synthetic(model, INPUTS, ["y"], losses, samples=8, seed=2)
    np.testing.assert_array_equal(again[0], features)
    signature = data.generator_signature(model, INPUTS, ["y"], losses)
    assert signature == (tf.TensorSpec((3,), tf.float32), tf.TensorSpec((), tf.int64))


# -- the data check ---------------------------------------------------------------------------


@pytest.mark.parametrize(("features", "labels", "loss", "message"), [
    ({"z": np.zeros((4, 3), "float32")}, np.zeros(4, "int64"), "mse",
     "the model input `x` has no data: the data has the features ['z']"),
    (np.zeros((4, 5), "float32"), np.zeros(4, "int64"), "mse",
     "the data for model input `x` has shape (5,) per example, but `x` is declared with "
     "shape (3,)"),
    (np.array([["a", "b", "c"]] * 4), np.zeros(4, "int64"), "mse",
     "the data for model input `x` is string, but `x` is declared float32"),
    (np.zeros((4, 3), "float32"), np.eye(4, dtype="int64"), "sparse_categorical_crossentropy",
     "expects integer class ids for output `y`, but the labels have shape (4,) (one-hot?)"),
    (np.zeros((4, 3), "float32"), np.zeros(4, "int64"), "categorical_crossentropy",
     "expects one-hot labels of shape (4,) for output `y`, but the labels are class ids"),
    (np.zeros((4, 3), "float32"), np.array([0, 1, 2, 7]), "sparse_categorical_crossentropy",
     "the labels of output `y` go up to 7, but it has 4 units: it needs at least 8"),
])
def test_check_data_names_both_sides(features, labels, loss, message):
    with pytest.raises(ValueError) as caught:
        data.check_data(dense_model(4), batches(features, labels), INPUTS, ["y"], {"y": loss})
    assert message in str(caught.value)


def test_check_data_passes_data_that_fits():
    dataset = batches(np.zeros((4, 3), "float32"), np.array([0, 1, 2, 3]))
    data.check_data(dense_model(4), dataset, INPUTS, ["y"],
                    {"y": "sparse_categorical_crossentropy"})
    two = {"x": ((3,), "float32"), "w": ((3,), "float32")}
    with pytest.raises(ValueError, match="one feature tensor but the model has 2 inputs"):
        data.check_data(dense_model(4), dataset, two, ["y"], {})


# -- pipelines and seeded epochs --------------------------------------------------------------


def arrays(count: int = 20) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(count * 3, dtype="float32").reshape(count, 3) // 3, np.arange(count)


def test_pipeline_order_is_a_function_of_seed_and_epoch():
    epoch = seeds.Epoch()
    train = data.pipeline(arrays(), "train", batch=4, seed=5, epoch=epoch)
    first = rows(train)
    assert sorted(first) == list(range(20)) and first != list(range(20))
    assert rows(train) == first  # the same epoch, the same order
    epoch.assign(1)
    second = rows(train)
    assert second != first
    again = seeds.Epoch()  # a new program (a resumed run) at epoch 1
    again.assign(1)
    assert rows(data.pipeline(arrays(), "train", batch=4, seed=5, epoch=again)) == second
    # a dataset of examples is shuffled the same way, epoch by epoch
    examples = tf.data.Dataset.from_tensor_slices(arrays())
    assert rows(data.pipeline(examples, "train", batch=4, seed=5, epoch=again)) == second
    assert rows(data.pipeline(arrays(), "validation", batch=4, seed=5, epoch=again)) == list(
        range(20))  # only the training split is shuffled


def test_the_order_does_not_depend_on_the_global_seed():
    """`train.seed` sets TensorFlow's global seed; with 0, TensorFlow's seed pairing
    used to fail on the epoch's tensor seed."""
    orders = []
    for global_seed in (None, 0, 7):
        tf.random.set_seed(global_seed)
        epoch = seeds.Epoch()
        orders.append(rows(data.pipeline(arrays(), "train", batch=4, seed=0, epoch=epoch)))
    assert orders[0] == orders[1] == orders[2] and orders[0] != list(range(20))


def test_pipeline_batches_repeats_and_caches(tmp_path):
    train = data.pipeline(arrays(10), "train", batch=4, drop_remainder=True, shuffle=False,
                          repeat=2)
    assert [len(y) for _, y in train] == [4] * 5 and rows(train) == list(range(10)) * 2
    assert [len(y) for _, y in data.pipeline(arrays(10), "test", batch=4, repeat=2)] == [
        4, 4, 2]
    cached = data.pipeline(arrays(10), "validation", cache=tmp_path / "c" / "x",
                           cache_key="k", shuffle=False)
    assert rows(cached) == list(range(10))
    assert sorted(p.name for p in (tmp_path / "c").iterdir())[0].startswith("x_validation_k")


def test_a_seeded_pipeline_needs_its_epoch():
    with pytest.raises(ValueError, match="needs the `epoch`"):
        data.pipeline(arrays(), "train", seed=1)
    data.pipeline(arrays(), "train", seed=1, shuffle=False)  # nothing depends on the epoch


def test_batch_seeds_are_a_function_of_seed_epoch_and_batch():
    def augmented(seed: int, epoch_number: int) -> np.ndarray:
        noise = keras.Sequential([keras.layers.GaussianNoise(1.0)])
        augment = seeds.BatchSeeds(noise, seed)
        dataset = tf.data.Dataset.from_tensor_slices(np.zeros((12, 2), "float32")).batch(3)
        dataset = dataset.enumerate().map(
            lambda batch, x: augment(tf.constant(epoch_number, tf.int64), batch, x),
            num_parallel_calls=4)
        return np.concatenate(list(dataset.as_numpy_iterator()))

    first = augmented(1, 0)
    np.testing.assert_array_equal(first, augmented(1, 0))  # in parallel, every run
    assert len({tuple(first[i]) for i in range(12)}) == 12  # each batch drawn anew
    assert not np.allclose(first, augmented(1, 1))  # anew every epoch
    assert not np.allclose(first, augmented(2, 0))


def test_pipeline_augments_the_training_split_only():
    made = []

    def augment_layers() -> keras.Layer:
        made.append(1)
        return keras.Sequential([keras.layers.GaussianNoise(1.0)])

    features = np.zeros((8, 3), "float32"), np.zeros(8)
    train = data.pipeline(features, "train", seed=3, augment=augment_layers,
                          epoch=seeds.Epoch())
    assert np.abs(np.concatenate([x for x, _ in train])).sum() > 0
    plain = data.pipeline(features, "adapt", seed=3, augment=augment_layers)
    assert np.abs(np.concatenate([x for x, _ in plain])).sum() == 0 and len(made) == 1


def test_epochs_is_every_epoch_through_one_iterator():
    """`training.epochs()` is epoch after epoch of what `training.dataset` gives when
    started at each epoch: the same order and the same augmentation, from the epoch it
    starts at."""
    def layers() -> keras.Layer:
        return keras.Sequential([keras.layers.GaussianNoise(1.0)])

    def batches(dataset, count):
        return [(x.numpy().tolist(), y.numpy().tolist()) for x, y in dataset.take(count)]

    for split in (arrays(10), tf.data.Dataset.from_tensor_slices(arrays(10))):
        epoch = seeds.Epoch()
        training = data.Pipeline(batch=4, seed=5, epoch=epoch, augment=layers).training(split)
        train = training.dataset
        each = []
        for number in range(2, 5):  # a run resumed at epoch 2, one iterator an epoch
            epoch.assign(number)
            each += batches(train, 3)
        epoch.assign(2)
        assert int(train.cardinality()) == 3
        assert batches(training.epochs(), 9) == each
        assert training.epochs() is training.epochs()  # made once
    unseeded = data.Pipeline(batch=4).datasets({"train": arrays(10)})
    assert sorted(rows(data.train_epochs(unseeded).take(6))) == sorted(list(range(10)) * 2)
    assert data.train_epochs(data.Pipeline(batch=4).datasets({"validation": arrays(10)})) is None
    assert data.Pipeline(batch=4, repeat=True).training(arrays(10)).epochs() is None


def test_data_epoch_callback_sets_the_epoch():
    epoch = seeds.Epoch()
    callback = seeds.DataEpoch(epoch)
    callback.on_epoch_begin(3)
    assert int(epoch.variable.numpy()) == 3
    callback.on_epoch_end(3)
    assert int(epoch.variable.numpy()) == 4


# -- adaptation -------------------------------------------------------------------------------


def test_adapt_fits_a_layer_to_the_tensors_that_reach_it():
    x = keras.Input((1,), name="x")
    scaled = keras.layers.Rescaling(10.0, name="scale")(x)
    model = keras.Model(x, keras.layers.Normalization(name="norm")(scaled))
    train = batches(np.array([[1.0], [3.0]], "float32"), np.zeros(2))
    data.adapt(model, train, "norm")
    np.testing.assert_allclose(np.asarray(model.get_layer("norm").mean).ravel(), [20.0])
    data.adapt(model, train, "norm", through_model=False)  # the raw feature
    np.testing.assert_allclose(np.asarray(model.get_layer("norm").mean).ravel(), [2.0])


def test_model_outputs_of_each_kind():
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert list(data.model_outputs(sequential, ["out"])) == ["out"]
    x = keras.Input((3,), name="x")
    named = keras.Model(x, {"a": keras.layers.Dense(1)(x), "b": keras.layers.Dense(2)(x)})
    assert sorted(data.model_outputs(named, ["a", "b"])) == ["a", "b"]


def test_a_spec_name_never_shadows_a_runtime_module(tmp_path):
    """A model named `data` is a class of the program: it must not hide the module."""
    from tfspec.codegen.program import compile_text

    spec = """tfspec 1
data {
  source = synthetic(samples = 8)
  split { validation = 0.25, seed = 1 }
}
model data subclass {
  input x: float32[3]
  output y = Dense(2, activation = "softmax")(x)
}
train {
  optimizer = "adam"
  loss = "sparse_categorical_crossentropy"
}
"""
    source = compile_text(spec, "m.tfspec").source
    assert "class data_(keras.Model)" in source and "from tfspec.runtime import" in source
    namespace: dict = {"__file__": str(tmp_path / "m.py")}
    exec(compile(source, "m.py", "exec"), namespace)
    assert namespace["data"] is data and len(namespace["load_splits"]()["train"][1]) == 6
