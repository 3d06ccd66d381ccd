"""A client of one TorchServe: its keys, and the inference, management, token and metrics APIs."""

import json
import mimetypes
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from scripts.serving.errors import ServeError

# Management calls that wait for workers (scale) may take this long.
SLOW_CALL_TIMEOUT = 180.0


class Client:
    """TorchServe at the given API addresses, authenticating with the keys in ``key_file`` (None: token auth off)."""

    def __init__(self, inference: str, management: str, metrics: str, model: str, key_file: Path | None):
        self.inference = inference
        self.management = management
        self.metrics = metrics
        self.model = model
        self.key_file = Path(key_file) if key_file else None

    # ---- keys -------------------------------------------------------------

    def keys(self) -> dict:
        """key_file.json: ``{"inference": {"key", "expiration time"}, "management": ..., "API": ...}``."""
        if self.key_file is None:
            raise ServeError("token authorization is off on this server: it has no keys")
        if not self.key_file.is_file():
            raise ServeError(f"no key file at {self.key_file}: is token authorization on and the server up?")
        try:
            return json.loads(self.key_file.read_text())
        except json.JSONDecodeError:
            # TorchServe creates the file before it writes the keys: during start-up it can be empty.
            raise ServeError(f"the key file {self.key_file} is incomplete: is the server still starting?") from None

    def key(self, kind: str) -> str:
        return self.keys()[kind]["key"]

    def auth(self, kind: str) -> dict:
        """The Authorization header for an API, none when token authorization is off."""
        return {"Authorization": f"Bearer {self.key(kind)}"} if self.key_file else {}

    def renew_key(self, kind: str) -> str:
        """Replace the inference or management key through the token API; return the new key."""
        response = requests.get(f"{self.management}/token", params={"type": kind}, headers=self.auth("API"), timeout=10)
        raise_for_status(response)
        return self.key(kind)

    # ---- management -------------------------------------------------------

    def describe(self) -> dict:
        """The management API's description of the model (workers and their status)."""
        response = requests.get(f"{self.management}/models/{self.model}", headers=self.auth("management"), timeout=10)
        raise_for_status(response)
        return response.json()[0]

    def ready(self) -> bool:
        """True when the model has at least its minimum of workers and all are READY."""
        try:
            description = self.describe()
        except (ServeError, requests.RequestException):
            return False
        workers = description.get("workers", [])
        return len(workers) >= max(1, description.get("minWorkers", 1)) and all(
            w.get("status") == "READY" for w in workers
        )

    def scale(self, workers: int) -> list:
        """Set the worker count through the management API, synchronously; return the workers."""
        response = requests.put(
            f"{self.management}/models/{self.model}",
            params={"min_worker": workers, "max_worker": workers, "synchronous": "true"},
            headers=self.auth("management"),
            timeout=SLOW_CALL_TIMEOUT,
        )
        raise_for_status(response)
        return self.describe()["workers"]

    # ---- inference and metrics --------------------------------------------

    @property
    def predictions_url(self) -> str:
        return f"{self.inference}/predictions/{self.model}"

    def predict(self, image: Path) -> requests.Response:
        """POST one image file to the inference API with the inference key."""
        content_type = mimetypes.guess_type(str(image))[0] or "application/octet-stream"
        return requests.post(
            self.predictions_url,
            data=Path(image).read_bytes(),
            headers={**self.auth("inference"), "Content-Type": content_type},
            timeout=60,
        )

    def curl_line(self, image: str = "samples/<digit>.png") -> str:
        """A ready-to-paste curl command for one prediction, with the current inference key."""
        auth = f'-H "Authorization: Bearer {self.key("inference")}" ' if self.key_file else ""
        return f"curl {auth}-H 'Content-Type: image/png' --data-binary @{image} {self.predictions_url}"

    def metric_totals(self, names: tuple[str, ...]) -> dict[str, float]:
        """The metrics API's samples of ``names``, each summed over its labels."""
        response = requests.get(f"{self.metrics}/metrics", timeout=10)
        raise_for_status(response)
        # The parser names every counter sample <name>_total, whatever the text said.
        wanted = {name.removesuffix("_total"): name for name in names}
        totals = dict.fromkeys(names, 0.0)
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                name = wanted.get(sample.name.removesuffix("_total"))
                if name is not None:
                    totals[name] += sample.value
        return totals


def raise_for_status(response: requests.Response) -> None:
    """A :class:`ServeError` with TorchServe's own message for a 4xx/5xx answer."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
        message = body.get("message") or body.get("error") or response.text
    except (ValueError, AttributeError):
        message = response.text
    if "InvalidKeyException" in response.text:
        message += " (run `make renew-key` if the key has expired)"
    raise ServeError(f"{response.request.method} {response.url} -> HTTP {response.status_code}: {message}")
