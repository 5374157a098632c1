"""The local web page: the JSON API over real HTTP, and the page in a real headless Chromium.

The browser test needs Debian's chromium and chromium-driver (`.ci/run` installs them) and
the selenium package; without them it is skipped locally, and fails under CI=true.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest

from ferkaggle.core.constants import EMOTIONS
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.photos.faces import HaarDetector
from ferkaggle.photos.predict import predict_photo
from ferkaggle.photos.predictor import Predictor
from ferkaggle.photos.serve import App, Limits, exposure_warning, make_server
from helpers.photos import ASTRONAUT_FACE, iou, train_tiny_run, write_photos

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
UPLOAD_SECONDS = 4  # the test server waits this long for a body


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    run = train_tiny_run(root)
    app = App(Predictor.from_run(run), HaarDetector(), limits=Limits(upload_seconds=UPLOAD_SECONDS))
    with running(app) as url:
        yield {"url": url, "app": app, "photos": write_photos(root / "photos"), "run": run}


@contextlib.contextmanager
def running(app):
    """The app served on a free port of 127.0.0.1 in a thread, for the `with` block; its URL."""
    httpd = make_server(app, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    url = f"http://{host}:{port}"
    for _ in range(100):  # until uvicorn answers
        try:
            urllib.request.urlopen(url + "/health", timeout=5).close()
            break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    try:
        yield url
    finally:
        httpd.shutdown()
        httpd.server_close()


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_predict_endpoint_returns_the_faces(server):
    photos = server["photos"]
    status, reply = post(server["url"] + "/predict", *multipart("file", "astronaut.jpg", photos["astronaut"].read_bytes()))
    assert status == 200, reply
    (face,) = reply["faces"]
    assert iou(face["box"], ASTRONAUT_FACE) > 0.7
    assert list(face["probabilities"]) == list(EMOTIONS)
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-4
    # the same numbers as predicting the file directly
    direct = predict_photo(photos["astronaut"], server["app"].predictor, HaarDetector())
    np.testing.assert_allclose(list(face["probabilities"].values()), direct.faces[0].probabilities, atol=1e-5)
    assert face["emotion"] == direct.faces[0].emotion and reply["run"] == server["run"].run_id

    status, reply = post(server["url"] + "/predict", *multipart("file", "chelsea.png", photos["chelsea"].read_bytes()))
    assert status == 200 and reply["faces"] == [] and reply["message"] == "no face found"


def test_bad_uploads_get_400_and_the_server_stays_up(server):
    url = server["url"] + "/predict"
    cases = [
        (multipart("file", "broken.jpg", server["photos"]["broken"].read_bytes()), "broken.jpg: unreadable or damaged image"),
        (multipart("file", "notes.txt", b"just some text"), "notes.txt: not an image"),
        (multipart("file", "empty.png", b""), "empty.png: the upload is empty"),
        (multipart("photo", "astronaut.jpg", server["photos"]["astronaut"].read_bytes()), "no form field 'file'"),
        ((b"{}", "application/json"), "expected multipart/form-data"),
    ]
    for (body, content_type), message in cases:
        status, reply = post(url, body, content_type)
        assert status == 400, (message, reply)
        assert message in reply["error"]
    status, reply = post(server["url"] + "/elsewhere", b"", "text/plain")
    assert status == 404
    with urllib.request.urlopen(server["url"] + "/health", timeout=10) as response:
        assert json.loads(response.read())["status"] == "ok"
    status, reply = post(url, *multipart("file", "a.jpg", server["photos"]["astronaut"].read_bytes()))
    assert status == 200 and len(reply["faces"]) == 1


def test_an_oversized_upload_is_refused_without_reading_it(server):
    import socket

    host, port = server["url"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 999999999\r\n\r\n")  # announces ~1 GB, sends nothing
        reply = sock.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 413") and b"at most 20,971,520" in reply
    with urllib.request.urlopen(server["url"] + "/health", timeout=10) as response:
        assert response.status == 200


def test_a_busy_port_is_one_clear_line(server):
    port = int(server["url"].rsplit(":", 1)[1])
    with pytest.raises(FerkaggleError, match=f"cannot listen on 127.0.0.1:{port} .*try another --port"):
        make_server(server["app"], "127.0.0.1", port)


def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    if missing:
        message = "the browser test needs " + ", ".join(missing) + " (apt-get install chromium chromium-driver; pip install selenium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def browser():
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
                 # Chromium's built-in test camera (a moving pattern, no face), allowed without a prompt
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_page_in_a_real_browser_shows_the_face_and_its_emotion(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server["url"] + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(ec.text_to_be_present_in_element((By.ID, "run"), server["run"].run_id))
    upload = tmp_path / "astronaut.jpg"
    shutil.copy(server["photos"]["astronaut"], upload)
    browser.find_element(By.ID, "file").send_keys(str(upload))
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "1 face found"))
    cards = browser.find_elements(By.CSS_SELECTOR, "#faces .face")
    assert len(cards) == 1
    expected = predict_photo(upload, server["app"].predictor, HaarDetector()).faces[0]
    assert cards[0].find_element(By.CSS_SELECTOR, ".emotion").text == expected.emotion
    bars = cards[0].find_elements(By.CSS_SELECTOR, ".bar")
    assert [b.find_element(By.CSS_SELECTOR, ".name").text for b in bars] == list(EMOTIONS)
    shown = [float(b.find_element(By.CSS_SELECTOR, ".value").text.rstrip("%")) for b in bars]
    np.testing.assert_allclose(shown, 100 * expected.probabilities, atol=0.051)
    # the canvas shows the photo at its size, with the box drawn in yellow on the face's left edge
    width, height, edge = browser.execute_script(
        "const c = document.getElementById('canvas'); const [x, y, w, h] = arguments[0];"
        "const d = c.getContext('2d').getImageData(x, y + 10, 1, h - 20).data;"
        "let yellow = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] > 170 && d[i + 2] < 100) yellow++;"
        "return [c.width, c.height, yellow / (d.length / 4)];", list(expected.box))
    assert (width, height) == (512, 512) and edge > 0.9

    # a bad upload shows the server's message, and the page still works afterwards
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "notes.png: not an image"))
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")
    browser.find_element(By.ID, "file").send_keys(str(server["photos"]["chelsea"]))
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "No face found in chelsea.png"))
    assert browser.find_elements(By.CSS_SELECTOR, "#faces .face") == []


def test_webcam_snapshot_is_sent_and_answered(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server["url"] + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(ec.element_to_be_clickable((By.ID, "camera"))).click()
    wait.until(lambda d: d.execute_script("return document.getElementById('video').videoWidth") > 0)
    wait.until(ec.element_to_be_clickable((By.ID, "snap"))).click()
    # the fake camera shows a test pattern: the snapshot reaches the server, which finds no face in it
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "No face found in webcam.jpg"))
    width = browser.execute_script("return document.getElementById('canvas').width")
    assert width == browser.execute_script("return document.getElementById('video').videoWidth")


def raw_exchange(url: str, request: bytes, stall_after: bool = False) -> tuple[int, bytes, dict[str, str]]:
    """Send `request` bytes as they are on a new socket and read one response: (status, body, headers)."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(body) < int(headers.get("content-length", 0)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), body, headers


