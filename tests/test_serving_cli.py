"""scripts.serving without a server: one-line errors, the config reader, the archive layout."""

import json
import os
import shutil
import socket
import subprocess
import zipfile
from pathlib import Path

import pytest

from scripts.serving import (
    ROOT,
    ZLIB_NG,
    ServeError,
    Server,
    build_archive,
    read_properties,
    render_config,
    zlib_ng_env,
)
from tests.serving import PORT_OPTIONS, server_config, serving_cli, untrained_checkpoint

pytestmark = pytest.mark.handler


# For each port option of `start`: the name its refusal gives the address, the Makefile's variable.
NAMES = ["inference", "management", "metrics", "gRPC inference", "gRPC management"]
PORT_NAMES = dict(zip(PORT_OPTIONS, NAMES, strict=True))
PORT_VARIABLES = {option: option[2:].upper().replace("-", "_") for option in PORT_OPTIONS}  # INFERENCE_PORT
ALL_PORTS = {option: 18080 + i for i, option in enumerate(PORT_OPTIONS)}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A model store holding the real archive (of an untrained model)."""
    workdir = tmp_path_factory.mktemp("store")
    return build_archive(untrained_checkpoint(workdir / "w.pth"), workdir / "store").parent


@pytest.mark.parametrize("command", [["predict", "README.md"], ["scale", "2"], ["token"], ["renew-key"]])
def test_commands_need_a_running_server(tmp_path, command):
    result = serving_cli("--run-dir", str(tmp_path), *command)
    assert result.returncode == 1
    assert result.stderr.startswith("error: TorchServe is not running") and "Traceback" not in result.stderr


def test_status_stop_and_running_without_a_server(tmp_path):
    assert "not running" in serving_cli("--run-dir", str(tmp_path), "status").stdout
    assert "not running" in serving_cli("--run-dir", str(tmp_path), "stop").stdout
    assert serving_cli("--run-dir", str(tmp_path), "running").returncode == 1


def test_archive_without_weights_says_to_train(tmp_path):
    result = serving_cli("archive", "--checkpoint", str(tmp_path / "missing.pth"), "--model-store", str(tmp_path))
    assert result.returncode == 1 and "make train" in result.stderr


def test_start_without_an_archive_says_to_build_it(tmp_path):
    config = render_config(ROOT / "config.properties", tmp_path / "c.properties", {"model_store": str(tmp_path)})
    result = serving_cli("--run-dir", str(tmp_path), "start", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1 and "make archive" in result.stderr


@pytest.mark.parametrize("option", PORT_OPTIONS)
def test_start_refuses_a_port_in_use_and_starts_nothing(tmp_path, store, option):
    config = server_config(store, tmp_path / "config.properties")
    with socket.create_server(("127.0.0.1", 0)) as busy:  # a real socket, listening
        port = busy.getsockname()[1]
        result = serving_cli("--run-dir", str(tmp_path / "run"), "start", "--config", str(config), option, str(port))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: the {PORT_NAMES[option]} address http://127.0.0.1:{port} is already")
    assert result.stderr.count("\n") == 1 and "in use" in result.stderr
    assert not (tmp_path / "run" / "server.json").exists() and not (tmp_path / "run" / "torchserve.out").exists()


@pytest.mark.parametrize("ports", [{}, {"--metrics-port": 9}, ALL_PORTS], ids=["none", "one", "all"])
def test_make_serve_hands_each_port_variable_to_start(ports):
    """What `make serve INFERENCE_PORT=...` runs (`make -n`, SERVE=echo: nothing starts, nothing is built)."""
    env = {key: value for key, value in os.environ.items() if key not in PORT_VARIABLES.values()}
    command = ["make", "-n", "--no-print-directory", "serve", "SERVE=echo scripts.serving"]
    command += [f"{PORT_VARIABLES[option]}={port}" for option, port in ports.items()]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    starts = [line.split()[3:] for line in result.stdout.splitlines() if line.startswith("echo scripts.serving start")]
    assert starts == [[word for option, port in ports.items() for word in (option, str(port))]]


def test_archive_carries_the_model_and_handler_packages(tmp_path):
    mar = build_archive(untrained_checkpoint(tmp_path / "w.pth"), tmp_path / "store")
    names = set(zipfile.ZipFile(mar).namelist())
    assert {
        "cnn.py",
        "mnist_handler.py",
        "w.pth",
        "model/cnn.py",
        "handler/preprocess.py",
        "handler/decode.py",
    } <= names
    assert not any("__pycache__" in name for name in names)
    manifest = json.loads(zipfile.ZipFile(mar).read("MAR-INF/MANIFEST.json"))
    assert manifest["model"]["handler"] == "mnist_handler.py" and manifest["model"]["modelFile"] == "cnn.py"


def test_project_config_is_safe_by_default():
    config = read_properties(ROOT / "config.properties")
    for api in ("inference", "management", "metrics"):
        assert config[f"{api}_address"].startswith("http://127.0.0.1:")
    assert config["disable_token_authorization"] == "false"
    assert config["enable_model_api"] == "false"
    assert config["metrics_mode"] == "prometheus"
    assert json.loads(config["models"])["mnist"]["1.0"]["batchSize"] >= 1


def test_render_config_overrides_and_adds_keys(tmp_path):
    out = render_config(
        ROOT / "config.properties", tmp_path / "c", {"inference_address": "http://127.0.0.1:1", "x": "y"}
    )
    config = read_properties(out)
    assert config["inference_address"] == "http://127.0.0.1:1" and config["x"] == "y"
    assert config["models"] == read_properties(ROOT / "config.properties")["models"]


def test_a_key_file_still_being_written_is_not_ready_yet(tmp_path):
    """TorchServe creates key_file.json before it writes the keys; reading it then is a ServeError, not a crash."""
    key_file = tmp_path / "key_file.json"
    state = {"pid": os.getpid(), "model": "mnist", "key_file": str(key_file), "run_dir": str(tmp_path)}
    state |= {"inference": "http://127.0.0.1:9", "management": "http://127.0.0.1:9", "metrics": "http://127.0.0.1:9"}
    server = Server(state)
    key_file.write_text("")
    with pytest.raises(ServeError, match="incomplete"):
        server.key("management")
    assert server.ready() is False
    key_file.write_text(json.dumps({"management": {"key": "abc"}}))
    assert server.auth("management") == {"Authorization": "Bearer abc"}


BUILD_ZLIB_NG = ROOT / "scripts" / "build_zlib_ng.sh"


def test_zlib_ng_build_is_skipped_with_a_note_without_cmake(tmp_path):
    bin_dir = tmp_path / "bin"  # bash, mktemp and friends, but no cmake or cc
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "mktemp", "rm", "tail"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    result = subprocess.run(
        ["bash", str(BUILD_ZLIB_NG), str(tmp_path / "venv")],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("note: no cmake: zlib-ng not built") and result.stderr == ""
    assert not (tmp_path / "venv" / "lib").exists()


def test_zlib_ng_env_puts_the_built_library_first_once():
    if not (ZLIB_NG / "libz.so.1").exists():
        pytest.skip("zlib-ng is not built: `make install` builds it when cmake and a C compiler are there")
    env = zlib_ng_env({"LD_LIBRARY_PATH": f"/opt/lib{os.pathsep}{ZLIB_NG}"})
    assert env == {"LD_LIBRARY_PATH": f"{ZLIB_NG}{os.pathsep}/opt/lib"}
    assert zlib_ng_env({}) == {"LD_LIBRARY_PATH": str(ZLIB_NG)}
