"""Explanations and the drawing page end to end: a real TorchServe, the demo server, headless Chromium.

The browser test draws MNIST test digits on the page with real pointer events (mouse and touch),
reads what the page shows, and saves a screenshot per digit to reports/demo/ for a person to look at.
"""

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from scripts.demo.server import MAX_UPLOAD
from scripts.serving.paths import ROOT
from scripts.serving.process import Server, serve_checkpoint
from tests.strokes import strokes
from tests.support import encode, untrained_checkpoint
from tests.test_serve_e2e import GOOD_PNG, metric, predict

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SCREENSHOTS = ROOT / "reports" / "demo"
# Chromium in a container, without a display, a GPU or network services of its own.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,800",
)


@pytest.fixture(scope="module")
def checkpoint(request, tmp_path_factory):
    """(path, trained): the session's one-epoch MNIST model when MNIST and Chromium are here, else untrained."""
    if os.environ.get("MNIST_DIR") and CHROMIUM and CHROMEDRIVER:
        return request.getfixturevalue("mnist_epoch").checkpoint, True
    return untrained_checkpoint(tmp_path_factory.mktemp("checkpoint") / "untrained.pth"), False


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    server = serve_checkpoint(checkpoint[0], tmp_path_factory.mktemp("torchserve"), workers=1)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demo(server):
    """The demo server as `make demo` runs it, on a free port; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.demo", "--port", "0", "--run-dir", server.state["run_dir"]],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    assert line.startswith("Draw a digit at http://127.0.0.1:"), line + process.stderr.read()
    yield line.split()[4]
    process.terminate()
    _, errors = process.communicate(timeout=30)
    assert "Traceback" not in errors, errors


def explain(server: Server, timeout: float = 60, **kwargs) -> requests.Response:
    headers = {**server.auth("inference"), **kwargs.pop("headers", {})}
    return requests.post(f"{server.inference}/explanations/{server.model}", headers=headers, timeout=timeout, **kwargs)


def png(data: bytes) -> dict:
    return {"data": data, "headers": {"Content-Type": "image/png"}}


# ---- /explanations/mnist through TorchServe ------------------------------------------------


def test_a_worker_imports_captum_at_its_first_explanation_not_for_predictions(server):
    # First in this module: the worker has served nothing yet. The handler logs captum's import once.
    model_log = Path(server.state["run_dir"], "model_log.log")
    for _ in range(5):
        assert predict(server, GOOD_PNG, timeout=60).status_code == 200
    time.sleep(1)  # the frontend copies worker output to model_log.log as it reads it
    assert "imported for explanations" not in model_log.read_text()
    assert explain(server, **png(GOOD_PNG)).status_code == 200
    deadline = time.monotonic() + 15
    while "imported for explanations" not in model_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert model_log.read_text().count("imported for explanations") == 1


def test_an_explanation_is_the_prediction_plus_the_model_input_and_a_map(server):
    response = explain(server, **png(GOOD_PNG))
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    answer = response.json()
    prediction = predict(server, GOOD_PNG, timeout=60).json()
    assert {key: answer[key] for key in prediction} == prediction
    assert answer["target"] == answer["digit"]
    view, attributions = np.array(answer["input"]), np.array(answer["attributions"])
    assert view.shape == attributions.shape == (28, 28)
    # GOOD_PNG is already an MNIST-style digit: the model saw it as it is.
    np.testing.assert_allclose(view, np.asarray(Image.open(io.BytesIO(GOOD_PNG))) / 255, atol=6e-4)
    assert np.abs(attributions).max() > 0


def test_the_target_is_a_form_field_or_a_json_key_and_a_bad_one_is_a_400(server):
    by_form = explain(server, files={"data": ("d.png", GOOD_PNG, "image/png")}, data={"target": "3"})
    by_json = explain(server, json={"data": base64.b64encode(GOOD_PNG).decode(), "target": 8})
    assert by_form.status_code == by_json.status_code == 200
    assert (by_form.json()["target"], by_json.json()["target"]) == (3, 8)
    assert by_form.json()["attributions"] != by_json.json()["attributions"]
    bad = explain(server, files={"data": ("d.png", GOOD_PNG, "image/png")}, data={"target": "12"})
    assert bad.status_code == 400 and bad.json()["error"] == "target must be a digit from 0 to 9 (got '12')"
    blank = explain(server, **png(encode(Image.new("L", (64, 64), 255))))
    assert blank.status_code == 400 and "no digit" in blank.json()["error"]


def test_concurrent_explanations_batch_with_predictions_and_bad_requests(server):
    """A burst through one worker: batches form, and each request gets what it asked for."""
    kinds = [("explain", k % 10) for k in range(12)] + [("predict", None)] * 8
    kinds += [("explain", "eleven"), ("explain-empty", None), ("predict-empty", None)]
    batches, images = metric(server, "InferenceBatches"), metric(server, "InferenceImages")
    auth = server.auth("inference")

    def send(kind):
        name, target = kind
        body = b"" if name.endswith("empty") else GOOD_PNG
        route = "predictions" if name.startswith("predict") else "explanations"
        fields = {"target": str(target)} if target is not None else None
        return requests.post(
            f"{server.inference}/{route}/{server.model}",
            files={"data": ("d.png", body, "image/png")},
            data=fields,
            headers=auth,
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=len(kinds)) as pool:
        responses = list(pool.map(send, kinds))
    for (name, target), response in zip(kinds, responses, strict=True):
        answer = response.json()
        if name.endswith("empty") or target == "eleven":
            assert response.status_code == 400 and answer["code"] == 400 and answer["error"], answer
        elif name == "explain":
            assert response.status_code == 200 and answer["target"] == target
            assert np.array(answer["attributions"]).shape == (28, 28)
        else:
            assert response.status_code == 200 and "attributions" not in answer
    answered = metric(server, "InferenceImages") - images
    assert answered == 20, "each good request is in exactly one forward pass"
    assert metric(server, "InferenceBatches") - batches < answered, "no batch held more than one request"


# ---- the demo server -----------------------------------------------------------------------


def test_the_demo_relays_a_picture_and_its_target(server, demo):
    response = requests.post(f"{demo}api/explain?target=4", data=GOOD_PNG, headers={"Content-Type": "image/png"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["target"] == 4 and np.array(answer["input"]).shape == (28, 28)
    assert server.key("inference") not in response.text


@pytest.mark.parametrize(
    "body,content_type,status,words",
    [
        (b"just some text", "text/plain", 400, "not an image"),
        (b"", "image/png", 400, "no picture"),
        (encode(Image.new("L", (64, 64), 255)), "image/png", 400, "no digit"),
        (GOOD_PNG[:60], "image/png", 400, "cannot be decoded"),
    ],
)
def test_a_bad_upload_gets_a_readable_message(demo, body, content_type, status, words):
    response = requests.post(f"{demo}api/explain", data=body, headers={"Content-Type": content_type}, timeout=60)
    assert response.status_code == status
    assert words in response.json()["error"] and "Traceback" not in response.text


def test_the_demo_refuses_what_it_does_not_serve(demo):
    too_big = requests.post(f"{demo}api/explain", data=b"\0" * (MAX_UPLOAD + 1), timeout=60)
    assert too_big.status_code == 413 and "too large" in too_big.json()["error"]
    bad_target = requests.post(f"{demo}api/explain?target=x", data=GOOD_PNG, timeout=60)
    assert bad_target.status_code == 400 and "target must be a digit" in bad_target.json()["error"]
    for path in ("static/../key_file.json", "key_file.json", "static/", "api/explain"):
        response = requests.get(f"{demo}{path}", timeout=10)
        assert response.status_code == 404 and "error" in response.json(), path
    page = requests.get(demo, timeout=10)
    assert page.status_code == 200 and "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_an_expired_key_is_explained_on_the_page(server, demo):
    key_file = Path(server.key_file)
    saved = key_file.read_text()
    keys = json.loads(saved)
    keys["inference"]["key"] = "notthekey"  # as an expired key: TorchServe refuses it
    try:
        key_file.write_text(json.dumps(keys))
        response = requests.post(f"{demo}api/explain", data=GOOD_PNG, timeout=60)
    finally:
        key_file.write_text(saved)
    assert response.status_code == 502 and "make renew-key" in response.json()["error"]


def test_the_demo_cli_fails_in_one_line(server, tmp_path, demo):
    not_running = subprocess.run(
        [sys.executable, "-m", "scripts.demo", "--run-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    port = demo.rsplit(":", 1)[1].strip("/")
    in_use = subprocess.run(
        [sys.executable, "-m", "scripts.demo", "--run-dir", server.state["run_dir"], "--port", port],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    for result, words in ((not_running, "TorchServe is not running"), (in_use, "is in use")):
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.startswith("error: ") and words in result.stderr and result.stderr.count("\n") == 1


# ---- the page in a real browser ----------------------------------------------------------


@pytest.fixture(scope="module")
def browser(checkpoint):
    if not (CHROMIUM and CHROMEDRIVER):
        reason = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: .ci/run installs them, so CI must run this test")
        pytest.skip(reason)
    if not checkpoint[1]:
        pytest.skip("needs a trained model: set MNIST_DIR to the folder with the four MNIST IDX files")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="mnist-demo-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    # The DevTools network log: every response the page received, bodies included.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def draw(driver, pad, pixels: np.ndarray, touch: bool) -> None:
    """Retrace an MNIST digit on the pad: pointer down, moves along each stroke, pointer up."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    width, height = pad.size["width"], pad.size["height"]
    devices = [PointerInput(interaction.POINTER_TOUCH, "finger")] if touch else None
    chain = ActionChains(driver, duration=5, devices=devices)
    for stroke in strokes(pixels):
        # Offsets from the pad's centre, one MNIST pixel = width / 28 on the page.
        points = [(round((x + 0.5 - 14) * width / 28), round((y + 0.5 - 14) * height / 28)) for x, y in stroke]
        chain.move_to_element_with_offset(pad, *points[0]).click_and_hold()
        for point in points[1:]:
            chain.move_to_element_with_offset(pad, *point)
        chain.release()
    chain.perform()


