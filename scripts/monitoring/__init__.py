"""Monitoring: the worker exporter, the alert rules renderer, a local Prometheus (make monitor), the docs figure."""
