"""A small web page and JSON API for trying a run on photos: `ferkaggle serve`.

FastAPI on uvicorn (its h11 HTTP parser), uploads parsed with python-multipart, and one HTML
page shipped with the package (ferkaggle/photos/web/index.html). The model is loaded once.

    GET  /              the page: drop or pick a photo, or take a webcam snapshot
    GET  /health        {"status": "ok", "run": "<run_id>"}
    GET  /openapi.json  the API's OpenAPI schema; GET /docs shows it (Swagger UI, loaded from a CDN)
    POST /predict       multipart/form-data with the image in the field `file`
                        200 {"file": "<name>", "faces": [{"box": [x, y, w, h], "emotion": "happy",
                             "probabilities": {"angry": ..., ...}}], "width": W, "height": H,
                             "run": "<run_id>"} (and "message": "no face found" when there is none)

Every error is {"error": "<one line>"} with a 4xx (5xx only for a busy or slow server):
400 a body that is not multipart/form-data with a boundary, truncated or malformed multipart,
no field `file`, more than one file or more than MAX_PARTS parts, a file name that is not
UTF-8, an empty upload, a file that is not a readable image or a damaged one, a photo over
faces.MAX_PIXELS decoded pixels; 404 another path; 408 a body that has not arrived within
`upload_seconds`; 413 an upload over MAX_UPLOAD_BYTES (refused from its Content-Length,
unread); 503 with Retry-After when `workers` predictions run and `queue` wait already; 504
when a prediction has waited and run for more than `timeout` seconds. Malformed HTTP itself
(huge headers, a Content-Length that is not a number) gets uvicorn's 400.

Bounded work: the body is read on the event loop with a deadline, so a slow or stalled client
holds a socket, never a worker; predictions run in a pool of `workers` threads (1 by default:
one model, two cores), with the face detector and the model each called by one thread at a
time (OpenCV's cascade is not safe to share between threads; with 2 workers one photo is
decoded and searched while another's faces go through the model).
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable

from ferkaggle.core.errors import FerkaggleError
from ferkaggle.photos.faces import DEFAULT_MARGIN, Detector
from ferkaggle.photos.predict import predict_photo
from ferkaggle.photos.predictor import Predictor

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PARTS = 16              # form fields in one upload; the page sends one
MAX_HEADER_BYTES = 16 * 1024  # request line and headers together
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Limits:
    workers: int = 1              # predictions running at once
    queue: int = 8                # predictions waiting; one more gets 503
    timeout: float = 30.0         # seconds a prediction may wait and run before the request gets 504
    upload_seconds: float = 30.0  # seconds for the body to arrive before the request gets 408
    max_upload_bytes: int = MAX_UPLOAD_BYTES

    def check(self) -> None:
        if not 1 <= self.workers <= 8:
            raise FerkaggleError(f"--workers must be between 1 and 8, not {self.workers}")
        if self.queue < 0:
            raise FerkaggleError(f"--queue must be 0 or more, not {self.queue}")
        if not self.timeout > 0 or not self.upload_seconds > 0:
            raise FerkaggleError("--timeout and --upload-timeout must be more than 0 seconds")


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def page_html() -> bytes:
    return resources.files("ferkaggle.photos").joinpath("web/index.html").read_bytes()


def exposure_warning(host: str) -> str | None:
    """The warning `serve` prints when it listens beyond this machine; None on a loopback address."""
    if host in LOOPBACK:
        return None
    return (f"listening on {host}: the page and POST /predict have no authentication; anyone who can reach "
            "this address can use the model (the default --host 127.0.0.1 is this machine only)")


def multipart_file(content_type: str, body: bytes, field: str = "file") -> tuple[str, bytes]:
    """(filename, bytes) of the form field `field` in a multipart/form-data body; BadRequest otherwise."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, params = parse_options_header(content_type)
    if kind.lower() != b"multipart/form-data" or not params.get(b"boundary"):
        raise BadRequest("expected multipart/form-data with a boundary, and the image in the field 'file'")
    parts: list[dict[str, Any]] = []
    header: dict[str, bytes] = {}
    ended = []

    def begin():
        if len(parts) >= MAX_PARTS:
            raise BadRequest(f"more than {MAX_PARTS} form fields in one request; send one image in the field '{field}'")
        parts.append({"headers": {}, "data": bytearray()})

    def header_field(data, start, end):
        header["name"] = header.get("name", b"") + data[start:end]

    def header_value(data, start, end):
        header["value"] = header.get("value", b"") + data[start:end]

    def header_end():
        parts[-1]["headers"][header.pop("name", b"").lower()] = header.pop("value", b"")

    def part_data(data, start, end):
        parts[-1]["data"] += data[start:end]

    callbacks = {"on_part_begin": begin, "on_header_field": header_field, "on_header_value": header_value,
                 "on_header_end": header_end, "on_part_data": part_data, "on_end": lambda: ended.append(True)}
    try:
        parser = MultipartParser(params[b"boundary"], callbacks)
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequest(f"the multipart body is malformed ({exc})") from None
    if not ended:
        raise BadRequest("the multipart body is truncated: it stops before its closing boundary")
    files = []
    for part in parts:
        _, options = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if b"filename" in options:
            files.append(part)
        part["name"], part["filename"] = options.get(b"name"), options.get(b"filename")
    if len(files) > 1:
        raise BadRequest(f"{len(files)} files in one request; send one image in the field '{field}'")
    for part in parts:
        if part["name"] == field.encode():
            try:
                name = part["filename"].decode("utf-8") if part["filename"] else "upload"
            except UnicodeDecodeError:
                raise BadRequest("the file name is not valid UTF-8; rename the file") from None
            return name, bytes(part["data"])
    raise BadRequest(f"no form field {field!r}: send the image as multipart field '{field}'")


