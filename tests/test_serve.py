"""`tfspec serve`: TF Serving's REST API over real HTTP, from a real server.

The SavedModels are written here as tfspec's exporter writes them (ExportArchive,
a signature from the model's named inputs to its named outputs), plus one from plain
`model.export` and one by a generated program's own `export_all` (which
records the spec's name). One `tfspec serve` process serves the classifier's base
directory (versions 1 and 2) for the whole module; the other exports are served
in-process with `make_server` (TensorFlow is already imported here), or by a process
of their own where signals are the point.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

from tfspec.codegen.program import compile_text
from tfspec.jobs.build import load_program, quiet_tensorflow
from tfspec.serving.servables import ServeError, find_export
from tfspec.serving.server import make_server

quiet_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # starts a server process
NAME = "digits"
TOLERANCE = 1e-5


# ---------------------------------------------------------------------------
# the exports


def classifier(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    image = keras.Input((3, 2), name="image")
    x = keras.layers.Flatten()(image)
    digit = keras.layers.Dense(4, activation="softmax", name="digit")(x)
    return keras.Model(image, digit)


def two_tower() -> keras.Model:
    keras.utils.set_random_seed(3)
    user = keras.Input((3,), name="user")
    item = keras.Input((2,), dtype="int32", name="item")
    items = keras.layers.Flatten()(keras.layers.Embedding(10, 2)(item))
    both = keras.layers.Concatenate()([user, items])
    score = keras.layers.Dense(1, name="score")(both)
    click = keras.layers.Dense(2, activation="softmax", name="click")(both)
    return keras.Model({"user": user, "item": item}, {"score": score, "click": click})


def export_archive(model: keras.Model, directory: Path, specs: dict[str, tf.TensorSpec],
                   named_outputs: Any) -> None:
    """As tfspec's exporter does: inputs named after the model's inputs, outputs after
    its outputs."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=named_outputs,
                         input_signature=[specs])
    archive.write_out(str(directory), verbose=False)


def digit_of(model: keras.Model) -> Any:
    return lambda features: {"digit": model(features["image"])}


class Echo(tf.Module):
    """A string model: `b64` in, and out for an output named *_bytes."""

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="text")])
    def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"length": tf.strings.length(text), "echo_bytes": text}


SPEC_NAME = "digits-cnn"
SPEC_WITH_EXPORT = f"""\
tfspec 1
name "{SPEC_NAME}"
data {{
  source = synthetic(samples = 8)
  split {{ validation = 0.5 }}
}}
model Net sequential {{
  input image: float32[3, 2]
  Flatten()
  Dense(4, activation = "softmax", name = "digit")
}}
train {{
  loss = "sparse_categorical_crossentropy"
}}
export {{
  saved_model "named/serving"
}}
"""


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("serve")
    v1, v2, tower = classifier(1), classifier(2), two_tower()
    image = {"image": tf.TensorSpec((None, 3, 2), tf.float32, name="image")}
    for version, model in ((1, v1), (2, v2)):
        export_archive(model, root / "serving" / str(version), image, digit_of(model))
    export_archive(tower, root / "tower" / "1",
                   {"user": tf.TensorSpec((None, 3), tf.float32, name="user"),
                    "item": tf.TensorSpec((None, 2), tf.int32, name="item")},
                   lambda features: tower(features))
    v1.export(str(root / "plain" / "1"), verbose=False)
    echo = Echo()
    tf.saved_model.save(echo, str(root / "echo" / "1"), signatures={"serving_default": echo.serve})
    # as a spec's `saved_model "named/serving"` export writes it: the spec's name recorded
    program = load_program(compile_text(SPEC_WITH_EXPORT, str(root / "spec.tfspec")))
    (root / "named-run").mkdir()
    program["export_all"](program["build_model"](), root / "named-run",
                          program["make_datasets"]())
    run = root / "run"
    run.mkdir()
    (run / "exports.json").write_text(json.dumps({"name": "digits-cnn", "targets": [
        {"format": "tflite", "path": str(run / "model.tflite")},
        {"format": "saved_model", "path": str(root / "serving"), "version": 2,
         "signature": "serving_default"},
    ]}))
    return {"root": root, "v1": v1, "v2": v2, "tower": tower}


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(16, 3, 2)).astype(np.float32)


