"""TorchServe's configuration, rendered from one place for every way the bundle runs it.

Each setting is written once, where TorchServe reads it: server settings in ``config.properties``,
per-model settings (batch size, batch delay, response timeout) in ``handler/model-config.yaml``,
which the archive carries. The settings that follow the machine (the worker count, Netty's
threads) come from :mod:`scripts.serving.machine` unless ``config.properties`` sets them.

Every override - ports, workers, batching, extra properties - goes through :func:`configure`,
which returns a :class:`Configuration`; nothing edits a configuration file's text.
"""

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml

from scripts.serving.errors import ServeError
from scripts.serving.machine import machine_properties
from scripts.serving.paths import CONFIG, MODEL_CONFIG, MODEL_NAME, ROOT

# The APIs: name -> (property, TorchServe's default).
HTTP_APIS = {
    "inference": ("inference_address", "http://127.0.0.1:8080"),
    "management": ("management_address", "http://127.0.0.1:8081"),
    "metrics": ("metrics_address", "http://127.0.0.1:8082"),
}
GRPC_APIS = {
    "grpc_inference": ("grpc_inference_port", "7070"),
    "grpc_management": ("grpc_management_port", "7071"),
}
API_NAMES = (*HTTP_APIS, *GRPC_APIS)
# Properties that name files: relative ones are the project's, wherever TorchServe is started.
PATH_PROPERTIES = ("model_store", "metrics_config")
# configure()'s keyword -> the model-config.yaml key.
MODEL_KEYS = {"batch_size": "batchSize", "max_batch_delay_ms": "maxBatchDelay", "response_timeout_s": "responseTimeout"}


@dataclass(frozen=True)
class Configuration:
    """Server properties (``config.properties``) and the archive's per-model settings (``model-config.yaml``)."""

    properties: dict[str, str]
    model: dict[str, int] = field(default_factory=dict)

    def write(self, path: Path) -> Path:
        """Write the server properties as a Java properties file TorchServe reads."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Rendered by scripts.serving.config from config.properties and its overrides."]
        lines += [f"{key}={value}" for key, value in self.properties.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def address(self, api: str) -> str:
        """The URL of an HTTP API (``inference``, ``management``, ``metrics``), or ``host:port`` of a gRPC one."""
        if api in HTTP_APIS:
            key, default = HTTP_APIS[api]
            return self.properties.get(key, default)
        key, default = GRPC_APIS[api]
        host = self.properties.get(f"{api}_address", "127.0.0.1")
        return f"http://{host}:{self.properties.get(key, default)}"

    @property
    def model_store(self) -> Path:
        return Path(self.properties.get("model_store", "model_store"))

    @property
    def model_name(self) -> str:
        """The model that ``load_models`` loads first (``name=file.mar``)."""
        first = self.properties.get("load_models", f"{MODEL_NAME}={MODEL_NAME}.mar").split(",")[0]
        return first.split("=")[0].strip() if "=" in first else first.removesuffix(".mar").strip()

    @property
    def workers(self) -> int | None:
        """Workers per model, or None for TorchServe's default (one per usable CPU, or per GPU)."""
        value = self.properties.get("default_workers_per_model")
        return int(value) if value else None


