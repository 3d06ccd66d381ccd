"""The benchmark's outputs: the machine it ran on, the markdown table, the plot, the c=1 breakdown."""

import os
import platform
import statistics
import zlib
from pathlib import Path


def machine() -> dict:
    import torch

    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def request_profile(point: dict, single: dict) -> dict:
    """Where one request's time goes at concurrency 1, in ms.

    Means add up: the client's mean latency, TorchServe's mean time per request and, inside it,
    the mean wait in its queue (which holds the batch delay); the handler is the in-process
    single-image median (its stages too). What is left between them is HTTP + the Java frontend,
    and the frontend-to-worker round trip (socket, TorchServe's Python service around the handler).
    """
    handler = single["handler"]
    server, queue = point.get("server_ms") or 0.0, point.get("queue_ms") or 0.0
    return {
        "config": point["config"],
        "client_p50_ms": point["p50_ms"],
        "client_mean_ms": point["mean_ms"],
        "http_and_frontend_ms": round(point["mean_ms"] - server, 3),
        "queue_and_batch_delay_ms": queue,
        "worker_round_trip_ms": round(server - queue - handler, 3),
        "handler_ms": handler,
        "handler_stages_ms": {k: single[k] for k in ("decode", "preprocess", "forward", "postprocess")},
        "cpu_ms_per_request": point["cpu_ms_per_request"],
    }


def markdown(report: dict) -> str:
    """The docs table: one row per configuration and concurrency, then the c=1 profile."""
    c, m = report["ceiling"], report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, load average {m['load_average_at_start'][0]} at the start; "
        f"torch {m['torch']}.",
        f"Ceiling (the handler in-process, {c['processes']} processes x 1 torch thread): "
        + ", ".join(f"batch {b}: {v:,.0f} img/s" for b, v in c["images_per_s"].items())
        + f"; one image alone: {report['single_image_ms']['handler']:.2f} ms (median over the samples).",
        "",
        "| load | code | config | workers | batch | delay ms | concurrency | req/s | of ceiling | CPU eff. | p50 ms "
        "| p90 ms | p99 ms | non-200 |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in report["points"]:
        lines.append(
            f"| {p.get('load', 'pngs')} | {p.get('code', 'this')} "
            f"| {p['config']} | {p['workers']} | {p['batch_size']} | {p['max_batch_delay_ms']} | {p['concurrency']} "
            f"| {p['rps']:,.0f} | {_percent(p['fraction_of_ceiling'])} | {_percent(p['cpu_efficiency'])} "
            f"| {p['p50_ms']:.1f} | {p['p90_ms']:.1f} | {p['p99_ms']:.1f} | {p['non_200']} |"
        )
    if report.get("ceilings"):
        lines += ["", "| ceiling (in-process) | " + " | ".join(f"batch {b} img/s" for b in c["images_per_s"])]
        lines[-1] += " | " + " | ".join(f"batch {b} CPU ms/img" for b in c["images_per_s"]) + " |"
        lines.append("| --- |" + " ---: |" * (2 * len(c["images_per_s"])))
        for name, ceiling in report["ceilings"].items():
            rates = " | ".join(f"{v:,.0f}" for v in ceiling["images_per_s"].values())
            cpus = " | ".join(f"{v:.3f}" for v in ceiling["cpu_ms_per_image"].values())
            lines.append(f"| {name} | {rates} | {cpus} |")
    if report.get("before_after"):
        lines += [
            "",
            "| load | config | concurrency | req/s before | req/s after | ratio | CPU ms/req before | after "
            "| p99 ms before | after | non-200 |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in report["before_after"]:
            lines.append(
                f"| {row['load']} | {row['config']} | {row['concurrency']} | {row['rps_before']:,.0f} "
                f"| {row['rps_after']:,.0f} | {row['ratio']:.2f}x | {row['cpu_ms_before']:.2f} "
                f"| {row['cpu_ms_after']:.2f} "
                f"| {row['p99_ms_before']:.1f} | {row['p99_ms_after']:.1f} | {row['non_200']} |"
            )
    profile = report.get("profile_c1")
    if profile:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in profile["handler_stages_ms"].items())
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in profile["cpu_ms_per_request"].items())
        lines += [
            "",
            f"One request at concurrency 1 ({profile['config']}), mean ms: client {profile['client_mean_ms']:.2f} = "
            f"HTTP + frontend {profile['http_and_frontend_ms']:.2f} + queue and batch delay "
            f"{profile['queue_and_batch_delay_ms']:.2f} + frontend-worker round trip "
            f"{profile['worker_round_trip_ms']:.2f} + handler {profile['handler_ms']:.2f} ({stages}); "
            f"CPU per request: {cpu}.",
        ]
    return "\n".join(lines) + "\n"


def before_after(points: list[dict]) -> list[dict]:
    """Per load, configuration and concurrency: the baseline's and this tree's figures side by side.

    Each side's req/s is the median over its rounds; CPU per request (frontend, workers and wrk) and p99
    likewise; non-200 sums both sides' failed answers.
    """
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for p in points:
        key = (p["load"], p["config"], p["concurrency"])
        groups.setdefault(key, {"before": [], "after": []}).setdefault(p["code"], []).append(p)
    rows = []
    for (load, config, concurrency), sides in groups.items():
        if not sides["before"] or not sides["after"]:
            continue
        row = {"load": load, "config": config, "concurrency": concurrency, "rounds": len(sides["after"])}
        for side, group in sides.items():
            row[f"rps_{side}"] = round(statistics.median(p["rps"] for p in group), 1)
            row[f"cpu_ms_{side}"] = round(statistics.median(sum(p["cpu_ms_per_request"].values()) for p in group), 3)
            row[f"p99_ms_{side}"] = round(statistics.median(p["p99_ms"] for p in group), 2)
        row["ratio"] = round(row["rps_after"] / row["rps_before"], 3) if row["rps_before"] else None
        row["non_200"] = sum(p["non_200"] for group in sides.values() for p in group)
        rows.append(row)
    return rows


def _percent(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(12, 4.5))

    def label(p: dict) -> str:
        code = "" if p.get("code", "this") == "this" else f" {p['code']}"
        return f"{p['config']} {p.get('load', 'pngs')}{code}"

    configs = dict.fromkeys(label(p) for p in report["points"])
    for name in configs:
        points = [p for p in report["points"] if label(p) == name]
        xs = [p["concurrency"] for p in points]
        ax_rps.plot(xs, [p["rps"] for p in points], marker="o", label=name)
        ax_p99.plot(xs, [p["p99_ms"] for p in points], marker="o", label=name)
    ceilings = report["ceiling"]["images_per_s"]
    for value in ceilings.values():
        ax_rps.axhline(value, linestyle="--", linewidth=0.8, color="grey")
    label = "ceiling, batch " + ", ".join(f"{b}: {v:,.0f}" for b, v in ceilings.items())
    ax_rps.annotate(label, (0.01, max(ceilings.values())), xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
    ticks = sorted({p["concurrency"] for p in report["points"]})
    for ax, label in ((ax_rps, "requests/s"), (ax_p99, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("concurrent connections")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_rps.set_title("Throughput (dashed: in-process ceiling)")
    ax_p99.set_title("p99 latency")
    ax_p99.set_yscale("log")
    ax_p99.legend(fontsize=8, title="w<workers>-b<batch>-d<delay ms>", title_fontsize=8)
    fig.suptitle(f"TorchServe mnist on {report['machine']['cpu']} ({report['machine']['cores']} cores)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