# ---------------------------------------------------------------------------
# servers and an HTTP client


class Server:
    """`tfspec serve` in its own process."""

    def __init__(self, path: Path, *args: str, ignore_sigint: bool = False) -> None:
        # ignore_sigint: started as a non-interactive shell starts `tfspec serve … &`
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint \
            else None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tfspec", "serve", str(path), "--port", "0", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=ignore)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.process.stdout.readline()),
                         daemon=True).start()
        try:
            self.banner = lines.get(timeout=180)
        except queue.Empty:
            self.stop()
            raise AssertionError("tfspec serve printed nothing in 180 s") from None
        found = re.search(r"http://[\d.]+:\d+", self.banner)
        assert found, (self.banner, self.stop())
        self.url = found.group(0)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err


@pytest.fixture(scope="module")
def server(exports: dict[str, Any]) -> Iterator[Server]:
    running = Server(exports["root"] / "serving", "--name", NAME)
    yield running
    running.stop()


@contextlib.contextmanager
def in_process(path: Path, **options: Any) -> Iterator[str]:
    """make_server on a free port, serving from a thread."""
    httpd = make_server(path, port=0, **options)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.url
    finally:
        httpd.shutdown()
        httpd.server_close()


def call(url: str, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any, http.client.HTTPResponse]:
    """One request on a fresh connection: status, the JSON answer, the response."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    assert response.getheader("Content-Type") == "application/json"
    return response.status, json.loads(data), response


def predict(url: str, body: Any, path: str = f"/v1/models/{NAME}:predict") -> Any:
    status, answer, _ = call(url, "POST", path, body)
    assert status == 200, answer
    return answer


def close(got: Any, expected: np.ndarray) -> bool:
    return np.allclose(np.asarray(got, dtype=np.float64), expected, atol=TOLERANCE, rtol=0)


# ---------------------------------------------------------------------------
# status and metadata


def test_the_banner_names_the_url_model_and_versions(server: Server):
    assert f"serving {NAME} (--name; versions 1, 2, default 2)" in server.banner
    assert f"{server.url}/v1/models/{NAME}" in server.banner


def test_model_status_lists_every_version_newest_first(server: Server):
    ok = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    status, answer, _ = call(server.url, "GET", f"/v1/models/{NAME}")
    assert status == 200
    assert answer == {"model_version_status": [{"version": "2", **ok}, {"version": "1", **ok}]}
    status, answer, _ = call(server.url, "GET", f"/v1/models/{NAME}/versions/1")
    assert (status, answer) == (200, {"model_version_status": [{"version": "1", **ok}]})


def test_metadata_prints_the_signature_defs_as_tf_serving(server: Server):
    status, answer, _ = call(server.url, "GET", f"/v1/models/{NAME}/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": NAME, "signature_name": "", "version": "2"}
    signature = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["image"] == {
        "name": "serving_default_image:0",
        "dtype": "DT_FLOAT",
        "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "3", "name": ""},
                                 {"size": "2", "name": ""}], "unknown_rank": False},
    }
    digit = signature["outputs"]["digit"]
    assert digit["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in digit["tensor_shape"]["dim"]] == ["-1", "4"]
    status, answer, _ = call(server.url, "GET", f"/v1/models/{NAME}/versions/1/metadata")
    assert status == 200 and answer["model_spec"]["version"] == "1"
    # beside TF Serving's entry in the metadata map: the name served, and from where
    assert answer["metadata"]["tfspec"] == {"name": NAME, "name_from": "--name"}


# ---------------------------------------------------------------------------
# the model's name


def test_a_spec_export_is_served_under_the_spec_name(exports: dict[str, Any],
                                                     images: np.ndarray):
    base = exports["root"] / "named" / "serving"
    record = json.loads((base / "1" / "assets.extra" / "tfspec.json").read_text())
    assert record == {"name": SPEC_NAME}
    assert tf.saved_model.load(str(base / "1")).signatures["serving_default"]  # loads
    export = find_export(base)
    assert (export.name, export.name_from) == (SPEC_NAME, "spec")
    assert find_export(base / "1").name == SPEC_NAME  # one SavedModel: the same record
    assert find_export(base, "other").name == "other"  # --name overrides it
    with in_process(base) as url:
        status, answer, _ = call(url, "GET", f"/v1/models/{SPEC_NAME}/metadata")
        assert status == 200
        assert answer["model_spec"]["name"] == SPEC_NAME
        assert answer["metadata"]["tfspec"] == {"name": SPEC_NAME, "name_from": "spec"}
        assert predict(url, {"instances": images[:2].tolist()},
                       f"/v1/models/{SPEC_NAME}:predict")["predictions"]
        status, answer, _ = call(url, "GET", "/v1/models/serving")  # not the folder's name
        assert status == 404, answer


def test_without_a_record_the_folder_names_the_model(exports: dict[str, Any]):
    export = find_export(exports["root"] / "tower")
    assert (export.name, export.name_from) == ("tower", "folder")
    with in_process(exports["root"] / "tower") as url:
        status, answer, _ = call(url, "GET", "/v1/models/tower/metadata")
        assert answer["metadata"]["tfspec"] == {"name": "tower", "name_from": "folder"}


def fake_saved_model(directory: Path, name: str | None) -> None:
    """A SavedModel's files as far as find_export looks (it loads nothing)."""
    directory.mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(b"")
    if name is not None:
        (directory / "assets.extra").mkdir()
        (directory / "assets.extra" / "tfspec.json").write_text(json.dumps({"name": name}))