def configure(
    *,
    base: Path = CONFIG,
    model_config: Path = MODEL_CONFIG,
    root: Path | None = ROOT,
    ports: Mapping[str, int] | None = None,
    workers: int | None = None,
    cpus: int | None = None,
    batch_size: int | None = None,
    max_batch_delay_ms: int | None = None,
    response_timeout_s: int | None = None,
    properties: Mapping[str, object] | None = None,
) -> Configuration:
    """The shipped configuration with overrides applied.

    ``ports`` maps API names (:data:`API_NAMES`) to ports, keeping each address's host;
    ``workers`` sets the worker count (None: TorchServe's default, one per usable CPU or GPU);
    ``cpus`` is the machine the configuration is for (None: this process's usable CPUs), which
    sets the per-machine properties ``config.properties`` leaves out (:mod:`scripts.serving.machine`);
    the batching keywords override ``model-config.yaml``; ``properties`` sets any other server
    property (None removes one). Relative file properties are resolved against ``root`` (None keeps them as written,
    for a configuration used on another machine).
    """
    if cpus is not None:
        _check_positive("cpus", cpus)
    settings = {**machine_properties(cpus), **read_properties(base)}
    model = read_model_settings(model_config)
    for name, port in (ports or {}).items():
        if name not in API_NAMES:
            raise ServeError(f"unknown API {name!r}: use one of {', '.join(API_NAMES)}")
        _check_port(name, port)
        if name in HTTP_APIS:
            key, default = HTTP_APIS[name]
            settings[key] = _with_port(settings.get(key, default), port)
        else:
            settings[GRPC_APIS[name][0]] = str(port)
    if workers is not None:
        _check_positive("workers", workers)
        settings["default_workers_per_model"] = str(workers)
    for keyword, value in (
        ("batch_size", batch_size),
        ("max_batch_delay_ms", max_batch_delay_ms),
        ("response_timeout_s", response_timeout_s),
    ):
        if value is not None:
            model[MODEL_KEYS[keyword]] = _check_int(keyword, value)
    for key, value in (properties or {}).items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = str(value)
    if root is not None:
        for key in PATH_PROPERTIES:
            if key in settings and not Path(settings[key]).is_absolute():
                settings[key] = str(Path(root, settings[key]))
    _check_model(model)
    return Configuration(settings, model)


def served_archive(config: Path) -> Path:
    """The archive file of the first model that the server properties in ``config`` load."""
    settings = Configuration(read_properties(Path(config)))
    first = settings.properties.get("load_models", f"{MODEL_NAME}={MODEL_NAME}.mar").split(",")[0]
    return settings.model_store / first.split("=")[-1].strip()


def environment_overrides(properties: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The properties as TorchServe sees them: with ``enable_envvars_config=true``, ``TS_<KEY>`` variables win."""
    if properties.get("enable_envvars_config") != "true":
        return dict(properties)
    return {**properties, **{key[3:].lower(): value for key, value in environ.items() if key.startswith("TS_")}}


def free_ports(names: Sequence[str] = API_NAMES) -> dict[str, int]:
    """A different port that nobody listens on right now for each name (the OS picks them)."""
    sockets = [socket.socket() for _ in names]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return {name: s.getsockname()[1] for name, s in zip(names, sockets, strict=True)}
    finally:
        for s in sockets:
            s.close()


def read_properties(path: Path) -> dict[str, str]:
    """Parse a Java properties file (``key=value``, ``#`` comments, ``\\`` continuations)."""
    path = Path(path)
    if not path.is_file():
        raise ServeError(f"no TorchServe config at {path}")
    properties, pending = {}, ""
    for line in path.read_text().splitlines():
        line = pending + line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            properties[key.strip()] = value.strip()
    return properties


def read_model_settings(path: Path = MODEL_CONFIG) -> dict[str, int]:
    """The per-model settings of ``model-config.yaml``."""
    try:
        settings = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ServeError(f"cannot read the model settings {path}: {error}") from None
    if not isinstance(settings, dict):
        raise ServeError(f"{path} must be a mapping of TorchServe model settings")
    return settings


def _check_model(model: dict) -> None:
    # TorchServe reads a maxBatchDelay of 0 in model-config.yaml as unset (its 100 ms default);
    # a batch of one never waits, so 0 is only meaningful there.
    if model.get("batchSize", 1) > 1 and model.get("maxBatchDelay", 1) < 1:
        raise ServeError("a batch delay of 0 ms needs batch size 1 (TorchServe reads 0 as its 100 ms default)")


def _check_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ServeError(f"{name} must be a whole number >= 0, got {value!r}")
    if name != "max_batch_delay_ms":
        _check_positive(name, value)
    return value


def _check_positive(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ServeError(f"{name} must be a whole number >= 1, got {value!r}")


def _check_port(name: str, port) -> None:
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ServeError(f"the {name} port must be a number from 1 to 65535, got {port!r}")


def _with_port(address: str, port: int) -> str:
    """``http://127.0.0.1:8080`` with another port."""
    parsed = urlparse(address)
    return f"{parsed.scheme}://{parsed.hostname}:{port}"
