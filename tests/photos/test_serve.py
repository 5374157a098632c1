"""The local web page: the JSON API over real HTTP, and the page in a real headless Chromium.

The browser test needs Debian's chromium and chromium-driver (`.ci/run` installs them) and
the selenium package; without them it is skipped locally, and fails under CI=true.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import threading
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
from ferkaggle.photos.serve import App, make_server
from helpers.photos import ASTRONAUT_FACE, iou, train_tiny_run, write_photos

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    run = train_tiny_run(root)
    app = App(Predictor.from_run(run), HaarDetector())
    httpd = make_server(app, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    yield {"url": f"http://{host}:{port}", "app": app, "photos": write_photos(root / "photos"), "run": run}
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
