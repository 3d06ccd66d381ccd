"""Serving benchmark: TorchServe's images/s and latency against the model's own in-process ceiling.

    python -m scripts.bench.serve                         # the default sweep -> reports/bench_serve.{json,png,md}
    python -m scripts.bench.serve --configs default w2-b1-d0 --concurrency 1 32
    python -m scripts.bench.serve --quick --attach logs   # a few hundred requests against `make serve`'s server

Each configuration (``w<workers>-b<batch size>-d<max batch delay ms>``, or ``default`` for the
shipped configuration) runs the bundle's real archive and configuration on free loopback ports
(:func:`scripts.serving.process.serve_checkpoint`). wrk sends a fixed number of real single-digit
picture uploads from samples/ (one load's files: PNGs, real pictures, the photo) with the inference
key, after a warm-up, at each concurrency. ``--baseline TREE`` serves another checkout's code beside
this one's, the two taking turns.

- :mod:`~scripts.bench.serve.loads`: which pictures each load sends;
- :mod:`~scripts.bench.serve.baseline`: the baseline checkout's archive and in-process ceiling;
- :mod:`~scripts.bench.serve.ceiling`: the handler's own work in-process, without HTTP;
- :mod:`~scripts.bench.serve.load`: the wrk driver (``wrk.lua``);
- :mod:`~scripts.bench.serve.probes`: CPU time, JIT compiler time and TorchServe's metrics around a point;
- :mod:`~scripts.bench.serve.sweep`: configurations, warm-up and points;
- :mod:`~scripts.bench.serve.schema`: what a point holds, declared once;
- :mod:`~scripts.bench.serve.report`: the JSON, the markdown table and the plot;
- :mod:`~scripts.bench.serve.cli`: the command line.
"""