class Serialised:
    """`method` of `target` called by one thread at a time (the rest of `target` as it is)."""

    def __init__(self, target: Any, method: str):
        self._target, self._method, self._lock = target, method, threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name != self._method:
            return getattr(self._target, name)

        def call(*args, **kwargs):
            with self._lock:
                return getattr(self._target, name)(*args, **kwargs)
        return call


class Pool:
    """`workers` threads and room for `queue` waiting jobs; `submit` says None at once when all are taken."""

    def __init__(self, workers: int, queue: int):
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="predict")
        self.workers, self.capacity = workers, workers + queue
        self.taken = 0
        self.lock = threading.Lock()
        self.mean_seconds = 1.0  # a running mean of one job's time, for Retry-After

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future | None:
        with self.lock:
            if self.taken >= self.capacity:
                return None
            self.taken += 1

        def timed():
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * (time.perf_counter() - t0)

        future = self.executor.submit(timed)
        future.add_done_callback(self._release)  # when it ends, or is cancelled while waiting
        return future

    def _release(self, _future: Future) -> None:
        with self.lock:
            self.taken -= 1

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the jobs ahead, shared by the workers."""
        return max(1, math.ceil(self.mean_seconds * self.capacity / self.workers))


class App:
    """The model, the detector and the bounded pool; `predict_bytes` is what one prediction does."""

    def __init__(self, predictor: Predictor, detector: Detector, margin: float = DEFAULT_MARGIN,
                 limits: Limits = Limits()):
        limits.check()
        self.predictor = predictor
        self.detector = detector
        self.margin = margin
        self.limits = limits
        self.pool = Pool(limits.workers, limits.queue)
        self._predictor = Serialised(predictor, "predict")
        self._detector = Serialised(detector, "detect")

    def predict_bytes(self, name: str, data: bytes) -> dict[str, Any]:
        try:
            result = predict_photo(data, self._predictor, self._detector, name=name, margin=self.margin)
        except FerkaggleError as exc:
            raise BadRequest(str(exc)) from None
        out = result.to_json()
        out["run"] = self.predictor.run.run_id
        return out

    async def predict_async(self, name: str, data: bytes) -> dict[str, Any]:
        """`predict_bytes` in the pool: 503 when it is full, 504 past the deadline (a job still waiting is dropped)."""
        future = self.pool.submit(self.predict_bytes, name, data)
        if future is None:
            raise BadRequest(f"busy: {self.pool.capacity} photos are being predicted or waiting; try again shortly",
                             503, {"Retry-After": str(self.pool.retry_after())})
        try:  # on timeout wait_for cancels the wrapper, which cancels the job if it is still waiting
            return await asyncio.wait_for(asyncio.wrap_future(future), self.limits.timeout)
        except TimeoutError:
            raise BadRequest(f"no prediction within {self.limits.timeout:g} s (waiting and running); "
                             "the server is overloaded, try again later", 504) from None


async def read_body(request, limits: Limits) -> bytes:
    """The request body, read within `upload_seconds` and at most `max_upload_bytes`; 408 / 413 otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_upload_bytes:
        raise BadRequest(f"the upload is {int(declared):,} bytes; at most {limits.max_upload_bytes:,}", 413,
                         {"Connection": "close"})
    from starlette.requests import ClientDisconnect

    chunks, size = [], 0
    try:
        async with asyncio.timeout(limits.upload_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_upload_bytes:
                    raise BadRequest(f"the upload is over {limits.max_upload_bytes:,} bytes", 413, {"Connection": "close"})
                chunks.append(chunk)
    except TimeoutError:
        raise BadRequest(f"the upload did not arrive within {limits.upload_seconds:g} s "
                         f"({size:,} of {declared or 'unknown'} bytes came)", 408, {"Connection": "close"}) from None
    except ClientDisconnect:  # gone mid-upload: nobody reads this answer, but it ends the request quietly
        raise BadRequest("the client closed the connection mid-upload") from None
    return b"".join(chunks)


PREDICT_RESPONSES = {
    status: {"description": text, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}
    for status, text in [(400, "not multipart, malformed or truncated multipart, no field `file`, several files, "
                               "an empty, damaged or non-image upload, or a photo over the pixel limit"),
                         (408, "the body did not arrive in time"), (413, "the upload is over the size limit"),
                         (503, "busy: the queue is full (see Retry-After)"), (504, "no prediction within the deadline")]}
PREDICT_REQUEST = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "a photo: jpg, png, webp, bmp"}}}}}}


