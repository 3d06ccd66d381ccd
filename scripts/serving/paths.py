"""Where the bundle's serving files are, and TorchServe's commands in this environment."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "mnist"
# TorchServe's server settings, as shipped.
CONFIG = ROOT / "config.properties"
# The per-model settings the archive carries (torch-model-archiver --config-file).
MODEL_CONFIG = ROOT / "handler" / "model-config.yaml"
# The handler's metrics, declared for TorchServe's metrics API.
METRICS_CONFIG = ROOT / "handler" / "metrics.yaml"
# Each log line once: TorchServe's default writes several lines per request (see the file).
LOG_CONFIG = ROOT / "handler" / "log4j2.xml"
# The packages the archive carries, so the worker imports the same code as training and evaluation.
PACKAGES = ("model", "handler")
MODEL_FILE = ROOT / "model" / "cnn.py"
HANDLER_FILE = ROOT / "handler" / "mnist_handler.py"
# The checkpoint's calibration inside the archive (handler.mnist_handler.CALIBRATION_FILE).
CALIBRATION_FILE = "calibration.pt"
SAMPLES = ROOT / "samples"

BIN = Path(sys.executable).parent
TORCHSERVE = BIN / "torchserve"
ARCHIVER = BIN / "torch-model-archiver"
# zlib-ng as libz.so.1, built by `make install` (scripts/setup/build_zlib_ng.sh): Pillow's wheels load
# whatever libz.so.1 the dynamic linker finds, and the system's inflates PNGs several times slower.
ZLIB_NG = BIN.parent / "lib" / "zlib-ng"
# TorchServe writes its keys here, in the folder it is started from.
KEY_FILE = "key_file.json"
