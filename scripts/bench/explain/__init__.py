"""Explanation latency, and whether predictions pay anything for explanations being served.

    python -m scripts.bench.explain                              # -> reports/bench_explain.json
    python -m scripts.bench.explain --baseline-root /tmp/before  # also A/B predictions against that checkout

In-process (one torch thread, as a worker; ``inprocess``): captum's import, one explanation and a
batch of 8, next to one prediction; how far the Integrated Gradients map at each step count is from
a 400-step one. Through TorchServe (config.properties on free loopback ports; ``served``):
sequential explanation and prediction latency, and prediction throughput at concurrency 32 (wrk)
before any explanation and after every worker has served some (captum loaded). With
``--baseline-root`` (a checkout of the bundle without explanations), its archive serves too, and
the two alternate point by point in the same run.
"""