def make_api(app: App):
    """The FastAPI application serving `app`."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel
    from starlette.exceptions import HTTPException

    class FaceOut(BaseModel):
        box: tuple[int, int, int, int]
        emotion: str
        probabilities: dict[str, float]

    class PredictOut(BaseModel):
        file: str
        faces: list[FaceOut]
        width: int
        height: int
        run: str
        message: str | None = None

    class HealthOut(BaseModel):
        status: str
        run: str

    api = FastAPI(title="ferkaggle serve", version="1",
                  description="Emotions of the faces in a photo, predicted by one trained run.")

    @api.exception_handler(BadRequest)
    async def bad_request(_request, exc: BadRequest):
        return JSONResponse({"error": str(exc)}, exc.status, headers={"Cache-Control": "no-store", **exc.headers})

    @api.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        message = f"no page {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse({"error": message}, exc.status_code, headers=exc.headers)

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    @api.get("/index.html", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(page_html(), headers={"Cache-Control": "no-store"})

    @api.get("/health", response_model=HealthOut)
    async def health():
        return {"status": "ok", "run": app.predictor.run.run_id}

    async def predict(request):
        body = await read_body(request, app.limits)
        name, data = multipart_file(request.headers.get("content-type", ""), body)
        if not data:
            raise BadRequest(f"{name}: the upload is empty; expected an image (jpg, png, webp, bmp)")
        return JSONResponse(await app.predict_async(name, data), headers={"Cache-Control": "no-store"})

    predict.__annotations__["request"] = Request  # the class itself: FastAPI cannot resolve a local name
    api.post("/predict", response_model=PredictOut, responses=PREDICT_RESPONSES,
             openapi_extra={"requestBody": PREDICT_REQUEST},
             summary="Find the faces in a photo and predict each one's emotion")(predict)

    return api


class Server:
    """uvicorn serving `make_api(app)` on a socket bound here; `serve_forever` blocks, `shutdown` stops it."""

    def __init__(self, app: App, sock: socket.socket, quiet: bool):
        import uvicorn

        self.socket = sock
        self.server_address = sock.getsockname()[:2]
        config = uvicorn.Config(make_api(app), http="h11", log_level="warning" if quiet else "info",
                                access_log=not quiet, timeout_keep_alive=5,
                                h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                                limit_concurrency=64 + app.pool.capacity)
        self.uvicorn = uvicorn.Server(config)
        self.stopped = threading.Event()

    def serve_forever(self) -> None:
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self.stopped.set()

    def shutdown(self) -> None:
        self.uvicorn.should_exit = True
        self.stopped.wait(30)

    def server_close(self) -> None:
        self.socket.close()


def make_server(app: App, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> Server:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise FerkaggleError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); try another --port") from None
    return Server(app, sock, quiet)

