"""MnistHandler with TorchServe's own Context, run in the unpacked .mar, without a server."""

import base64
import io
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from ts.context import Context, RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

from handler.decode import MAX_PIXELS
from handler.mnist_handler import MnistHandler
from handler.preprocess import to_model_input
from model.inference import load_for_inference
from scripts.serving.paths import ROOT
from tests.digits import draw_seven
from tests.models import RecordingModel, TemplateModel
from tests.support import encode, offline_probabilities, rounded, unpacked_archive, untrained_checkpoint

pytestmark = pytest.mark.handler


def stroke_digit(size: int = 28) -> Image.Image:
    """A white '1'-like bar on black, MNIST style, drawn at any size."""
    pixels = np.zeros((size, size), dtype=np.uint8)
    s = size / 28
    pixels[int(5 * s) : int(23 * s), int(12 * s) : int(16 * s)] = 255
    pixels[int(5 * s) : int(9 * s), int(9 * s) : int(13 * s)] = 200
    return Image.fromarray(pixels, mode="L")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """(model_dir, checkpoint): the real archive, unpacked where a worker would run it."""
    workdir = tmp_path_factory.mktemp("handler")
    checkpoint = untrained_checkpoint(workdir / "weights.pth")
    return unpacked_archive(checkpoint, workdir), checkpoint


@pytest.fixture(scope="module")
def handler(archive):
    model_dir, _ = archive
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(model_dir))  # the worker imports the model file from the archive
        handler = MnistHandler()
        handler.initialize(make_context(model_dir, []))
    torch.set_num_threads(threads)  # initialize() sizes a worker's threads; this is the test process
    return handler


@pytest.fixture(scope="module")
def model(archive):
    return load_for_inference(archive[1])


def make_context(model_dir, headers: list[dict]) -> Context:
    manifest = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())
    metrics = MetricsCacheYamlImpl(str(ROOT / "handler" / "metrics.yaml"))
    metrics.initialize_cache()
    metrics.model_name = "mnist"  # as the worker does
    context = Context("mnist", str(model_dir), manifest, 8, None, "0.12.0", metrics=metrics, model_yaml_config={})
    context.request_processor = [RequestProcessor(h) for h in headers]
    context.request_ids = {i: f"request-{i}" for i in range(len(headers))}
    metrics.request_ids = context.request_ids
    return context


def run(handler, archive, requests: list[tuple[dict, dict]]):
    """Hand the handler one batch as TorchServe does; return [(status, answer dict)] per request."""
    context = make_context(archive[0], [headers for _, headers in requests])
    answers = handler.handle([row for row, _ in requests], context)
    assert len(answers) == len(requests)
    return [(context.get_response_status(i)[0], json.loads(answer)) for i, answer in enumerate(answers)]


def raw(data: bytes, content_type: str = "image/png"):
    """A body sent with --data-binary and a Content-Type."""
    return {"body": data}, {"body": {"content-type": content_type}, "Content-Type": content_type}


def one(handler, archive, request):
    [(status, answer)] = run(handler, archive, [request])
    return status, answer


def expected(model, image: Image.Image) -> list[float]:
    return offline_probabilities(model, [image])[0].tolist()


def assert_answer(answer: dict, probabilities: list[float]):
    """The answer holds exactly the offline probabilities of the same batch, rounded as the JSON is."""
    assert set(answer) == {"digit", "confidence", "probabilities"}
    assert answer["probabilities"] == rounded(torch.tensor(probabilities, dtype=torch.float32))
    assert answer["digit"] == int(np.argmax(probabilities))
    assert answer["confidence"] == max(answer["probabilities"])


@pytest.mark.parametrize(
    "fmt,options",
    [("PNG", {}), ("JPEG", {"quality": 95}), ("GIF", {}), ("BMP", {}), ("WEBP", {"lossless": True}), ("TIFF", {})],
)
def test_every_format_decodes_to_the_offline_answer(handler, archive, model, fmt, options):
    data = encode(stroke_digit(), fmt, **options)
    status, answer = one(handler, archive, raw(data, f"image/{fmt.lower()}"))
    assert status == 200
    assert_answer(answer, expected(model, Image.open(io.BytesIO(data))))


