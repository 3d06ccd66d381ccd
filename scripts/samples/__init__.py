"""The example pictures in samples/, rendered from MNIST."""
