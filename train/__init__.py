"""Training, evaluation and figures for the MNIST CNN."""
