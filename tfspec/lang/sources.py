"""The data sources a spec can name in `data { source = … }`.

Entries use the catalog's format (ordered params with `required`, `default`
and `type`), so the same argument checker covers `npz(…)` and `Dense(…)`.
"""

from __future__ import annotations

from typing import Any


def _p(name: str, required: bool = False, type: Any = None, **default: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "required": required, "positional": True}
    if type is not None:
        out["type"] = type
    if "default" in default:
        out["default"] = default["default"]
    return out


KERAS_DATASETS = [
    "mnist", "fashion_mnist", "cifar10", "cifar100", "imdb", "reuters",
    "boston_housing", "california_housing",
]

SOURCES: dict[str, dict[str, Any]] = {
    "npz": {
        "doc": "NumPy .npz archive (numpy.load); x/y name the arrays (a list for several inputs)",
        "params": [
            _p("path", True, "string"),
            _p("x", default="x"),
            _p("y", default="y"),
        ],
    },
    "csv": {
        "doc": "CSV file with a header row; `label` names the label column(s)",
        "params": [
            _p("path", True, "string"),
            _p("label", default=None),
            _p("features", default=None),
            _p("delimiter", type="string", default=","),
            _p("header", type="bool", default=True),
            _p("na_value", type="string", default=""),
        ],
    },
    "images": {
        "doc": "a folder of class sub-folders (keras.utils.image_dataset_from_directory)",
        "params": [
            _p("directory", True, "string"),
            _p("size", type="size", default=[256, 256]),
            _p("labels", type="string", default="inferred"),
            _p("label_mode", type={"enum": ["int", "categorical", "binary"]}, default="int"),
            _p("color_mode", type={"enum": ["grayscale", "rgb", "rgba"]}, default="rgb"),
            _p("interpolation", type="string", default="bilinear"),
            _p("crop_to_aspect_ratio", type="bool", default=False),
        ],
    },
    "text": {
        "doc": "a folder of class sub-folders of .txt files "
        "(keras.utils.text_dataset_from_directory)",
        "params": [
            _p("directory", True, "string"),
            _p("labels", type="string", default="inferred"),
            _p("label_mode", type={"enum": ["int", "categorical", "binary"]}, default="int"),
            _p("max_length", type="positive_int", default=None),
        ],
    },
    "tfds": {
        "doc": "a TensorFlow Datasets dataset (tfds.load)",
        "params": [
            _p("name", True, "string"),
            _p("split", default="train"),
            _p("data_dir", type="string", default=None),
            _p("as_supervised", type="bool", default=True),
            _p("download", type="bool", default=False),
        ],
    },
    "keras": {
        "doc": "a dataset from keras.datasets (downloads once into ~/.keras/datasets)",
        "params": [_p("name", True, {"enum": KERAS_DATASETS})],
    },
    "tfrecord": {
        "doc": "TFRecord files of tf.train.Example; `data.features` describes the features",
        "params": [
            _p("pattern", True, "string"),
            _p("label", default="label"),
            _p("compression", type={"enum": ["", "GZIP", "ZLIB"]}, default=""),
        ],
    },
    "generator": {
        "doc": "a Python generator `module:function`, allowed with --allow-module",
        "params": [_p("target", True, "string")],
    },
    "synthetic": {
        "doc": "random tensors shaped like the model's inputs and labels",
        "params": [
            _p("samples", type="positive_int", default=256),
            _p("classes", type="positive_int", default=None),
            _p("seed", type="int", default=0),
        ],
    },
}
