"""scripts.serving without a server: one-line errors, the config reader, the archive layout."""

import json
import os
import shutil
import socket
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from scripts.serving.archive import build_archive
from scripts.serving.config import configure, read_model_settings, read_properties
from scripts.serving.errors import ServeError
from scripts.serving.paths import ROOT, ZLIB_NG
from scripts.serving.process import Server, zlib_ng_env
from tests.support import PORT_OPTIONS, server_config, serving_cli, untrained_checkpoint

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
    config = configure(properties={"model_store": str(tmp_path)}).write(tmp_path / "c.properties")
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
    # Per-model settings live in the archive's model-config.yaml, workers follow the machine.
    assert "models" not in config and "default_workers_per_model" not in config
    assert read_model_settings()["batchSize"] >= 1


def test_configure_renders_every_override_and_reads_back(tmp_path):
    ports = {"inference": 18080, "management": 18081, "metrics": 18082, "grpc_inference": 17070}
    configuration = configure(ports=ports, workers=3, batch_size=4, max_batch_delay_ms=2, properties={"x": "y"})
    config = read_properties(configuration.write(tmp_path / "c.properties"))
    assert config["inference_address"] == "http://127.0.0.1:18080"
    assert config["management_address"] == "http://127.0.0.1:18081"
    assert config["metrics_address"] == "http://127.0.0.1:18082"
    assert config["grpc_inference_port"] == "17070" and config["grpc_management_port"] == "7071"
    assert config["default_workers_per_model"] == "3" and config["x"] == "y"
    # Everything not overridden is the shipped file's; relative paths become the project's.
    shipped = read_properties(ROOT / "config.properties")
    assert config["max_request_size"] == shipped["max_request_size"]
    assert config["model_store"] == str(ROOT / shipped["model_store"])
    assert configuration.model == {**read_model_settings(), "batchSize": 4, "maxBatchDelay": 2}
    assert configuration.workers == 3 and configure().workers is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"ports": {"inference": 0}}, "port must be a number from 1 to 65535"),
        ({"ports": {"http": 80}}, "unknown API 'http'"),
        ({"workers": 0}, "workers must be a whole number >= 1"),
        ({"batch_size": 8, "max_batch_delay_ms": 0}, "needs batch size 1"),
    ],
)
def test_configure_refuses_bad_overrides(overrides, message):
    with pytest.raises(ServeError, match=message):
        configure(**overrides)


def test_archive_carries_the_per_model_settings(tmp_path):
    mar = build_archive(untrained_checkpoint(tmp_path / "w.pth"), tmp_path / "store", {"batchSize": 2})
    with zipfile.ZipFile(mar) as archive:
        manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
        assert yaml.safe_load(archive.read(manifest["model"]["configFile"])) == {"batchSize": 2}


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


BUILD_ZLIB_NG = ROOT / "scripts" / "setup" / "build_zlib_ng.sh"


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