def test_the_default_version_names_the_model(tmp_path: Path):
    fake_saved_model(tmp_path / "serving" / "1", "old-name")
    fake_saved_model(tmp_path / "serving" / "2", "new-name")
    assert find_export(tmp_path / "serving").name == "new-name"  # TF Serving's default: 2
    fake_saved_model(tmp_path / "serving" / "3", None)  # written by something else
    assert find_export(tmp_path / "serving").name == "serving"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "exports.json").write_text(json.dumps({"name": "run-name", "targets": [
        {"format": "saved_model", "path": str(tmp_path / "serving"), "version": 2}]}))
    export = find_export(tmp_path / "run")  # a run directory: the run's spec name
    assert (export.name, export.name_from) == ("run-name", "spec")


def test_a_recorded_name_that_cannot_be_a_url_segment_asks_for_name(tmp_path: Path):
    fake_saved_model(tmp_path / "serving" / "1", "digits/cnn")
    with pytest.raises(ServeError, match=r"invalid model name 'digits/cnn' \(the spec's "
                                         r"name\).*\(pass --name\)"):
        find_export(tmp_path / "serving")
    assert find_export(tmp_path / "serving", "digits").name == "digits"


# ---------------------------------------------------------------------------
# predict


def test_row_format_equals_keras_predict(server: Server, exports: dict[str, Any],
                                         images: np.ndarray):
    answer = predict(server.url, {"instances": images[:5].tolist()})
    assert list(answer) == ["predictions"]
    assert close(answer["predictions"], exports["v2"].predict(images[:5], verbose=0))
    # one input: an instance may also be an object keyed by its name
    named = predict(server.url, {"instances": [{"image": x} for x in images[:2].tolist()]})
    assert close(named["predictions"], exports["v2"].predict(images[:2], verbose=0))


