"""requirements-serve.txt is all the serving side needs: a venv holding only it runs the handler and the serving CLI."""

import json
import subprocess

import pytest

from tests import serve_venv
from tests.import_rules import ROOT, SERVE_REQUIREMENTS

pytestmark = pytest.mark.handler

# Installed for training, figures, evaluation or tests only: the serving side must not load them.
TRAINING_ONLY = {"seaborn", "sklearn", "torchvision", "scipy", "pandas", "pytest"}
# captum (explanations) requires matplotlib and tqdm, so pip installs them with the serving set;
# predictions must not load captum or matplotlib (captum is imported on the first explanation).
# tqdm is not checked: torch.hub, which TorchServe's BaseHandler imports, loads it when installed.
# The serving side's own imports of any of them are refused by tests/test_import_rules.py.
EXPLANATION_ONLY = {"captum", "matplotlib"}


@pytest.fixture(scope="module")
def serve_python(tmp_path_factory):
    python, dists = serve_venv.build(tmp_path_factory.mktemp("serve-venv") / "venv")
    return python, set(dists)


def run(python, *args, cwd=ROOT, timeout=300):
    return subprocess.run(
        [str(python), *args], cwd=cwd, env=serve_venv.clean_env(), capture_output=True, text=True, timeout=timeout
    )


def test_the_serving_set_is_the_requirements_and_what_they_require(serve_python):
    _, dists = serve_python
    assert {"torch", "torchserve", "torch-model-archiver", "pyyaml", "pillow", "captum", "requests"} <= dists
    assert not {"seaborn", "scikit-learn", "torchvision", "pytest", "ruff"} & dists


@pytest.mark.parametrize("module", sorted(TRAINING_ONLY))
def test_training_packages_are_not_importable_in_the_serving_venv(serve_python, module):
    result = run(serve_python[0], "-c", f"import {module}")
    assert result.returncode != 0
    assert f"No module named '{module}'" in result.stderr


def test_the_serving_cli_runs_from_the_serving_venv(serve_python):
    result = run(serve_python[0], "-m", "scripts.serving", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout and "start" in result.stdout


def test_the_handler_answers_and_explains_from_the_serving_venv(serve_python, tmp_path):
    result = run(serve_python[0], "-m", "tests.serve_probe", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["prediction"][0] == 200 and "digit" in report["prediction"][1]
    assert report["explanation"][0] == 200 and "digit" in report["explanation"][1]
    assert (TRAINING_ONLY | EXPLANATION_ONLY) & set(report["after_predictions"]) == set()
    assert "captum" in report["after_explanation"]
    assert TRAINING_ONLY & set(report["after_explanation"]) == set()


def test_a_requirement_left_out_breaks_the_serving_venv(tmp_path):
    # TorchServe imports yaml without declaring it; without the pyyaml line nothing installs it.
    lines = [line for line in SERVE_REQUIREMENTS.read_text().splitlines() if not line.startswith("pyyaml")]
    (tmp_path / "requirements-serve.txt").write_text("\n".join(lines) + "\n")
    python, dists = serve_venv.build(tmp_path / "venv", tmp_path / "requirements-serve.txt")
    assert "pyyaml" not in dists
    result = run(python, "-m", "scripts.serving", "--help")
    assert result.returncode != 0
    assert "No module named 'yaml'" in result.stderr


def test_a_pin_the_environment_does_not_meet_is_refused(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy==1.0.0\n")
    with pytest.raises(serve_venv.ResolveError, match=r"numpy==1.0.0 is required but .* is installed"):
        serve_venv.closure(serve_venv.requirements(tmp_path / "requirements.txt"))
