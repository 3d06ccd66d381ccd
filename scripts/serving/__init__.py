"""The serving library: everything that builds, configures, starts, stops or talks to TorchServe.

- :mod:`~scripts.serving.paths`: where things are (the project's files, TorchServe's commands);
- :mod:`~scripts.serving.config`: the one place that renders a configuration (ports, workers, batching);
- :mod:`~scripts.serving.archive`: the model archive (``.mar``) with its per-model settings;
- :mod:`~scripts.serving.process`: starting, finding and stopping a TorchServe process;
- :mod:`~scripts.serving.client`: the inference, management, token and metrics APIs;
- :mod:`~scripts.serving.cli`: ``python -m scripts.serving``, behind the Makefile's serving targets.
"""
