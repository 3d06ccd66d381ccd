"""The ceiling: the handler's own work in-process, without HTTP, on every core at once.

Decode the same PNG bodies the load sends, preprocess, one batched forward pass, JSON answers
(MnistHandler.preprocess / inference / postprocess), in one process per core with one torch
thread each: the most images/s the machine's cores can turn out through this handler and model.
"""

import multiprocessing
import statistics
import time
from pathlib import Path


def in_process_handler(checkpoint: Path):
    """MnistHandler with the checkpoint's served model and calibration on the CPU, as a worker has it (no TorchServe).

    The calibration is the checkpoint's ``<stem>.calibration.pt`` when there is one, as the archive carries it.
    """
    import torch

    from handler.mnist_handler import MnistHandler
    from model.calibration import calibration_path, load_calibration
    from model.inference import load_for_inference

    handler = MnistHandler()
    handler.model, handler.device, handler.initialized = load_for_inference(checkpoint), torch.device("cpu"), True
    handler.calibration = load_calibration(calibration_path(checkpoint))
    return handler


def handle(handler, rows: list[dict]) -> list[str]:
    return handler.postprocess(handler.inference(handler.preprocess(rows)))


def _ceiling_worker(checkpoint, bodies, batch_size, seconds, barrier, results):
    """One core's share: images/s through the handler, one torch thread."""
    import torch

    torch.set_num_threads(1)
    handler = in_process_handler(checkpoint)
    rows = [{"body": body} for body in bodies]
    batches = [[rows[(i + j) % len(rows)] for j in range(batch_size)] for i in range(len(rows))]
    for batch in batches:  # warm-up: allocator, caches
        handle(handler, batch)
    barrier.wait()
    images, begin, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - begin < seconds:
        for batch in batches:
            handle(handler, batch)
        images += batch_size * len(batches)
    results.put((images / (time.perf_counter() - begin), (time.process_time() - cpu) / images * 1000))


def ceiling(checkpoint: Path, bodies: list[bytes], batch_size: int, processes: int, seconds: float) -> tuple:
    """Images/s of ``processes`` single-threaded handler processes working at once, and CPU ms per image."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_ceiling_worker, args=(checkpoint, bodies, batch_size, seconds, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=seconds * 10 + 120) for _ in workers]
    for worker in workers:
        worker.join()
    return sum(rate for rate, _ in answers), statistics.mean(cpu for _, cpu in answers)


def single_image_ms(checkpoint: Path, bodies: list[bytes], repeats: int = 30) -> dict:
    """Per-image milliseconds, one torch thread, batch of one: the whole handler and each stage.

    The median over the sample mix of each image's best of ``repeats``; the server's c=1
    latency is this plus HTTP, the frontend, the batch delay and the worker round trip.
    """
    import torch

    from handler.decode import request_image
    from handler.preprocess import to_model_input

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    handler = in_process_handler(checkpoint)
    stages = {"handler": [], "decode": [], "preprocess": [], "forward": [], "postprocess": []}

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
        return min(times) * 1000

    try:
        for body in bodies:
            row = [{"body": body}]
            image = request_image(row[0])
            x = torch.stack([to_model_input(image)])
            result = handler.inference(x)
            stages["handler"].append(best(lambda row=row: handle(handler, row)))
            stages["decode"].append(best(lambda body=body: request_image({"body": body})))
            stages["preprocess"].append(best(lambda image=image: to_model_input(image)))
            stages["forward"].append(best(lambda x=x: handler.inference(x)))
            stages["postprocess"].append(best(lambda r=result: handler.postprocess(r)))
    finally:
        torch.set_num_threads(threads)
    return {name: round(statistics.median(values), 3) for name, values in stages.items()}


def ceiling_json(checkpoint: str, files: list[str], batch_size: int, processes: int, seconds: float) -> list:
    """:func:`ceiling` on picture files: [images/s, CPU ms per image], for :mod:`~scripts.bench.serve.baseline`."""
    return list(ceiling(Path(checkpoint), [Path(f).read_bytes() for f in files], batch_size, processes, seconds))


def single_image_ms_json(checkpoint: str, files: list[str], repeats: int) -> dict:
    """:func:`single_image_ms` on picture files."""
    return single_image_ms(Path(checkpoint), [Path(f).read_bytes() for f in files], repeats)
