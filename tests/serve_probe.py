"""Run in the serving-only venv (tests/serve_venv.py): what a worker and the serving library do.

``python -m tests.serve_probe <workdir>`` imports every serving module, builds the real archive
with an untrained checkpoint (``torch-model-archiver``), unpacks it, and has ``MnistHandler``
answer a prediction and then an explanation through TorchServe's own ``Context``, as a worker
does. It prints one JSON line: the answers' statuses and keys, and the top-level modules loaded
after the predictions and after the explanation.
"""

import importlib
import json
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def loaded() -> list[str]:
    return sorted({name.split(".")[0] for name in sys.modules})


def handle(handler, model_dir: Path, body: bytes, explain: bool):
    from ts.context import Context, RequestProcessor
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

    manifest = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())
    metrics = MetricsCacheYamlImpl(str(ROOT / "handler" / "metrics.yaml"))
    metrics.initialize_cache()
    metrics.model_name = "mnist"
    context = Context("mnist", str(model_dir), manifest, 1, None, "0.12.0", metrics=metrics, model_yaml_config={})
    headers = {"body": {"content-type": "image/png"}, "explain": "True" if explain else "False"}
    context.request_processor = [RequestProcessor(headers)]
    context.request_ids = {0: "request-0"}
    metrics.request_ids = context.request_ids
    if not getattr(handler, "initialized", False):
        handler.initialize(context)
    [answer] = handler.handle([{"body": body}], context)
    return context.get_response_status(0)[0], sorted(json.loads(answer))


def main(workdir: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from tests.import_rules import module_name, serving_files

    for path in serving_files():
        if path.stem != "__main__":  # an entry point runs its command: --help is run on its own
            importlib.import_module(module_name(path))

    import torch

    from model import MnistCNN
    from scripts.serving.archive import build_archive

    torch.manual_seed(0)
    checkpoint = workdir / "weights.pth"
    torch.save(MnistCNN().state_dict(), checkpoint)
    model_dir = workdir / "model_dir"
    with zipfile.ZipFile(build_archive(checkpoint, workdir / "store")) as archive:
        archive.extractall(model_dir)
    sys.path.insert(0, str(model_dir))  # as in a worker: the archive's root on the path

    from handler.mnist_handler import MnistHandler

    handler = MnistHandler()
    body = (ROOT / "samples" / "7_mnist.png").read_bytes()
    report = {"prediction": handle(handler, model_dir, body, explain=False), "after_predictions": loaded()}
    report |= {"explanation": handle(handler, model_dir, body, explain=True), "after_explanation": loaded()}
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