def wait_for_answer(driver, timeout: float = 60.0) -> str:
    """Wait until the page shows the answer to its newest request; return "done" or "error"."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = (
        "const s = document.body.dataset;"
        "return (s.state === 'done' || s.state === 'error') && document.getElementById('result').dataset.seq === s.sent"
        " ? s.state : null;"
    )
    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def painted(driver, canvas_id: str) -> tuple[int, int]:
    """(answer the canvas was painted for, distinct colours in it)."""
    return tuple(
        driver.execute_script(
            "const c = document.getElementById(arguments[0]);"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "const colours = new Set();"
            "for (let i = 0; i < d.length; i += 4) colours.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);"
            "return [Number(c.dataset.painted || 0), colours.size];",
            canvas_id,
        )
    )


def first_of_each_class(test) -> list[int]:
    """Index of the first MNIST test digit of each class 0-9."""
    labels = np.asarray(test.labels)
    return [int(np.flatnonzero(labels == digit)[0]) for digit in range(10)]


def test_drawn_digits_are_read_in_a_real_browser(browser, demo, server, mnist, tmp_path):
    from selenium.webdriver.common.by import By

    _, test = mnist
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.get(demo)
    pad = browser.find_element(By.ID, "pad")
    read = {}
    for n, index in enumerate(first_of_each_class(test)):
        label = int(test.labels[index])
        browser.find_element(By.ID, "clear").click()
        draw(browser, pad, np.asarray(test.images[index]), touch=n % 2 == 1)
        assert wait_for_answer(browser) == "done", browser.find_element(By.ID, "message").text
        read[label] = int(browser.find_element(By.ID, "digit").text)
        answer = int(browser.find_element(By.ID, "result").get_attribute("data-seq"))
        for canvas in ("model-view", "heatmap"):
            seq, colours = painted(browser, canvas)
            assert seq == answer and colours > 5, (canvas, seq, answer, colours)
        browser.save_screenshot(str(SCREENSHOTS / f"drawn-{label}.png"))
    right = sum(read[label] == label for label in read)
    print(f"drawn digits read right: {right}/10 ({read})")
    assert right >= 9, f"the page read {read} (drawn digit: answer)"

    # A click on a bar explains that digit instead.
    browser.find_element(By.CSS_SELECTOR, ".bar[data-digit='3']").click()
    assert wait_for_answer(browser) == "done"
    assert browser.find_element(By.ID, "target").text == "3"

    # An upload: a photo from samples/, then a file that is no picture.
    browser.find_element(By.ID, "upload").send_keys(str(ROOT / "samples" / "3_photo.jpg"))
    assert wait_for_answer(browser) == "done"
    browser.save_screenshot(str(SCREENSHOTS / "upload-photo.png"))
    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_text("these are notes, not a picture")
    browser.find_element(By.ID, "upload").send_keys(str(not_a_picture))
    assert wait_for_answer(browser) == "error"
    message = browser.find_element(By.ID, "message")
    assert message.is_displayed() and "not an image" in message.text and "Traceback" not in message.text
    browser.save_screenshot(str(SCREENSHOTS / "upload-error.png"))

    assert_key_never_reached_the_browser(browser, server.key("inference"))


def assert_key_never_reached_the_browser(browser, key: str) -> None:
    """The key is in no page, no response the browser received (headers or body), no script-visible state."""
    assert len(key) >= 8 and key not in browser.page_source
    bodies = 0
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        assert key not in json.dumps(message), message["method"]  # requests, responses, their headers
        if message["method"] == "Network.responseReceived":
            try:
                body = browser.execute_cdp_cmd("Network.getResponseBody", {"requestId": message["params"]["requestId"]})
            except Exception:  # a response with no body (a redirect, a 404 favicon)
                continue
            text = base64.b64decode(body["body"]).decode("latin-1") if body["base64Encoded"] else body["body"]
            assert key not in text, message["params"]["response"]["url"]
            bodies += 1
    assert bodies >= 12, f"only {bodies} response bodies were checked"
    state = browser.execute_script(
        "const seen = new WeakSet();"
        "const plain = (k, v) => { if (typeof v === 'object' && v !== null) { if (seen.has(v)) return undefined;"
        " seen.add(v); } return typeof v === 'function' ? String(v) : v; };"
        "const globals = {};"
        "for (const name of Object.getOwnPropertyNames(window)) {"
        " try { if (!(name in Object.getPrototypeOf(window)) && typeof window[name] !== 'object')"
        " globals[name] = window[name]; } catch (e) {} }"
        "return JSON.stringify({cookie: document.cookie, local: {...localStorage}, session: {...sessionStorage},"
        " globals, html: document.documentElement.outerHTML, data: {...document.body.dataset},"
        " resources: performance.getEntries().map((e) => e.name)}, plain);"
    )
    assert key not in state and len(state) > 1000
