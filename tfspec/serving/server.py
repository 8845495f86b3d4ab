"""`tfspec serve`: TensorFlow Serving's REST API over HTTP, for one SavedModel export.

A client written for TF Serving works unchanged against it: the same URLs
(`/v1/models/NAME[/versions/N][:predict|/metadata]`), the same JSON (tfspec.serving.restjson)
and HTTP status codes (the few differences are in docs/serve.md). It serves one
model (every version found, tfspec.serving.servables) from the standard library's threading
HTTP server, calling the SavedModel's signature functions directly; for production,
the same export directory goes to `tensorflow_model_server` unchanged (docs/serve.md).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

from ..version import __version__
from .restjson import (
    ApiError,
    dumps,
    error_body,
    parse_request,
    request_tensors,
    response_json,
    run_signature,
    signature_for,
)
from .servables import (
    NAME_SOURCES,
    PREDICT_METHOD,
    Model,
    Servable,
    ServeError,
    find_export,
    load_model,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501  # TF Serving's REST port
DEFAULT_MAX_BODY = 32 * 1024 * 1024

# TF Serving's own URL patterns (http_rest_api_util.cc), case-insensitive like them
_PREDICT_URL = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)",
    re.IGNORECASE)
_MODEL_URL = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?",
    re.IGNORECASE)
_MAX_VERSION = 2**63 - 1


# ---------------------------------------------------------------------------
# The REST API, without HTTP: method + URL + body -> status + JSON


Response = tuple[int, bytes, list[tuple[str, str]]]


class RestApi:
    """TF Serving's REST handler (http_rest_api_handler.cc) for one model.

    `workers` predict requests run at once, the others wait their turn (status and
    metadata never wait). More at once only contend: JSON is parsed and written
    holding the GIL, and TensorFlow spreads each call over every core already. On 2
    CPUs, one at a time answered 8 concurrent clients ~1.7x faster than no limit
    (batches of 32, benchmarks/serve_load.py's model).
    """

    def __init__(self, model: Model, workers: int | None = None) -> None:
        self.model = model
        self.workers = workers or default_workers()
        self._turns = threading.BoundedSemaphore(self.workers)

    def handle(self, method: str, target: str, body: bytes) -> Response:
        try:
            return 200, self._route(method, urlsplit(target).path, body), []
        except ApiError as exc:
            headers = [("Allow", exc.allow)] if exc.allow else []
            return exc.status, error_body(exc.message), headers

    def _route(self, method: str, path: str, body: bytes) -> bytes:
        predict = _PREDICT_URL.fullmatch(path)
        model_url = _MODEL_URL.fullmatch(path)
        if method == "POST" and predict:
            name, version, label, verb = predict.groups()
            number = _version(version)
            with self._turns:
                request = parse_request(body)  # first, as TF Serving: bad JSON wins over 404
                _no_label(label)
                servable = self._servable(unquote(name), number)
                # JSON booleans hide in numeric lists ([true, 2] reads as [1, 2]): look
                # for them only when the body has any
                bools = b"true" in body or b"false" in body
                return self._predict(servable, verb.lower(), request, bools)
        if method in ("GET", "HEAD") and model_url:
            name, version, label, metadata = model_url.groups()
            if not name:
                raise ApiError(400, "Missing model name in request.")
            _no_label(label)
            name, number = unquote(name), _version(version)
            if metadata:
                return self._metadata(self._servable(name, number))
            return self._status(name, number)
        if predict or model_url:
            allow = "POST" if predict else "GET"
            raise ApiError(405, f"Malformed request: {method} {path} "
                                f"(this URL takes {allow} only)", allow)
        # TF Serving: 400 for a /v1/ URL it cannot parse, 404 for any other path
        status = 400 if path.lower().startswith("/v1/") else 404
        raise ApiError(status, f"Malformed request: {method} {path}")

    def _servable(self, name: str, version: int | None) -> Servable:
        if name == self.model.name:
            if version is None:
                return self.model.latest
            if version in self.model.versions:
                return self.model.versions[version]
        wanted = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        raise ApiError(404, f"Servable not found for request: {wanted}")

    def _status(self, name: str, version: int | None) -> bytes:
        known = name == self.model.name
        if version is None:
            if not known:
                raise ApiError(404, f"Could not find any versions of model {name}")
            versions = sorted(self.model.versions, reverse=True)  # newest first, as TF Serving
        elif known and version in self.model.versions:
            versions = [version]
        else:
            raise ApiError(404, f"Could not find version {version} of model {name}")
        return dumps({"model_version_status": [
            {"version": str(v), "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}}
            for v in versions
        ]}, indent=1)

    def _metadata(self, servable: Servable) -> bytes:
        # `metadata` is a map (GetModelMetadataResponse): beside TF Serving's one entry,
        # `tfspec` says which name is served and where it came from
        return dumps({
            "model_spec": {"name": self.model.name, "signature_name": "",
                           "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": servable.signature_defs},
                         "tfspec": {"name": self.model.name,
                                    "name_from": self.model.name_from}},
        }, indent=1)

    def _predict(self, servable: Servable, verb: str, request: dict[str, Any],
                 bools: bool = True) -> bytes:
        signature = signature_for(request, servable.signatures)
        if verb != "predict":
            # Keras exports hold predict signatures only, which TF Serving refuses here
            if signature.method_name == PREDICT_METHOD:
                kind = "classification" if verb == "classify" else "regression"
                raise ApiError(400, f"Expected {kind} signature method_name to be "
                                    f"tensorflow/serving/{verb}. Was: {signature.method_name}")
            raise ApiError(501, f"tfspec serve does not implement :{verb}; "
                                "use tensorflow_model_server for it")
        arrays, row = request_tensors(request, signature, bools)
        outputs = run_signature(signature, arrays)
        return dumps(response_json(outputs, row))


def default_workers() -> int:
    """Predict requests at once: one per two CPUs, at least one."""
    return max(1, (os.cpu_count() or 1) // 2)


def _no_label(label: str | None) -> None:
    if label is not None:  # no labels are configured, as in TF Serving by default
        raise ApiError(400, f"Unrecognized servable version label: {unquote(label)}")


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    version = int(text)
    if version > _MAX_VERSION:
        raise ApiError(400, f"Failed to convert version: {text} to numeric.")
    return version


# ---------------------------------------------------------------------------
# HTTP


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every answer is JSON, errors included."""

    protocol_version = "HTTP/1.1"
    server_version = f"tfspec-serve/{__version__}"
    disable_nagle_algorithm = True  # small JSON answers must not wait for delayed ACKs
    timeout = 120  # an idle or stalled connection frees its thread
    unread_body = False
    server: ModelServer

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _answer(self) -> None:
        try:
            body = self._read_body()
            status, payload, headers = self.server.api.handle(self.command, self.path, body)
        except ApiError as exc:
            status, payload, headers = exc.status, error_body(exc.message), []
        except Exception as exc:  # a bug in tfspec: an answer, and one line on stderr
            print(f"tfspec serve: internal error on {self.command} {self.path}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
            status, payload, headers = 500, error_body(f"Internal: {exc}"), []
        self._send(status, payload, headers)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self._content_length()
        return self.rfile.read(length) if length else b""

    def _content_length(self) -> int:
        text = self.headers.get("Content-Length")
        if text is None:
            return 0
        try:
            length = int(text)
            if length < 0:
                raise ValueError(text)
        except ValueError:
            self.close_connection = self.unread_body = True
            raise ApiError(400, f"Invalid Content-Length: {text}") from None
        self._check_size(length)
        return length

    def _check_size(self, length: int) -> None:
        limit = self.server.max_body_bytes
        if length > limit:
            # the body stays unread: answer, then end the connection (see _send)
            self.close_connection = self.unread_body = True
            raise ApiError(413, f"Request body of {length} bytes exceeds the limit of "
                                f"{limit} bytes")

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = self.unread_body = True
                raise ApiError(400, "Malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            self._check_size(total)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def handle_expect_100(self) -> bool:
        # refuse an oversized body before the client sends it (curl asks for big bodies)
        try:
            self._content_length()
        except ApiError as exc:
            self._send(exc.status, error_body(exc.message), [])
            return False
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        # malformed request lines and unknown methods: JSON too, not the default HTML
        self.close_connection = True
        self._send(code, error_body(message or self.responses.get(code, ("Error",))[0]), [])

    def _send(self, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers:
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if self.unread_body:
            self._discard_input()

    def _discard_input(self) -> None:
        """Closing a socket with unread input resets the connection, and the client may
        lose the answer with it: half-close, and drop what it still sends (for 2 s)."""
        self.unread_body = False
        deadline = time.monotonic() + 2
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            while time.monotonic() < deadline and self.connection.recv(1 << 16):
                pass
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            super().log_message(format, *args)


class ModelServer(ThreadingHTTPServer):
    """A thread per connection, over one loaded model."""

    daemon_threads = True  # Ctrl-C does not wait for idle keep-alive connections
    request_queue_size = 128  # eight clients connecting at once must not overflow

    def __init__(self, address: tuple[str, int], api: RestApi,
                 max_body_bytes: int = DEFAULT_MAX_BODY, log_requests: bool = False) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.api = api
        self.max_body_bytes = max_body_bytes
        self.log_requests = log_requests
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up in DNS (getfqdn): slow offline
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that vanished mid-answer is not worth a traceback
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            print(f"tfspec serve: error while answering {client_address[0]}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


def make_server(path: str | os.PathLike[str], host: str = DEFAULT_HOST,
                port: int = DEFAULT_PORT, name: str | None = None,
                max_body_bytes: int = DEFAULT_MAX_BODY, workers: int | None = None,
                log_requests: bool = False) -> ModelServer:
    """Load the export at `path` and bind (port 0: a free one); call `serve_forever()`
    on the result (in a thread, for tests) and `shutdown()` + `server_close()` after.
    `workers`: predict requests run at once (default: one per two CPUs)."""
    model = load_model(find_export(path, name))
    try:
        return ModelServer((host, port), RestApi(model, workers), max_body_bytes,
                           log_requests)
    except (OSError, OverflowError) as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc}") from None


def serve(path: str | os.PathLike[str], host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          name: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
          workers: int | None = None, log_requests: bool = False,
          out: TextIO | None = None) -> None:
    """Serve the export at `path` until Ctrl-C (or SIGTERM); raises ServeError when
    PATH, the name or the address cannot be served (and KeyboardInterrupt when stopped
    while loading)."""
    previous = _stop_on_signals()  # before loading, which takes seconds
    try:
        server = make_server(path, host, port, name, max_body_bytes, workers, log_requests)
        try:
            print(start_line(server), file=out or sys.stdout, flush=True)
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: a handler not installed from Python
                signal.signal(signum, handler)


def start_line(server: ModelServer) -> str:
    """What `tfspec serve` prints when it is ready: the name and where it came from, the
    versions, the export and the URL."""
    model = server.api.model
    versions = ", ".join(str(v) for v in model.versions)
    return (f"serving {model.name} ({NAME_SOURCES[model.name_from]}; "
            f"version{'s' * (len(model.versions) > 1)} {versions}, default "
            f"{model.latest.version}) from {model.base} at {server.url}/v1/models/"
            f"{model.name} - Ctrl-C to stop")


def _stop_on_signals() -> dict[int, Any]:
    """Ctrl-C (SIGINT) and SIGTERM (docker stop, kill) end the server; returns the
    previous handlers. SIGINT's is installed explicitly: a process started with SIGINT
    ignored (`tfspec serve … &` in a script: a non-interactive shell's background job)
    keeps ignoring it, and Python then never raises KeyboardInterrupt."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, interrupt)
        except ValueError:  # not the main thread: leave signals alone
            break
    return previous


__all__ = ["DEFAULT_HOST", "DEFAULT_MAX_BODY", "DEFAULT_PORT", "ModelServer", "RestApi",
           "default_workers", "make_server", "serve", "start_line"]