@pytest.mark.parametrize("mode", ["L", "RGB", "P", "I;16", "I", "1"])
def test_every_mode_gives_the_answer_of_the_grayscale_picture(handler, archive, model, mode):
    image = stroke_digit(280)
    converted = image.convert("1") if mode == "1" else image.convert(mode)
    if mode in ("I;16", "I"):  # 16-bit: the same picture at 257x the intensity
        converted = Image.fromarray(np.asarray(image, dtype=np.uint16) * 257)
        converted = converted if mode == "I;16" else converted.convert("I")
    fmt = "TIFF" if mode == "I" else "PNG"  # 32-bit integer pixels: TIFF, not PNG
    status, answer = one(handler, archive, raw(encode(converted, fmt), f"image/{fmt.lower()}"))
    assert status == 200
    reference = image.convert("1").convert("L") if mode == "1" else image
    assert answer["digit"] == int(np.argmax(expected(model, reference)))


def test_transparent_canvas_strokes_read_as_ink(handler, archive, model):
    # A browser canvas: black strokes, alpha 255, on a fully transparent (0,0,0,0) background.
    ink = np.asarray(stroke_digit(200))
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    rgba[..., 3] = ink
    status, answer = one(handler, archive, raw(encode(Image.fromarray(rgba, mode="RGBA"))))
    assert status == 200
    assert answer["digit"] == int(np.argmax(expected(model, stroke_digit(200))))


def test_exif_orientation_is_honoured(handler, archive, monkeypatch):
    upright = draw_seven((112, 112), (20, 14, 80, 96), 9, ink=255, paper=0).convert("RGB")
    # Stored rotated as a camera does, with EXIF orientation 6 ("rotate 90 CW to view").
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    # A model that reads the upright 7 as 7 and the picture as stored, unrotated, as 1.
    templates = {7: to_model_input(upright), 1: to_model_input(stored)}
    monkeypatch.setattr(handler, "model", TemplateModel(templates))
    status, answer = one(handler, archive, raw(encode(stored, "JPEG", quality=100, exif=exif.tobytes()), "image/jpeg"))
    assert status == 200
    assert answer["digit"] == 7 and answer["confidence"] > 0.99


def test_multipart_field_json_base64_and_text_base64_agree_with_raw(handler, archive, model):
    data = encode(stroke_digit())
    b64 = base64.b64encode(data).decode()
    probabilities = expected(model, stroke_digit())
    requests = [
        ({"data": data}, {"data": {"content-type": "image/png"}, "Content-Type": "multipart/form-data; boundary=x"}),
        ({"file": data}, {"file": {"content-type": "image/png"}}),
        ({"upload": data, "note": b"hi"}, {"upload": {"content-type": "image/png"}, "note": {"content-type": None}}),
        ({"body": {"data": b64}}, {"body": {"content-type": "application/json"}}),
        ({"body": {"image": "data:image/png;base64," + b64}}, {"body": {"content-type": "application/json"}}),
        ({"body": json.dumps({"data": b64}).encode()}, {"body": {"content-type": "application/json"}}),
        ({"body": b64[:40] + "\n" + b64[40:]}, {"body": {"content-type": "text/plain"}}),
        ({"body": data}, {"body": {"content-type": ""}}),  # curl -T: no Content-Type at all
    ]
    for status, answer in run(handler, archive, requests):
        assert status == 200
        assert_answer(answer, probabilities)


def huge_png() -> bytes:
    """A decompression bomb: 64 megapixels that compress to a few kB."""
    return encode(Image.new("1", (8000, 8000)))