def http_post(content_type: str, body: bytes, length: int | None = None, extra: bytes = b"") -> bytes:
    return (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + content_type.encode("latin-1")
            + b"\r\nContent-Length: " + str(len(body) if length is None else length).encode() + b"\r\n" + extra
            + b"\r\n" + body)


def file_part(boundary: str, filename: bytes, data: bytes, field: str = "file") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"".encode() + filename
            + b"\"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")


def bomb_png(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (400 Mpx for 20,000) that is only some 50 KB on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + side // 8)
    packed = zlib.compressobj(9)
    idat = b"".join(packed.compress(row) for _ in range(side)) + packed.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_hostile_uploads_each_get_a_4xx_line_and_a_good_photo_still_works(server):
    import zlib

    jpeg = server["photos"]["astronaut"].read_bytes()
    bomb = bomb_png()
    # the bomb is what it says: a PNG whose header says 20,000 x 20,000 and whose pixels are all there
    assert bomb[12:24] == b"IHDR" + (20_000).to_bytes(4, "big") * 2 and len(bomb) < 200_000
    assert len(zlib.decompress(bomb[41:-16])) == 20_000 * 2_501
    b = "b0undary"
    ct = f"multipart/form-data; boundary={b}"
    end = f"--{b}--\r\n".encode()
    good = file_part(b, b"astronaut.jpg", jpeg) + end
    cases = {  # name: (raw request, status, words in the error)
        "truncated multipart": (http_post(ct, good[:len(good) // 2]), 400, "truncated"),
        "no boundary": (http_post("multipart/form-data", good), 400, "with a boundary"),
        "missing field": (http_post(ct, file_part(b, b"a.jpg", jpeg, field="photo") + end), 400, "no form field 'file'"),
        "zero bytes": (http_post(ct, file_part(b, b"empty.jpg", b"") + end), 400, "empty.jpg: the upload is empty"),
        "text renamed .jpg": (http_post(ct, file_part(b, b"notes.jpg", b"dear diary\n" * 20) + end), 400,
                              "notes.jpg: not an image"),
        "truncated JPEG": (http_post(ct, file_part(b, b"half.jpg", jpeg[:len(jpeg) // 2]) + end), 400,
                           "half.jpg: unreadable or damaged image"),
        "decompression bomb": (http_post(ct, file_part(b, b"bomb.png", bomb) + end), 400,
                               "bomb.png: too large to decode (over 80 Mpx)"),
        "non-UTF-8 file name": (http_post(ct, file_part(b, b"\xff\xfe\xfa.jpg", jpeg) + end), 400, "not valid UTF-8"),
        "five files": (http_post(ct, b"".join(file_part(b, f"{i}.jpg".encode(), jpeg) for i in range(5)) + end), 400,
                       "5 files in one request"),
        "a thousand fields": (http_post(ct, b"".join(file_part(b, b"x.jpg", b"x", field=f"f{i}") for i in range(1000)) + end),
                              400, "more than 16 form fields"),
        "Content-Length too small": (http_post(ct, good, length=len(good) - 100), 400, "truncated"),
        "Content-Length too large": (http_post(ct, good, length=len(good) + 1000), 408,
                                     f"did not arrive within {UPLOAD_SECONDS} s"),
        "Content-Length not a number": (http_post(ct, good, length=None).replace(
            f"Content-Length: {len(good)}".encode(), b"Content-Length: lots"), 400, ""),
        "huge headers": (http_post(ct, good, extra=b"X-Filler: " + b"a" * 200_000 + b"\r\n"), 400, ""),
        "not multipart": (http_post("application/json", b'{"file": "astronaut.jpg"}'), 400, "expected multipart/form-data"),
    }
    for name, (request, status, words) in cases.items():
        t0 = time.perf_counter()
        got, body, _ = raw_exchange(server["url"], request)
        assert got == status, (name, got, body[:300])
        if words:  # our own answers: one JSON line; uvicorn's own (malformed HTTP) are plain text
            error = json.loads(body)["error"]
            assert words in error and "\n" not in error, (name, error)
        assert time.perf_counter() - t0 < UPLOAD_SECONDS + 20, name
    status, body, _ = raw_exchange(server["url"], http_post(ct, good))
    assert status == 200 and len(json.loads(body)["faces"]) == 1


def test_a_client_stalled_mid_upload_does_not_hold_up_others(server):
    import socket

    b = "stall"
    body = file_part(b, b"astronaut.jpg", server["photos"]["astronaut"].read_bytes()) + f"--{b}--\r\n".encode()
    host, port = server["url"].removeprefix("http://").split(":")
    stalled = []
    for _ in range(3):  # more stalled uploads than workers
        sock = socket.create_connection((host, int(port)), timeout=60)
        sock.sendall(http_post(f"multipart/form-data; boundary={b}", body)[:len(body) // 2])
        stalled.append(sock)
    t0 = time.perf_counter()
    status, reply = post(server["url"] + "/predict", *multipart("file", "a.jpg", server["photos"]["astronaut"].read_bytes()))
    assert status == 200 and len(reply["faces"]) == 1
    assert time.perf_counter() - t0 < UPLOAD_SECONDS, "a stalled upload held up a normal one"
    for sock in stalled:  # and each stalled one is answered 408 once its time is up, not held forever
        reply = sock.makefile("rb").read()
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        sock.close()
    assert time.perf_counter() - t0 < UPLOAD_SECONDS + 10


@pytest.fixture
def gated():
    """A server whose model waits for a gate: one worker, room for one waiting photo, a 2 s deadline."""
    from helpers.fakes import GatedPredictor, OneBoxDetector

    predictor = GatedPredictor()
    app = App(predictor, OneBoxDetector(), limits=Limits(workers=1, queue=1, timeout=2.0))
    buffer = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buffer, format="PNG")
    with running(app) as url:
        yield {"url": url, "app": app, "predictor": predictor, "body": multipart("file", "grey.png", buffer.getvalue())}
        predictor.gate.set()


def _wait_until(condition, seconds: float = 20.0) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        assert time.perf_counter() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_a_full_queue_is_answered_503_with_retry_after_at_once(gated):
    url, app = gated["url"] + "/predict", gated["app"]
    answers = []
    first_two = [threading.Thread(target=lambda: answers.append(post(url, *gated["body"]))) for _ in range(2)]
    for thread in first_two:
        thread.start()
    _wait_until(lambda: gated["predictor"].calls == 1 and app.pool.taken == 2)  # one running, one waiting
    body, content_type = gated["body"]
    t0 = time.perf_counter()
    status, reply, headers = raw_exchange(gated["url"], http_post(content_type, body))
    assert status == 503 and time.perf_counter() - t0 < 1.0
    assert int(headers["retry-after"]) >= 1 and "busy" in json.loads(reply)["error"]
    gated["predictor"].gate.set()
    for thread in first_two:
        thread.join()
    assert sorted(status for status, _ in answers) == [200, 200]


def test_past_the_deadline_a_request_gets_504_and_a_waiting_photo_is_dropped(gated):
    url, app = gated["url"] + "/predict", gated["app"]
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(post(url, *gated["body"]))) for _ in range(2)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in answers] == [504, 504] and 2.0 <= time.perf_counter() - t0 < 10
    assert "no prediction within 2 s" in answers[0][1]["error"]
    assert app.pool.taken == 1  # the running one still holds its worker; the waiting one was dropped
    gated["predictor"].gate.set()
    _wait_until(lambda: app.pool.taken == 0)
    assert gated["predictor"].calls == 1  # the dropped photo never reached the model
    status, reply = post(url, *gated["body"])
    assert status == 200 and reply["run"] == "gated-fake" and len(reply["faces"]) == 1


def test_openapi_describes_post_predict_and_docs_are_served(server):
    with urllib.request.urlopen(server["url"] + "/openapi.json", timeout=10) as response:
        schema = json.loads(response.read())
    post_predict = schema["paths"]["/predict"]["post"]
    upload = post_predict["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["required"] == ["file"] and upload["properties"]["file"]["format"] == "binary"
    assert {"200", "400", "408", "413", "503", "504"} <= set(post_predict["responses"])
    assert "/health" in schema["paths"]
    with urllib.request.urlopen(server["url"] + "/docs", timeout=10) as response:
        assert b"swagger" in response.read().lower()


def test_only_a_loopback_address_goes_without_a_warning():
    assert exposure_warning("127.0.0.1") is None and exposure_warning("::1") is None
    assert "no authentication" in exposure_warning("0.0.0.0")
