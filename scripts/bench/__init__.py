"""Benchmarks of serving, training, preprocessing, explanations and the calibration's cost."""
