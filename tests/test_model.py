import pytest
import torch

from model import MnistCNN
from model.inference import for_inference

pytestmark = pytest.mark.unit


def test_output_is_logits_per_image():
    model = MnistCNN().eval()
    with torch.no_grad():
        out = model(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10)
    assert out.dtype == torch.float32


def test_parameter_count_matches_the_spec():
    assert sum(p.numel() for p in MnistCNN().parameters()) == 421_834


def test_layers_follow_the_spec():
    convs = [m for m in MnistCNN().modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in MnistCNN().modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 32), (32, 64)]
    assert [(f.in_features, f.out_features) for f in linears] == [(3136, 128), (128, 10)]


def test_seed_reload_snippet_round_trips(tmp_path, monkeypatch):
    torch.manual_seed(0)
    trained = MnistCNN()
    # Non-default BatchNorm statistics must survive the round trip too.
    trained.train()(torch.randn(16, 1, 28, 28))
    trained.eval()
    monkeypatch.chdir(tmp_path)
    torch.save(trained.state_dict(), "mnist_cnn.pth")

    model = MnistCNN()
    model.load_state_dict(torch.load("mnist_cnn.pth"))
    model.eval()

    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), trained(x))


def test_inference_form_folds_batch_norm_and_keeps_the_answers():
    torch.manual_seed(0)
    model = MnistCNN()
    # Trained-looking batch-norm statistics, so folding has something to fold.
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.uniform_(-1, 1)
            layer.running_var.uniform_(0.5, 2)
            layer.weight.data.uniform_(0.5, 1.5)
            layer.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(16, 1, 28, 28)
    with torch.inference_mode():
        reference = model.eval()(x)
        served = for_inference(model)
        assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)) for m in served.modules())
        assert served.features[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(served(x), reference, atol=1e-4, rtol=1e-4)
        assert torch.equal(served(x).argmax(1), reference.argmax(1))
