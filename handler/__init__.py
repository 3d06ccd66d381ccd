"""TorchServe handler for the MNIST CNN, and the preprocessing it shares with evaluation."""
