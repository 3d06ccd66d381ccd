"""The drawing page: draw or upload a digit, see the answer, the 28x28 model input and why (``make demo``)."""
