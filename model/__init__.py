"""The seed CNN, one definition shared by training and serving."""

from model.cnn import MNIST_MEAN, MNIST_STD, MnistCNN, normalize

__all__ = ["MNIST_MEAN", "MNIST_STD", "MnistCNN", "normalize"]
