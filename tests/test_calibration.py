"""model.calibration and train.calibrate on small made data: features, distances, temperature, the not-a-digit flag."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from handler.decode import decode_image
from handler.preprocess import PreprocessError, to_model_input
from model import MnistCNN, normalize
from model.calibration import (
    Calibration,
    DigitCheck,
    answer,
    calibration_path,
    class_distances,
    forward_with_features,
    load_calibration,
    read_info,
    save_calibration,
)
from model.inference import for_inference
from tests.digits import draw_seven
from tests.test_photographs import write_photographs
from train.calibrate import (
    calibrate,
    class_statistics,
    expected_calibration_error,
    feature_starts,
    fit_classifier,
    fit_temperature,
)
from train.calibrate import main as calibrate_main
from train.calibration_sets import served, variant
from train.photographs import find_photographs
from train.renderers.user_style import STYLES, render_bytes

pytestmark = pytest.mark.unit

STARTS = np.array([0, 64, 192])  # forward_with_features: block 1 (64), block 2 (128), penultimate (128)
ENERGY = 320 + 10  # describe's columns: 320 features, 10 logits, the energy, the top logit, 3 distances
COLUMNS = ENERGY + 5


def inputs_from(pixels: np.ndarray) -> torch.Tensor:
    """(N, 28, 28) intensities in [0, 1] -> normalised (N, 1, 28, 28) model inputs."""
    return normalize(torch.as_tensor(pixels, dtype=torch.float32)).unsqueeze(1)


def bar(width: int) -> np.ndarray:
    """A vertical stroke, 20 px tall and ``width`` px wide, in the middle of 28x28."""
    p = np.zeros((28, 28), np.float32)
    p[4:24, 14 - width // 2 : 14 - width // 2 + width] = 1.0
    return p


def square() -> np.ndarray:
    p = np.zeros((28, 28), np.float32)
    p[4:24, 4:24] = 1.0
    return p


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MnistCNN().eval()


def test_forward_with_features_is_the_model_forward(model):
    x = torch.randn(5, 1, 28, 28)
    for net in (model, for_inference(MnistCNN().eval())):
        with torch.inference_mode():
            logits, features = forward_with_features(net, x)
            assert torch.equal(logits, net(x))
            block1 = net.features[:4](x) if isinstance(net.features[1], torch.nn.BatchNorm2d) else net.features[:3](x)
        assert features.shape == (5, 320)
        assert torch.allclose(features[:, :32], block1.amax((2, 3))) and torch.allclose(
            features[:, 32:64], block1.sum((2, 3))
        )
    assert feature_starts(model).tolist() == STARTS.tolist()


def test_class_distances_are_the_mahalanobis_distance_to_the_nearest_mean_per_layer():
    rng = np.random.default_rng(0)
    starts = np.array([0, 2])  # two layers: features 0-1 and 2-5
    means = rng.normal(size=(10, 6))
    precisions = [(lambda a: a @ a.T + np.eye(len(a)))(rng.normal(size=(d, d))) for d in (2, 4)]
    z = rng.normal(size=(7, 6))
    expected = [
        [
            min(np.sqrt((v - m)[s] @ p @ (v - m)[s]) for m in means)
            for s, p in zip((slice(0, 2), slice(2, 6)), precisions, strict=True)
        ]
        for v in z
    ]
    whitening = np.zeros((6, 6))
    whitening[:2, :2], whitening[2:, 2:] = (np.linalg.cholesky(p) for p in precisions)
    got = class_distances(z, whitening, means @ whitening, starts)
    assert got == pytest.approx(np.array(expected), rel=1e-6)
    assert class_distances(means[3:4], whitening, means @ whitening, starts) == pytest.approx(0.0, abs=1e-6)


def energy_check(threshold: float) -> DigitCheck:
    """A hand-made check whose score is the energy (log-sum-exp of the logits)."""
    hidden = np.zeros((COLUMNS, 1), np.float32)
    hidden[ENERGY, 0] = 1.0
    offset = 1000.0  # keeps the hidden unit out of the ReLU's flat part
    return DigitCheck(
        np.eye(320, dtype=np.float32), np.zeros((10, 320), np.float32), STARTS,
        hidden, np.full(1, offset, np.float32), np.ones(1, np.float32), -offset, threshold,
    )  # fmt: skip


def test_answer_tempers_the_probabilities_and_flags_above_the_threshold(model):
    x = inputs_from(np.stack([bar(2), square(), np.zeros((28, 28))]))
    with torch.inference_mode():
        logits = model(x)
        plain = answer(model, x, None)
        assert torch.equal(plain.probabilities, torch.softmax(logits, 1))
        assert plain.is_digit is None and plain.not_digit_score is None
        tempered = answer(model, x, Calibration(2.0, None))
        assert torch.allclose(tempered.probabilities, torch.softmax(logits / 2.0, 1))
        assert tempered.is_digit is None
        energy = torch.logsumexp(logits, 1)
        threshold = float(energy.sort().values[1:].mean())  # between the two highest: one flagged
        checked = answer(model, x, Calibration(2.0, energy_check(threshold)))
    assert checked.not_digit_score.tolist() == pytest.approx(energy.tolist(), abs=1e-3)
    assert checked.is_digit.tolist() == (energy <= threshold).tolist()
    assert checked.is_digit.tolist().count(False) == 1


def test_calibration_file_round_trip_and_errors(tmp_path):
    assert calibration_path("some/dir/mnist_cnn.pth") == calibration_path("some/dir/mnist_cnn.pth").parent / (
        "mnist_cnn.calibration.pt"
    )
    path = tmp_path / "c.pt"
    assert load_calibration(path) is None
    original = Calibration(1.7, energy_check(0.25))
    save_calibration(path, original, {"holdout": 5000})
    loaded = load_calibration(path)
    assert loaded.temperature == pytest.approx(1.7) and loaded.check.threshold == 0.25
    for name in ("whitening", "centres", "starts", "hidden_weight", "hidden_bias", "output_weight"):
        assert np.array_equal(getattr(loaded.check, name), getattr(original.check, name)), name
    assert loaded.check.output_bias == original.check.output_bias
    assert read_info(path) == {"holdout": 5000}
    save_calibration(path, Calibration(1.2, None), {})
    assert load_calibration(path).check is None
    path.write_bytes(b"not a calibration")
    with pytest.raises(ValueError, match="not a calibration file"):
        load_calibration(path)


def test_expected_calibration_error():
    labels = torch.tensor([0, 0, 0, 0])
    # Confidence 0.75 and 3 of 4 right: calibrated.
    right = torch.tensor([[0.75, 0.25]] * 3 + [[0.25, 0.75]])
    assert expected_calibration_error(right, labels) == pytest.approx(0.0, abs=1e-6)
    # Confidence 0.9, half right: 0.4 too confident.
    half = torch.tensor([[0.9, 0.1]] * 2 + [[0.1, 0.9]] * 2)
    assert expected_calibration_error(half, labels) == pytest.approx(0.4, abs=1e-6)


def test_fit_temperature_undoes_a_known_overconfidence():
    generator = torch.Generator().manual_seed(0)
    true_logits = 2.0 * torch.randn(4000, 10, generator=generator)
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=generator)[:, 0]
    assert fit_temperature([3.0 * true_logits], [labels]) == pytest.approx(3.0, rel=0.1)


def test_class_statistics_whiten_the_within_class_spread_per_layer():
    rng = np.random.default_rng(0)
    labels = np.arange(4000) % 10
    mixing = np.array([[1.0, 0.5, 0, 0], [0, 2.0, 0, 0], [0, 0, 0.5, 0], [0, 0, 0.3, 1.0]])
    z = rng.normal(size=(4000, 4)) @ mixing + labels[:, None]
    whitening, centres = class_statistics(z.astype(np.float32), labels, np.array([0, 2]))
    means = np.stack([z[labels == k].mean(0) for k in range(10)])
    assert centres == pytest.approx(means @ whitening, abs=1e-3)
    assert whitening[:2, 2:] == pytest.approx(0.0) and whitening[2:, :2] == pytest.approx(0.0)
    residuals = (z - means[labels]) @ whitening
    for block in (slice(0, 2), slice(2, 4)):  # each layer's spread becomes the identity
        assert np.cov(residuals[:, block].T) == pytest.approx(np.eye(2), abs=0.01)


def test_fit_classifier_separates_the_non_digits():
    rng = np.random.default_rng(0)
    digits = [rng.normal(size=(300, 5)), rng.normal(size=(100, 5)) + 0.5]
    others = rng.normal(size=(400, 5)) + [6.0, 0, 0, 0, 0]
    w, b, v, c = fit_classifier([d.astype(np.float32) for d in digits], others.astype(np.float32), seed=0, epochs=100)
    score = lambda x: np.maximum(x @ w + b, 0) @ v + c  # noqa: E731
    assert (score(np.concatenate(digits)) < 0).mean() > 0.95
    assert (score(others) > 0).mean() > 0.95


def drawn(kind: str, rng: np.random.Generator) -> np.ndarray:
    """28x28 uint8 made pictures: thin strokes ("digit") or filled blobs ("garment"), light on black."""
    image = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(image)
    x0, y0 = (int(v) for v in rng.integers(4, 8, size=2))
    x1, y1 = (int(v) for v in rng.integers(20, 24, size=2))
    if kind == "digit":
        draw.line([(x0, y0), (x1, y0), (x0 + 3, y1)], fill=255, width=2)
    else:
        draw.ellipse((x0, y0, x1, y1), fill=int(rng.integers(150, 256)))
    return np.asarray(image)


def test_calibrate_flags_at_most_the_target_of_every_held_out_set(model, tmp_path):
    """The whole fit on made pictures: a report, a temperature, a threshold the held-out sets respect."""
    rng = np.random.default_rng(0)
    images = np.stack([drawn("digit", rng) for _ in range(600)])
    labels = np.arange(600) % 10
    others = np.stack([drawn("garment", rng) for _ in range(300)])
    write_photographs(tmp_path)
    args = SimpleNamespace(
        holdout=300, fit_digits=300, fit_per_style=5, renders=30, per_style=10, target=0.1, seed=0, per_kind=3, glyphs=6
    )
    args.fit_blurred, args.photo_crops = 7, 4
    args.epochs, args.workers, args.cache_dir = 30, 1, None
    photos = find_photographs(tmp_path)
    calibration, report = calibrate(
        for_inference(model), images, labels, others, args, log=lambda _: None, photos=photos
    )
    assert calibration.temperature > 0 and report["temperature"] == calibration.temperature
    assert report["digits"]["held_out"]["digits"] == 300
    assert set(report["check"]["held_out_flagged"]) == {"digits", "variants", *(f"style {s}" for s in STYLES)}
    assert report["digits"]["fit"]["style lowres-8"] == 7 and report["digits"]["fit"]["style canvas"] == 5
    assert 1 <= report["check"]["non_digits_fitted"]["photo crops"] <= 4  # some may be refused as blank
    for name, share in report["check"]["held_out_flagged"].items():
        n = report["digits"]["held_out"][name]
        assert share <= args.target + 1 / n, name
    with torch.inference_mode():
        x = torch.stack([to_model_input(Image.fromarray(a)) for a in others[:100]])
        assert (~answer(for_inference(model), x, calibration).is_digit).float().mean() > 0.9
    without = calibrate(for_inference(model), images, labels, None, args, log=lambda _: None)[0]
    assert without.check is None


def test_variants_are_thick_or_low_resolution_digits_of_either_polarity():
    rng = np.random.default_rng(0)
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:15] = 255
    pictures = [np.asarray(variant(digit, rng)) for _ in range(20)]
    assert all(p.shape == (40, 40) for p in pictures)
    dark_background = [p[0, 0] < 128 for p in pictures]
    assert any(dark_background) and not all(dark_background)
    widths = [int(((p > 128) != (p[0, 0] > 128)).sum(1).max()) for p in pictures]
    assert max(widths) >= 4  # the 2-px stroke got thicker in some


def _model_input_or_refusal(picture):
    try:
        return to_model_input(picture)
    except PreprocessError as refusal:
        return str(refusal)


@pytest.mark.parametrize("style", list(STYLES))
def test_the_fit_sees_each_render_as_the_server_decodes_its_file(style):
    """PNG renders skip the file in the fit: that must not change one model input."""
    seven = np.asarray(draw_seven((28, 28), (6, 4, 21, 23), 3, ink=255, paper=0))
    for seed in range(12):
        fitted = _model_input_or_refusal(served(seven, style, seed))
        from_file = _model_input_or_refusal(decode_image(render_bytes(seven, style, seed)[0]))
        if isinstance(fitted, str) or isinstance(from_file, str):
            assert fitted == from_file
        else:
            assert torch.equal(fitted, from_file)


def test_calibrate_cli_errors_are_one_line(tmp_path, capsys):
    assert calibrate_main(["--checkpoint", str(tmp_path / "none.pth"), "--reports-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and err.count("\n") == 1
