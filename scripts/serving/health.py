"""Can the server in a run directory answer? The container's HEALTHCHECK, the pod's probes, `make status`.

TorchServe's /ping answers ``Healthy`` while every worker fails to load and each prediction waits for its
timeout, so a server counts as healthy only with a READY worker on the management API. Readiness also
needs the warm-up's marker (``<run-dir>/ready``); liveness (``--live``) does not, so that a pod draining
after SIGTERM is not restarted. Standard library only: probes run this every few seconds.

    python -m scripts.serving.health --run-dir run [--live]
"""

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path

READY_MARKER = "ready"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def workers(state: dict, timeout: float = 4.0) -> list[dict]:
    """The model's workers as the management API describes them."""
    request = urllib.request.Request(f"{state['management']}/models/{state['model']}")
    if state.get("key_file"):
        keys = json.loads(Path(state["key_file"]).read_text())
        request.add_header("Authorization", f"Bearer {keys['management']['key']}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)[0].get("workers", [])


def problem(run_dir: Path, live: bool = False) -> str | None:
    """None when the server in ``run_dir`` can answer (and, unless ``live``, is warmed up), else what is wrong."""
    run_dir = Path(run_dir)
    if not live and not (run_dir / READY_MARKER).is_file():
        return "not ready (starting, warming up or stopping)"
    try:
        state = json.loads((run_dir / "server.json").read_text())
    except (OSError, ValueError):
        return "TorchServe is not running (no server.json)"
    if not _alive(state["pid"]):
        return f"TorchServe is not running (pid {state['pid']} has exited)"
    try:
        found = workers(state)
    except (OSError, ValueError, KeyError, IndexError) as error:
        return f"the management API does not describe the model: {getattr(error, 'reason', error)}"
    if not any(w.get("status") == "READY" for w in found):
        statuses = ", ".join(w.get("status", "?") for w in found) or "none"
        return f"no READY worker (workers: {statuses}): the model cannot answer"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("logs"), help="the server's run directory")
    parser.add_argument("--live", action="store_true", help="liveness: skip the warm-up's ready marker")
    args = parser.parse_args(argv)
    found = problem(args.run_dir, live=args.live)
    print(found or "healthy")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
