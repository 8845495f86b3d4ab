"""Small, real data files for the data tests (tests/test_data.py), written into tmp dirs.

Every writer produces the real on-disk format its source reads: `.npz` archives,
CSV text, PNG files in class folders, TFRecord files of `tf.train.Example`, an
importable generator module, the `mnist.npz` / `boston_housing.npz` layouts of
`keras.datasets`. Examples carry their own id where a test needs to follow them
through splits and shuffles.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SHIPPED = EXAMPLES / "data"


def write_spec(directory: Path, text: str, name: str = "spec.tfspec") -> Path:
    """Write a spec (dedented) into `directory`; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def source_position(path: Path) -> tuple[int, int]:
    """1-based (line, column) of the value of `source = …` in a spec file."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip().startswith("source ="):
            return number, line.index("=") + 3
    raise AssertionError(f"no `source =` line in {path}")


def copy_shipped(directory: Path, name: str) -> Path:
    """Copy a file or folder of examples/data into `directory`; returns the copy."""
    directory.mkdir(parents=True, exist_ok=True)
    source, target = SHIPPED / name, directory / name
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, target)
    return target


def write_points_npz(path: Path, count: int = 103, classes: int = 3) -> Path:
    """`x` (count, 4) float32 whose column 0 is the example's id, `y` class ids,
    `y_onehot` the same labels one-hot, and `a` (count, 3) / `b` (count, 2): two
    inputs whose first column is the id too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = np.arange(count, dtype="float32")
    x = rng.normal(size=(count, 4)).astype("float32")
    x[:, 0] = ids
    y = (np.arange(count) % classes).astype("int64")
    a = rng.normal(size=(count, 3)).astype("float32")
    a[:, 0] = ids
    b = rng.normal(size=(count, 2)).astype("float32")
    b[:, 0] = ids
    np.savez(path, x=x, y=y, y_onehot=np.eye(classes, dtype="float32")[y], a=a, b=b)
    return path


COLORS = ("red", "green", "blue")


def write_color_csv(path: Path, count: int = 40) -> Path:
    """A CSV with a float column `size`, a string column `color` and an int `label`
    (1 for red, else 0), with a header row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    rows = ["size,color,label"]
    for i in range(count):
        color = COLORS[i % len(COLORS)]
        rows.append(f"{rng.uniform(1, 10):.3f},{color},{int(color == 'red')}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_png_folders(directory: Path, classes: tuple[str, ...] = ("cat", "dog"),
                      per_class: int = 8, size: tuple[int, int] = (12, 10)) -> Path:
    """`directory/<class>/<i>.png`: small random RGB images (real PNG files)."""
    from PIL import Image

    rng = np.random.default_rng(2)
    for label, name in enumerate(classes):
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
            pixels[..., 0] = 40 + 150 * label  # the red channel tells the classes apart
            Image.fromarray(pixels, "RGB").save(folder / f"{i:03d}.png")
    return directory


def write_mnist_npz(path: Path, train: int = 40, test: int = 10) -> Path:
    """A file in the real layout of `mnist.npz` (`x_train`, `y_train`, `x_test`,
    `y_test`; uint8 28x28 images), with far fewer images."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    np.savez(
        path,
        x_train=rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8),
        y_train=(np.arange(train) % 10).astype(np.uint8),
        x_test=rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8),
        y_test=(np.arange(test) % 10).astype(np.uint8),
    )
    return path


def write_boston_npz(path: Path, count: int = 50) -> Path:
    """A file in the real layout of `boston_housing.npz` (`x` (n, 13), `y` (n,))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(4)
    np.savez(path, x=rng.uniform(0, 100, size=(count, 13)), y=rng.uniform(5, 50, size=count))
    return path


def write_tfrecords(pattern_dir: Path, count: int = 40, files: int = 2,
                    compression: str = "") -> Path:
    """`part-<k>.tfrecord` files of tf.train.Example with `pixels` (4 floats, the
    first the example's id), `extra` (2 floats) and an int64 `label`."""
    import tensorflow as tf

    pattern_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    options = tf.io.TFRecordOptions(compression_type=compression)
    writers = [tf.io.TFRecordWriter(str(pattern_dir / f"part-{k}.tfrecord"), options)
               for k in range(files)]
    for i in range(count):
        pixels = [float(i), *rng.normal(size=3).tolist()]
        example = tf.train.Example(features=tf.train.Features(feature={
            "pixels": tf.train.Feature(float_list=tf.train.FloatList(value=pixels)),
            "extra": tf.train.Feature(float_list=tf.train.FloatList(
                value=rng.normal(size=2).tolist())),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3])),
        }))
        writers[i % files].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    return pattern_dir


def write_generator_module(directory: Path, module: str, count: int = 40) -> Path:
    """`directory/<module>.py` with `examples()`: `count` (float32[4], class id)
    pairs, the first feature the example's id; `CALLS` counts the generator's runs."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{module}.py"
    path.write_text(textwrap.dedent(f'''
        """Examples for a tfspec `generator(…)` source (written by tests/data_fixtures.py)."""

        import numpy as np

        CALLS = []


        def examples():
            CALLS.append(1)
            rng = np.random.default_rng(6)
            for i in range({count}):
                x = rng.normal(size=4).astype("float32")
                x[0] = i
                yield x, i % 3
    ''').lstrip("\n"), encoding="utf-8")
    return path


_TFDS_BUILDER: list[type] = []


def tfds_points_builder() -> type:
    """`tfspec_test_points`: a local TFDS dataset (`train` 30, `test` 10 examples of
    `x` float32[4], its first value the example's id, and a 3-class `label`),
    registered once per session."""
    if _TFDS_BUILDER:
        return _TFDS_BUILDER[0]
    import tensorflow_datasets as tfds

    class TfspecTestPoints(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({
                    "x": tfds.features.Tensor(shape=(4,), dtype=np.float32),
                    "label": tfds.features.ClassLabel(num_classes=3),
                }),
                supervised_keys=("x", "label"),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, 30),
                    "test": self._generate_examples(30, 40)}

        def _generate_examples(self, start, stop):
            for i in range(start, stop):
                yield i, {"x": np.array([i, 1, 2, 3], np.float32), "label": i % 3}

    _TFDS_BUILDER.append(TfspecTestPoints)
    return TfspecTestPoints


def prepare_tfds_points(data_dir: Path) -> Path:
    """Generate `tfspec_test_points` into `data_dir` (offline: no GCS look-up)."""
    import tensorflow_datasets as tfds

    builder = tfds_points_builder()(data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return data_dir


def dataset_ops(dataset) -> list[tuple[str, list]]:
    """The ops of a tf.data pipeline, from source to sink, with their constant
    arguments (`None` for a non-constant input, e.g. the upstream dataset)."""
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(
        tf.raw_ops.DatasetToGraphV2(input_dataset=dataset._variant_tensor).numpy())
    # the ops of functions too (a per-epoch shuffle lives in a flat_map's function)
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    consts = {node.name: node for node in nodes if node.op == "Const"}

    def value(name):
        node = consts.get(name.split(":")[0])
        if node is None:
            return None
        try:
            return tf.make_ndarray(node.attr["value"].tensor).tolist()
        except KeyError:  # a resource handle
            return None

    def decode(v):
        return v.decode() if isinstance(v, bytes) else v

    return [(node.op, [decode(value(i)) for i in node.input if not i.startswith("^")])
            for node in nodes if node.op not in ("Const", "_Retval")]