def test_columnar_format_equals_keras_predict(server: Server, exports: dict[str, Any],
                                              images: np.ndarray):
    expected = exports["v2"].predict(images[:4], verbose=0)
    answer = predict(server.url, {"inputs": images[:4].tolist()})
    assert list(answer) == ["outputs"] and close(answer["outputs"], expected)
    answer = predict(server.url, {"signature_name": "serving_default",
                                  "inputs": {"image": images[:4].tolist()}})
    assert close(answer["outputs"], expected)


def test_a_specific_version_and_the_default_one(server: Server, exports: dict[str, Any],
                                                images: np.ndarray):
    body = {"instances": images[:3].tolist()}
    first = predict(server.url, body, f"/v1/models/{NAME}/versions/1:predict")
    second = predict(server.url, body, f"/v1/models/{NAME}/versions/2:predict")
    default = predict(server.url, body)
    assert close(first["predictions"], exports["v1"].predict(images[:3], verbose=0))
    assert close(second["predictions"], exports["v2"].predict(images[:3], verbose=0))
    assert default == second
    assert not close(first["predictions"], np.asarray(second["predictions"]))


def test_two_inputs_and_two_outputs(exports: dict[str, Any]):
    rng = np.random.default_rng(1)
    user = rng.normal(size=(3, 3)).astype(np.float32)
    item = rng.integers(0, 10, size=(3, 2)).astype(np.int32)
    expected = exports["tower"].predict({"user": user, "item": item}, verbose=0)
    with in_process(exports["root"] / "tower") as url:
        path = "/v1/models/tower:predict"
        rows = predict(url, {"instances": [{"user": u, "item": i} for u, i
                                           in zip(user.tolist(), item.tolist(), strict=True)]},
                       path)["predictions"]
        assert [sorted(row) for row in rows] == [["click", "score"]] * 3
        for key in ("click", "score"):
            assert close([row[key] for row in rows], expected[key])
        columns = predict(url, {"inputs": {"user": user.tolist(), "item": item.tolist()}},
                          path)["outputs"]
        assert sorted(columns) == ["click", "score"]
        for key in ("click", "score"):
            assert close(columns[key], expected[key])
        status, answer, _ = call(url, "POST", path, {"instances": [{"user": [1, 2, 3]}]})
        assert status == 400
        assert answer == {"error": "Failed to process element: 0 of 'instances' list. JSON "
                                   "object: {\"user\": [1, 2, 3]} must only have keys: item,user"}
        status, answer, _ = call(url, "POST", path, {"instances": [[1, 2, 3]]})
        assert status == 400 and "expecting list of objects" in answer["error"]
        status, answer, _ = call(url, "POST", path,
                                 {"inputs": {"user": [[1, 2, 3]], "item": [[1.5, 2]]}})
        assert (status, answer) == (400, {"error": "JSON Value: 1.5 Type: Number is not of "
                                                   "expected type: int32"})


def test_plain_model_export_names_its_output_output_0(exports: dict[str, Any],
                                                      images: np.ndarray):
    with in_process(exports["root"] / "plain") as url:
        _, metadata, _ = call(url, "GET", "/v1/models/plain/metadata")
        outputs = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"][
            "outputs"]
        assert list(outputs) == ["output_0"]
        answer = predict(url, {"instances": images[:2].tolist()}, "/v1/models/plain:predict")
        assert close(answer["predictions"], exports["v1"].predict(images[:2], verbose=0))


def test_b64_strings_in_and_out(exports: dict[str, Any]):
    raw = [b"\x00\xffbytes", "héllo".encode()]
    with in_process(exports["root"] / "echo") as url:
        path = "/v1/models/echo:predict"
        rows = predict(url, {"instances": [{"b64": base64.b64encode(r).decode()} for r in raw]},
                       path)["predictions"]
        assert [row["length"] for row in rows] == [len(r) for r in raw]
        assert [base64.b64decode(row["echo_bytes"]["b64"]) for row in rows] == raw
        columns = predict(url, {"inputs": ["plain text"]}, path)["outputs"]
        assert columns == {"length": [10], "echo_bytes": [{"b64": "cGxhaW4gdGV4dA=="}]}


