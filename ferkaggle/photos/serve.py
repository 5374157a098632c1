"""A small local web page for trying a run on photos: `ferkaggle serve`.

Standard library only (http.server, threaded) and one HTML page shipped with the package
(ferkaggle/photos/web/index.html). The model is loaded once and held in memory.

    GET  /            the page: drop or pick a photo, or take a webcam snapshot
    GET  /health      {"status": "ok", "run": "<run_id>"}
    POST /predict     multipart/form-data with the image in the field `file`
                      200 {"faces": [{"box": [x, y, w, h], "emotion": "happy",
                                      "probabilities": {"angry": ..., ...}}],
                           "width": W, "height": H, "run": "<run_id>"}
                      400 {"error": "<one line>"} for a missing field, an empty or non-image
                      upload, a body that is not multipart; 413 for uploads over the limit

Every request is handled on its own; a bad one never stops the server. Predictions are
serialised by a lock (one model, two cores: parallel calls would only slow each other).
"""

from __future__ import annotations

import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from ferkaggle.core.errors import FerkaggleError
from ferkaggle.photos.faces import DEFAULT_MARGIN, Detector
from ferkaggle.photos.predict import predict_photo
from ferkaggle.photos.predictor import Predictor

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


class BadRequest(Exception):
    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def page_html() -> bytes:
    return resources.files("ferkaggle.photos").joinpath("web/index.html").read_bytes()


def multipart_file(content_type: str, body: bytes, field: str = "file") -> tuple[str, bytes]:
    """(filename, bytes) of the form field `field` in a multipart/form-data body; BadRequest otherwise."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type.lower():
        raise BadRequest("expected multipart/form-data with the image in the field 'file'")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise BadRequest("the multipart body could not be parsed")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == field:
            data = part.get_payload(decode=True) or b""
            return part.get_filename() or "upload", data
    raise BadRequest(f"no form field {field!r}: send the image as multipart field '{field}'")


class App:
    """The model, the detector and a lock; `predict_bytes` is what POST /predict does."""

    def __init__(self, predictor: Predictor, detector: Detector, margin: float = DEFAULT_MARGIN):
        self.predictor = predictor
        self.detector = detector
        self.margin = margin
        self.lock = threading.Lock()

    def predict_bytes(self, name: str, data: bytes) -> dict[str, Any]:
        if not data:
            raise BadRequest(f"{name}: the upload is empty; expected an image (jpg, png, webp, bmp)")
        with self.lock:
            try:
                result = predict_photo(data, self.predictor, self.detector, name=name, margin=self.margin)
            except FerkaggleError as exc:
                raise BadRequest(str(exc)) from None
        out = result.to_json()
        out["run"] = self.predictor.run.run_id
        return out


class Handler(BaseHTTPRequestHandler):
    """The HTTP side of an `App`: the page, /health and POST /predict (`make_handler` binds the App)."""

    app: App
    quiet = False
    server_version = "ferkaggle"
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a client may stall mid-request before its thread gives up

    def log_message(self, fmt, *args):  # noqa: D401 - http.server API
        if not self.quiet:
            super().log_message(fmt, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self):  # noqa: N802 - http.server API
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, page_html(), "text/html; charset=utf-8")
        elif path == "/health":
            self._json(200, {"status": "ok", "run": self.app.predictor.run.run_id})
        else:
            self._json(404, {"error": f"no page {path}"})

    def do_POST(self):  # noqa: N802
        try:
            body = self._upload_body()
            name, data = multipart_file(self.headers.get("Content-Type", ""), body)
            self._json(200, self.app.predict_bytes(name, data))
        except BadRequest as exc:
            self._json(exc.status, {"error": str(exc)})
        except Exception as exc:  # a bug must not take the server down; say what happened
            self.close_connection = True
            self._json(500, {"error": f"internal error: {type(exc).__name__}: {exc}"})

    def _upload_body(self) -> bytes:
        """The body of a POST to /predict, read only once the path, Content-Length and size limit are
        right; BadRequest otherwise (and the connection is closed: the unread body makes it unusable)."""
        path = self.path.split("?", 1)[0]
        try:
            length = int(self.headers.get("Content-Length") or -1)
        except ValueError:
            length = -1
        if path != "/predict":
            self.close_connection = True
            raise BadRequest(f"no endpoint {path}; POST images to /predict", HTTPStatus.NOT_FOUND)
        if length < 0:
            self.close_connection = True
            raise BadRequest("a Content-Length header is required", HTTPStatus.LENGTH_REQUIRED)
        if length > MAX_UPLOAD_BYTES:
            self.close_connection = True
            raise BadRequest(f"the upload is {length:,} bytes; at most {MAX_UPLOAD_BYTES:,}",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return self.rfile.read(length)


def make_handler(app: App, quiet: bool = False) -> type[Handler]:
    """A `Handler` class serving `app` (http.server makes one handler per request from it)."""
    return type("AppHandler", (Handler,), {"app": app, "quiet": quiet})


def make_server(app: App, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> ThreadingHTTPServer:
    try:
        server = ThreadingHTTPServer((host, port), make_handler(app, quiet))
    except OSError as exc:
        raise FerkaggleError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); try another --port") from None
    server.daemon_threads = True
    return server
