"""Picture renderers: digits in the styles users send, and pictures that are not digits."""