BAD_REQUESTS = {
    "empty body": (raw(b""), "empty"),
    "not an image": (raw(b"GIF89a? no, just text"), "not an image"),
    "truncated png": (raw(encode(stroke_digit(280))[:300]), "cannot be decoded"),
    "bad base64": (({"body": {"data": "!!not base64!!"}}, {"body": {"content-type": "application/json"}}), "base64"),
    "json without data": (({"body": {"picture": "x"}}, {"body": {"content-type": "application/json"}}), "data"),
    "json list": (({"body": [1, 2]}, {"body": {"content-type": "application/json"}}), "JSON"),
    "invalid json": (raw(b"{not json", "application/json"), "not valid JSON"),
    "no content type": (({"\x89PNG\r\n": b""}, {"Content-Type": "application/x-www-form-urlencoded"}), "Content-Type"),
    "no image field": (({"name": b"seven"}, {"name": {"content-type": None}}), "no image"),
    "too many pixels": (raw(huge_png()), f"{MAX_PIXELS:,}"),
    "blank image": (raw(encode(Image.new("L", (64, 64), 255))), "no digit found"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_is_a_400_with_a_message(handler, archive, case):
    request, words = BAD_REQUESTS[case]
    status, answer = one(handler, archive, request)
    assert status == 400
    assert answer["code"] == 400 and words in answer["error"] and len(answer["error"]) > 10


def test_bad_requests_in_a_batch_leave_the_others_answered(handler, archive, model):
    good = raw(encode(stroke_digit()))
    bad = [request for request, _ in BAD_REQUESTS.values()]
    batch = [good, *bad[:3], good, bad[3], good]
    results = run(handler, archive, batch)
    probabilities = expected(model, stroke_digit())
    for request, (status, answer) in zip(batch, results, strict=True):
        if request is good:
            assert status == 200
            assert_answer(answer, probabilities)
        else:
            assert status == 400 and "error" in answer


def test_a_batch_of_only_bad_requests_needs_no_forward_pass(handler, archive, monkeypatch):
    recorder = RecordingModel(handler.model)
    monkeypatch.setattr(handler, "model", recorder)
    results = run(handler, archive, [raw(b""), raw(b"junk")])
    assert [status for status, _ in results] == [400, 400]
    assert recorder.batch_sizes == []
    # The same recorder sees the forward pass of a batch with good pictures in it: one, of the good ones only.
    results = run(handler, archive, [raw(encode(stroke_digit())), raw(b""), raw(encode(stroke_digit(56)))])
    assert [status for status, _ in results] == [200, 400, 200]
    assert recorder.batch_sizes == [2]


def test_batch_answers_match_single_answers_in_order(handler, archive, model):
    images = [stroke_digit(28 * k).rotate(15 * k) for k in range(1, 6)]
    results = run(handler, archive, [raw(encode(image)) for image in images])
    reference = offline_probabilities(model, images)
    for (status, answer), probabilities in zip(results, reference, strict=True):
        assert status == 200
        assert_answer(answer, probabilities.tolist())


def test_one_forward_pass_per_batch_is_counted_in_metrics(handler, archive, caplog):
    good, empty = raw(encode(stroke_digit())), raw(b"")
    context = make_context(archive[0], [good[1], empty[1], good[1]])
    with caplog.at_level(logging.INFO, logger="ts.metrics.caching_metric"):
        handler.handle([good[0], empty[0], good[0]], context)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[METRICS]Inference")]
    assert any(line.startswith("[METRICS]InferenceBatches.Count:1|#ModelName:mnist,Level:Model") for line in lines)
    assert any(line.startswith("[METRICS]InferenceImages.Count:2|#ModelName:mnist,Level:Model") for line in lines)


@pytest.mark.parametrize("omp", [None, "2"])
def test_each_worker_runs_one_torch_thread_unless_omp_num_threads_is_set(archive, monkeypatch, omp):
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    monkeypatch.syspath_prepend(str(archive[0]))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        MnistHandler().initialize(make_context(archive[0], []))
        assert torch.get_num_threads() == (1 if omp is None else 2)
    finally:
        torch.set_num_threads(before)


def test_an_unexpected_failure_costs_only_its_own_request(handler, archive, monkeypatch):
    import handler.mnist_handler as module

    real = module.to_model_input

    def fails_on_wide_pictures(image):
        if image.width > 28:
            raise RuntimeError("a bug in preprocessing")
        return real(image)

    monkeypatch.setattr(module, "to_model_input", fails_on_wide_pictures)
    statuses = [s for s, _ in run(handler, archive, [raw(encode(stroke_digit())), raw(encode(stroke_digit(56)))])]
    assert statuses == [200, 500]
