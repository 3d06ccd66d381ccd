"""What one measured point holds: the JSON report's ``points``, the markdown table and docs/performance.md."""

from dataclasses import asdict, dataclass, field, fields


def _doc(text: str, default=None):
    return field(default=default, metadata={"doc": text})


@dataclass
class Point:
    """One configuration at one concurrency."""

    load: str = _doc("the pictures sent (`scripts/bench/serve/loads.py`): `pngs`, `mnist`, `real` or `photo`", "pngs")
    code: str = _doc("whose handler: `this` checkout's; with `--baseline`, `before` (the baseline's), `after`", "this")
    config: str = _doc("`default` (the shipped configuration), `attached`, or `w<workers>-b<batch>-d<delay ms>`")
    workers: int = _doc("TorchServe workers")
    batch_size: int = _doc("largest batch TorchServe gathers")
    max_batch_delay_ms: int = _doc("longest wait for a batch to fill, ms")
    concurrency: int = _doc("connections wrk keeps busy")
    requests: int = _doc("answers counted")
    duration_s: float = _doc("wall time of the point, s")
    rps: float = _doc("answers per second")
    p50_ms: float = _doc("median latency, ms")
    p90_ms: float = _doc("90th percentile latency, ms")
    p99_ms: float = _doc("99th percentile latency, ms")
    mean_ms: float = _doc("mean latency, ms")
    max_ms: float = _doc("slowest answer, ms")
    non_200: int = _doc("answers with another status than 200, plus socket errors")
    socket_errors: int = _doc("connect, read, write and timeout errors")
    statuses: dict = _doc("answers per HTTP status")
    server_ms: float | None = _doc("mean time inside TorchServe per request (its metrics), ms")
    queue_ms: float | None = _doc("mean wait in TorchServe's queue per request, holding the batch delay, ms")
    mean_batch: float | None = _doc("mean images per forward pass (the handler's counters)")
    jit_cpu_ms: int | None = _doc("CPU the JVM's JIT compilers used during the point, ms (Linux)")
    cpu_ms_per_request: dict = _doc("CPU per answer, ms: `frontend` (Java), `workers`, `wrk`")
    warmup_rounds: int = _doc("warm-up rounds sent before the first point of this server", default=0)
    ceiling_images_per_s: float | None = _doc("in-process ceiling at this batch size, images/s")
    fraction_of_ceiling: float | None = _doc("rps / ceiling_images_per_s")
    cpu_efficiency: float | None = _doc("the handler's in-process CPU per image / all CPU per served request")

    def to_json(self) -> dict:
        return asdict(self)


def field_docs() -> dict[str, str]:
    """Each point field and what it means, in order."""
    return {f.name: f.metadata["doc"] for f in fields(Point)}


def markdown_fields() -> str:
    """The table of point fields that docs/performance.md carries (`python -m scripts.bench.serve --fields`)."""
    rows = [f"| `{name}` | {doc} |" for name, doc in field_docs().items()]
    return "\n".join(["| field | meaning |", "| --- | --- |", *rows]) + "\n"
