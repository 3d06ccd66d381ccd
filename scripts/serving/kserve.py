"""The storage layout KServe's ``pytorch`` serving runtime mounts at ``/mnt/models``.

KServe's TorchServe runtime starts ``torchserve --start --model-store=/mnt/models/model-store
--ts-config=/mnt/models/config/config.properties`` with ``TS_SERVICE_ENVELOPE`` set (``kserve`` for
the v1 protocol), and its own wrapper takes ports 8080 and 8081. So the configuration here is the
shipped one, rendered by :func:`scripts.serving.config.configure` with what that runtime needs:
the APIs on 8085 (8082 for metrics) on every interface, batches of one (TorchServe's dynamic
batching breaks behind KServe's envelopes, which read only a batch's first request; clients send
several instances per request instead), the model named by a ``model_snapshot`` rendered from the
same per-model settings as the archive, and token authorization off: every pod would invent its
own keys, so clients authenticate at the cluster's gateway (docs/deploy.md). The snapshot must name
a worker count: one per CPU of the pod's limit in ``deploy/kserve/inferenceservice.yaml``, and the
per-machine settings follow that count too (:mod:`scripts.serving.machine`).
"""

import json
import shutil
from pathlib import Path

from scripts.serving.archive import build_archive
from scripts.serving.config import Configuration, configure
from scripts.serving.machine import pod_cpus
from scripts.serving.paths import METRICS_CONFIG, MODEL_NAME, ROOT

MOUNT = Path("/mnt/models")
# KServe's samples: inference and management share 8085 (its wrapper has 8080 and 8081).
PORTS = {"inference": 8085, "metrics": 8082, "grpc_inference": 7070, "grpc_management": 7071}
# The pods' CPUs are the predictor's CPU limit here.
INFERENCE_SERVICE = ROOT / "deploy" / "kserve" / "inferenceservice.yaml"


def kserve_configuration(
    mount: Path = MOUNT,
    workers: int | None = None,
    ports: dict | None = None,
    host: str = "0.0.0.0",
    manifest: Path = INFERENCE_SERVICE,
) -> Configuration:
    """The configuration TorchServe reads from ``<mount>/config/config.properties`` under KServe.

    The pods' CPUs come from ``manifest``'s CPU limit: one worker per CPU unless ``workers`` says
    otherwise. ``ports`` and ``host`` move the APIs (the local simulation runs on free loopback ports).
    """
    cpus = pod_cpus(manifest)
    workers = workers or cpus
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
        cpus=cpus,
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
