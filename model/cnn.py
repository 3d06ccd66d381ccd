"""The product spec's CNN for 28x28 grayscale digits.

This file is also TorchServe's ``--model-file``: it must import nothing but
torch and hold exactly one class (functions are fine).
"""

from torch import nn

# Mean and std of MNIST's training pixels in [0, 1]; the model expects
# inputs normalised with them.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def normalize(x):
    """Map pixel intensities in [0, 1] (white ink on black) to the model's input scale."""
    return (x - MNIST_MEAN) / MNIST_STD


class MnistCNN(nn.Module):
    """Conv-BN-ReLU-Pool x2, dropout, FC(3136->128), FC(128->10); returns logits."""

    def __init__(self, dropout: float = 0.25, fc_dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(fc_dropout),
            nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
