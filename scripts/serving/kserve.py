"""The storage layout KServe's ``pytorch`` serving runtime mounts at ``/mnt/models``.

KServe's TorchServe runtime starts ``torchserve --start --model-store=/mnt/models/model-store
--ts-config=/mnt/models/config/config.properties`` with ``TS_SERVICE_ENVELOPE`` set (``kserve`` for
the v1 protocol), and its own wrapper takes ports 8080 and 8081. So the configuration here is the
shipped one, rendered by :func:`scripts.serving.config.configure` with what that runtime needs:
the APIs on 8085 (8082 for metrics) on every interface, batches of one (TorchServe's dynamic
batching breaks behind KServe's envelopes, which read only a batch's first request; clients send
several instances per request instead), the model named by a ``model_snapshot`` rendered from the
same per-model settings as the archive, and token authorization off: every pod would invent its
own keys, so clients authenticate at the cluster's gateway (docs/deploy.md).
"""

import json
import shutil
from pathlib import Path

from scripts.serving.archive import build_archive
from scripts.serving.config import Configuration, configure
from scripts.serving.paths import METRICS_CONFIG, MODEL_NAME

MOUNT = Path("/mnt/models")
# KServe's samples: inference and management share 8085 (its wrapper has 8080 and 8081).
PORTS = {"inference": 8085, "metrics": 8082, "grpc_inference": 7070, "grpc_management": 7071}
# Workers per pod: deploy/kserve/inferenceservice.yaml asks for as many CPUs.
WORKERS = 2


def kserve_configuration(
    mount: Path = MOUNT, workers: int = WORKERS, ports: dict | None = None, host: str = "0.0.0.0"
) -> Configuration:
    """The configuration TorchServe reads from ``<mount>/config/config.properties`` under KServe.

    ``ports`` and ``host`` move the APIs (the local simulation runs on free loopback ports).
    """
    ports = {**PORTS, **(ports or {})}
    model = configure(root=None, batch_size=1).model
    version = {"defaultVersion": True, "marName": f"{MODEL_NAME}.mar", "minWorkers": workers, "maxWorkers": workers}
    # TorchServe restores a snapshot's settings as they are: each must be there.
    version |= {key: model[key] for key in ("batchSize", "maxBatchDelay", "responseTimeout")}
    snapshot = {"name": "startup.cfg", "modelCount": 1, "models": {MODEL_NAME: {"1.0": version}}}
    return configure(
        root=None,
        batch_size=1,
        workers=workers,
        properties={
            "inference_address": f"http://{host}:{ports['inference']}",
            "management_address": f"http://{host}:{ports['inference']}",
            "metrics_address": f"http://{host}:{ports['metrics']}",
            "grpc_inference_address": host,
            "grpc_inference_port": ports["grpc_inference"],
            "grpc_management_address": host,
            "grpc_management_port": ports["grpc_management"],
            "model_store": str(mount / "model-store"),
            "load_models": None,
            "model_snapshot": json.dumps(snapshot, separators=(",", ":")),
            "metrics_config": str(mount / "config" / METRICS_CONFIG.name),
            "enable_envvars_config": "true",
            "disable_token_authorization": "true",
        },
    )


def write_kserve_store(checkpoint: Path, out: Path, configuration: Configuration | None = None) -> Path:
    """``<out>/config/config.properties`` (+ the metrics it declares) and ``<out>/model-store/mnist.mar``."""
    out = Path(out)
    configuration = configuration or kserve_configuration()
    shutil.rmtree(out / "model-store", ignore_errors=True)
    build_archive(checkpoint, out / "model-store", configuration.model)
    configuration.write(out / "config" / "config.properties")
    shutil.copyfile(METRICS_CONFIG, out / "config" / METRICS_CONFIG.name)
    return out
