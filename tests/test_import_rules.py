"""The serving side imports nothing from training, the tests or the tools, and no package outside its requirements."""

import shutil

import pytest

from scripts.serving.paths import PACKAGES
from tests.import_rules import ARCHIVED, ROOT, check_source, check_tree, imports, project_packages, serve_import_names

pytestmark = pytest.mark.unit

PROJECT = project_packages()
ALLOWED = serve_import_names()


def violations(source: str, module: str = "handler.mnist_handler", is_package: bool = False) -> list[str]:
    return [v.module for v in check_source(source, module, "x.py", PROJECT, ALLOWED, is_package)]


def test_the_serving_side_keeps_the_rule():
    found = check_tree()
    assert not found, "the serving side must stand alone:\n" + "\n".join(map(str, found))


def test_the_rule_covers_every_serving_folder_and_knows_the_project():
    assert {"model", "handler", "scripts", "train", "tests"} <= PROJECT
    assert ARCHIVED == PACKAGES  # what the archive carries
    # The direct serving requirements' import names: what the handler and the serving library may use.
    assert {"torch", "ts", "yaml", "numpy", "PIL", "requests", "psutil", "prometheus_client", "captum"} <= ALLOWED
    assert not {"matplotlib", "seaborn", "sklearn", "tqdm", "torchvision"} & ALLOWED


@pytest.mark.parametrize(
    "source, module",
    [
        ("from train.data import load_mnist", "train.data"),
        ("import train", "train"),
        ("import scripts.bench.serve", "scripts.bench.serve"),
        ("from scripts.accuracy import styles", "scripts.accuracy"),
        ("from scripts import demo", "scripts.demo"),
        ("from scripts import bench as b", "scripts.bench"),
        ("from tests.support import encode", "tests.support"),
        ("def lazily():\n    from train.renderers import user_style", "train.renderers"),
        ("from ..train import calibrate", "train"),
        ("import importlib\nimportlib.import_module('train.calibrate')", "train.calibrate"),
        ("__import__('scripts.samples.make')", "scripts.samples.make"),
        ("import subprocess\nsubprocess.run(['python', '-m', 'train.calibrate'])", "train.calibrate"),
        ("import matplotlib.pyplot as plt", "matplotlib.pyplot"),
        ("import seaborn", "seaborn"),
        ("from sklearn.metrics import confusion_matrix", "sklearn.metrics"),
        ("from tqdm import tqdm", "tqdm"),
        ("from torchvision import datasets", "torchvision"),
    ],
)
def test_a_serving_module_importing_training_tools_or_other_packages_is_a_violation(source, module):
    assert violations(source) == [module]


@pytest.mark.parametrize("module", ["handler.ink", "model.calibration"])
def test_the_archived_packages_import_nothing_the_archive_does_not_carry(module):
    assert violations("from scripts.serving.paths import ROOT", module) == ["scripts.serving.paths"]
    assert violations("from scripts import cli", module) == ["scripts.cli"]
    assert violations("from model.cnn import MnistCNN\nfrom handler.ink import box3", module) == []
    # The serving library may use them and itself.
    assert violations("from model.cnn import MnistCNN\nfrom scripts.serving import config", "scripts.serving.x") == []


def test_the_serving_side_may_import_itself_the_standard_library_and_its_requirements():
    source = "\n".join(
        [
            "import json, os, zlib",
            "from __future__ import annotations",
            "from model.cnn import MnistCNN",
            "from handler.preprocess import to_model_input",
            "from . import explain",
            "import torch, numpy, yaml, requests, psutil, captum",
            "from PIL import Image",
            "from ts.torch_handler.base_handler import BaseHandler",
            "from prometheus_client.parser import text_string_to_metric_families",
        ]
    )
    assert violations(source) == []
    library = ["from scripts.cli import OneLineParser", "from scripts import cli", "from scripts.serving import config"]
    assert violations("\n".join(library), "scripts.serving.cli") == []
    assert violations("from scripts import cli, deploy", "scripts.serving.cli") == ["scripts.deploy"]


def test_relative_imports_resolve_from_the_module_or_package():
    assert imports("from . import x", "scripts.serving.cli") == [(1, "scripts.serving", ["x"])]
    assert imports("from . import x", "scripts.serving", is_package=True) == [(1, "scripts.serving", ["x"])]
    assert imports("from ..bench import y", "scripts.serving.cli") == [(1, "scripts.bench", ["y"])]


def test_a_violation_in_a_copy_of_the_tree_is_found_with_its_file_and_line(tmp_path):
    for name in ("model", "handler", "scripts", "train"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "requirements-serve.txt", tmp_path)
    assert check_tree(tmp_path) == []
    kserve = tmp_path / "scripts" / "serving" / "kserve.py"
    kserve.write_text(kserve.read_text() + "\n\ndef _late():\n    from train.renderers.user_style import render\n")
    (found,) = check_tree(tmp_path)
    assert found.path == "scripts/serving/kserve.py"
    assert found.module == "train.renderers.user_style"
    assert found.line == len(kserve.read_text().splitlines())