def test_a_run_directory_is_served_through_its_exports_json(exports: dict[str, Any],
                                                            images: np.ndarray):
    run = exports["root"] / "run"
    export = find_export(run)
    assert export.name == "digits-cnn"
    assert export.versions == {1: exports["root"] / "serving" / "1",
                               2: exports["root"] / "serving" / "2"}
    with in_process(run) as url:
        status, answer, _ = call(url, "GET", "/v1/models/digits-cnn")
        assert status == 200 and [v["version"] for v in answer["model_version_status"]] == [
            "2", "1"]
        answer = predict(url, {"instances": images[:2].tolist()}, "/v1/models/digits-cnn:predict")
        assert close(answer["predictions"], exports["v2"].predict(images[:2], verbose=0))


def test_chunked_request_bodies_are_read(server: Server, images: np.ndarray):
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    body = json.dumps({"instances": images[:1].tolist()}).encode()
    conn.request("POST", f"/v1/models/{NAME}:predict", body=iter([body[:10], body[10:]]),
                 encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 200 and "predictions" in json.loads(response.read())
    conn.close()


# ---------------------------------------------------------------------------
# errors: TF Serving's {"error": ...} and status codes


def _ragged() -> dict[str, Any]:
    return {"instances": [[[1, 2], [3, 4], [5, 6]], [[1, 2], [3, 4]]]}


ERRORS = [
    ("malformed JSON", "POST", f"/v1/models/{NAME}:predict", b'{"instances": [1,', 400,
     "JSON Parse error: Expecting value at offset: 17"),
    ("empty body", "POST", f"/v1/models/{NAME}:predict", b"", 400,
     "JSON Parse error: The document is empty"),
    ("not an object", "POST", f"/v1/models/{NAME}:predict", [1, 2], 400,
     "JSON Value: [1, 2] Is not object"),
    ("no instances or inputs", "POST", f"/v1/models/{NAME}:predict", {"instance": [1]}, 400,
     "Missing 'inputs' or 'instances' key"),
    ("both instances and inputs", "POST", f"/v1/models/{NAME}:predict",
     {"instances": [1], "inputs": [1]}, 400,
     "JSON Value: {\"instances\": [1], \"inputs\": [1]} Not formatted correctly expecting "
     "only one of 'inputs' or 'instances' keys to exist "),
    ("empty instances", "POST", f"/v1/models/{NAME}:predict", {"instances": []}, 400,
     "JSON Value: {\"instances\": []} No values in 'instances' array"),
    ("wrong shape", "POST", f"/v1/models/{NAME}:predict", {"instances": [[1, 2, 3]]}, 400,
     "input `image`: 1 instance of shape [3], but signature `serving_default` takes "
     "[-1,3,2] (the batch first; -1: any size)"),
    ("wrong shape, columnar", "POST", f"/v1/models/{NAME}:predict", {"inputs": [[1, 2]]}, 400,
     "input `image` has shape [1,2], but signature `serving_default` takes [-1,3,2] "
     "(-1: any size)"),
    ("ragged instances", "POST", f"/v1/models/{NAME}:predict", _ragged(), 400,
     "Failed to process element: 1 of 'instances' list. Error: Expecting shape [3,2] but "
     "got: [2,2]"),
    ("wrong dtype", "POST", f"/v1/models/{NAME}:predict",
     {"instances": [[[1, 2], ["a", 4], [5, 6]]]}, 400,
     'JSON Value: "a" Type: String is not of expected type: float'),
    ("a boolean among numbers", "POST", f"/v1/models/{NAME}:predict",
     {"instances": [[[1, 2], [True, 4], [5, 6]]]}, 400,
     "JSON Value: true Type: True is not of expected type: float"),
    ("unknown signature", "POST", f"/v1/models/{NAME}:predict",
     {"signature_name": "classify", "instances": [1]}, 400,
     'Serving signature name: "classify" not found in signature def'),
    ("signature name not a string", "POST", f"/v1/models/{NAME}:predict",
     {"signature_name": 3, "instances": [1]}, 400,
     "JSON Value: {\"signature_name\": 3, \"instances\": [1]} not formatted correctly. "
     "'signature_name' key must be a string value."),
    ("unknown model", "POST", "/v1/models/nope:predict", {"instances": [1]}, 404,
     "Servable not found for request: Latest(nope)"),
    ("unknown version", "POST", f"/v1/models/{NAME}/versions/9:predict", {"instances": [1]},
     404, f"Servable not found for request: Specific({NAME}, 9)"),
    ("unknown model's status", "GET", "/v1/models/nope", None, 404,
     "Could not find any versions of model nope"),
    ("unknown version's status", "GET", f"/v1/models/{NAME}/versions/9", None, 404,
     f"Could not find version 9 of model {NAME}"),
    ("unknown model's metadata", "GET", "/v1/models/nope/metadata", None, 404,
     "Servable not found for request: Latest(nope)"),
    ("no model name", "GET", "/v1/models", None, 400, "Missing model name in request."),
    ("unknown path", "GET", "/v2/models/digits", None, 404,
     "Malformed request: GET /v2/models/digits"),
    ("unparsable /v1/ path", "GET", f"/v1/models/{NAME}/signatures", None, 400,
     f"Malformed request: GET /v1/models/{NAME}/signatures"),
    ("GET on predict", "GET", f"/v1/models/{NAME}:predict", None, 405,
     f"Malformed request: GET /v1/models/{NAME}:predict (this URL takes POST only)"),
    ("POST on status", "POST", f"/v1/models/{NAME}", {"instances": [1]}, 405,
     f"Malformed request: POST /v1/models/{NAME} (this URL takes GET only)"),
    ("DELETE", "DELETE", f"/v1/models/{NAME}", None, 405,
     f"Malformed request: DELETE /v1/models/{NAME} (this URL takes GET only)"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"),
                         [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_errors_have_tf_servings_shape_and_status(server: Server, method: str, path: str,
                                                  body: Any, status: int, message: str):
    got, answer, response = call(server.url, method, path, body)
    assert (got, answer) == (status, {"error": message})
    if status == 405:
        assert response.getheader("Allow") == ("POST" if ":predict" in path else "GET")


def test_a_body_over_the_bound_is_refused_before_it_is_read(server: Server):
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.putrequest("POST", f"/v1/models/{NAME}:predict")
    conn.putheader("Content-Length", str(40 * 1024 * 1024))  # the default bound is 32 MiB
    conn.endheaders()  # and no body at all: the answer comes from the headers alone
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read()) == {"error": "Request body of 41943040 bytes exceeds "
                                                    "the limit of 33554432 bytes"}
    conn.close()
    # a client that sends it all anyway still reads the answer, not a reset connection
    status, answer, _ = call(server.url, "POST", f"/v1/models/{NAME}:predict",
                             b" " * (32 * 1024 * 1024 + 1))
    assert status == 413 and answer["error"].startswith("Request body of 33554433 bytes")


def test_the_bound_is_configurable(exports: dict[str, Any]):
    with in_process(exports["root"] / "serving", max_body_bytes=1000) as url:
        path = "/v1/models/serving:predict"
        status, answer, _ = call(url, "POST", path, b" " * 1001)
        assert (status, answer) == (413, {"error": "Request body of 1001 bytes exceeds the "
                                                   "limit of 1000 bytes"})
        body = json.dumps({"instances": [[[0, 0], [0, 0], [0, 0]]]}).encode()
        assert call(url, "POST", path, body.ljust(1000))[0] == 200


# ---------------------------------------------------------------------------
# load, and the command line


def hammer(url: str, path: str, images: np.ndarray, expected: np.ndarray,
           clients: int = 8, requests: int = 200) -> None:
    """`clients` threads x `requests` predict requests each, every answer checked."""
    bodies = [json.dumps({"instances": images[i:i + 1].tolist()}).encode()
              for i in range(len(images))]
    failures: list[str] = []
    start = threading.Barrier(clients)

    def client(seed: int) -> None:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        start.wait()
        for n in range(requests):
            i = (seed * 7 + n) % len(images)
            try:  # one keep-alive connection per client, as real clients hold one
                conn.request("POST", path, body=bodies[i])
                response = conn.getresponse()
                answer = json.loads(response.read())
                if response.status != 200 or not close(answer["predictions"], expected[i:i + 1]):
                    failures.append(f"client {seed} request {n}: {response.status} {answer}")
            except (OSError, http.client.HTTPException, ValueError) as exc:
                failures.append(f"client {seed} request {n}: {exc!r}")
                conn.close()
        conn.close()

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    elapsed = time.perf_counter() - began
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    assert failures == [], f"{len(failures)} failures, first: {failures[:3]}"
    assert elapsed < 120, f"{clients * requests} requests took {elapsed:.1f} s"


def test_concurrent_clients_get_every_answer_right(server: Server, exports: dict[str, Any],
                                                   images: np.ndarray):
    hammer(server.url, f"/v1/models/{NAME}:predict", images,
           exports["v2"].predict(images, verbose=0))


def test_concurrent_signature_calls_are_safe(exports: dict[str, Any], images: np.ndarray):
    # 8 workers: every request calls the SavedModel's function at the same time
    with in_process(exports["root"] / "serving", workers=8) as url:
        hammer(url, "/v1/models/serving/versions/1:predict", images,
               exports["v1"].predict(images, verbose=0), requests=100)


def unreadable_record(root: Path) -> Path:
    fake_saved_model(root / "serving" / "1", None)
    (root / "serving" / "1" / "assets.extra").mkdir()
    (root / "serving" / "1" / "assets.extra" / "tfspec.json").write_text("{")
    return root / "serving"


BAD_PATHS = {
    "missing": (lambda root: root / "missing", "no such file or directory"),
    "unreadable name record": (unreadable_record, "cannot read the model's name"),
    "empty directory": (lambda root: root, "is not a SavedModel, a SavedModel base directory"),
    "no saved_model target": (lambda root: root / "exports.json", "lists no saved_model export"),
}


@pytest.mark.parametrize("case", list(BAD_PATHS))
def test_a_bad_path_is_one_line_and_exit_1(tmp_path: Path, case: str):
    (tmp_path / "exports.json").write_text(json.dumps(
        {"name": "x", "targets": [{"format": "tflite", "path": "/m.tflite"}]}))
    if case == "empty directory":
        (tmp_path / "exports.json").unlink()
    make_path, message = BAD_PATHS[case]
    result = subprocess.run([sys.executable, "-m", "tfspec", "serve", str(make_path(tmp_path))],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfspec: error: "), result.stderr
    assert message in lines[0]


def test_ctrl_c_stops_a_server_started_with_sigint_ignored(exports: dict[str, Any]):
    """`tfspec serve PATH &` in a script: the shell starts it with SIGINT ignored."""
    running = Server(exports["root"] / "named" / "serving", ignore_sigint=True)
    try:
        assert f"serving {SPEC_NAME} (the spec's name; version 1, default 1)" in running.banner
        status, _, _ = call(running.url, "GET", f"/v1/models/{SPEC_NAME}")
        assert status == 200
        start = time.monotonic()
        running.process.send_signal(signal.SIGINT)
        running.process.wait(timeout=20)
    finally:
        code, err = running.stop(signal.SIGKILL)  # only if SIGINT did not stop it
    assert time.monotonic() - start < 20
    assert code == 0, err
    assert "Traceback" not in err, err


def test_ctrl_c_stops_the_server_cleanly(server: Server):
    # the module's last test (pytest keeps file order): it stops the shared server
    code, err = server.stop(signal.SIGINT)
    assert code == 0
    assert "Traceback" not in err, err
