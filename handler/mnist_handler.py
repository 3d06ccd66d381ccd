"""TorchServe handler: pictures of digits in, ``{"digit", "confidence", "probabilities"}`` out.

The archive carries this module (``--handler``), ``model/cnn.py`` (``--model-file``),
the weights and the ``model`` and ``handler`` packages (extra files), so the worker
imports the same preprocessing that evaluation uses. TorchServe requires exactly one
class in this module.
"""

import json
import logging
import os
import zlib

import torch
from ts.handler_utils.timer import timed
from ts.torch_handler.base_handler import BaseHandler

from handler import explain
from handler.decode import RequestError, request_image
from handler.preprocess import PreprocessError, to_model_input
from handler.ts_compat import quiet_per_batch_log
from model.inference import for_inference

logger = logging.getLogger(__name__)

# HTTP status lines stay standard; the JSON body says what is wrong.
REASONS = {400: "Bad Request", 500: "Internal Server Error"}


class MnistHandler(BaseHandler):
    """Decode each request, run the good ones as one batch, answer 400 for the bad ones."""

    def initialize(self, context):
        # Workers, not threads, scale this small CNN: one torch thread each. Intra-op threads
        # spin-wait for cores that the frontend, the other workers and the clients also need
        # (docs/performance.md). OMP_NUM_THREADS wins when set.
        if "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(1)
        super().initialize(context)
        quiet_per_batch_log()
        self.model = for_inference(self.model)
        self.errors = {}
        # zlib is Pillow's PNG inflater too: "zlib-ng" here means scripts/build_zlib_ng.sh's library is in use.
        logger.info(
            "MnistHandler ready on %s with %d CPU thread(s), zlib %s",
            self.device,
            torch.get_num_threads(),
            zlib.ZLIB_RUNTIME_VERSION,
        )

    def preprocess(self, data):
        """Return the (n_good, 1, 28, 28) batch; remember a client message per bad position."""
        self.errors = {}
        tensors = []
        for idx, row in enumerate(data):
            try:
                headers = self.context.get_all_request_header(idx) if self.context else {}
                tensors.append(to_model_input(request_image(row, headers)))
            except (RequestError, PreprocessError) as error:
                self.errors[idx] = (400, str(error))
            except Exception:  # a bug must cost this request, not the whole batch or the worker
                logger.exception("preprocessing request %d failed", idx)
                self.errors[idx] = (500, "the server could not process this image")
        if not tensors:
            return torch.empty(0, 1, 28, 28)
        return torch.stack(tensors)

    def inference(self, data, *args, **kwargs):
        """One forward pass for the whole batch; class probabilities on the CPU."""
        if len(data) == 0:
            return data.new_empty(0, 10)
        with torch.inference_mode():
            inputs = data.to(self.device, memory_format=torch.channels_last)
            probabilities = torch.softmax(self.model(inputs), dim=1).cpu()
        metrics = self.context.metrics if self.context else None
        if metrics is not None:
            metrics.add_counter("InferenceBatches", 1, None, [])
            metrics.add_counter("InferenceImages", len(data), None, [])
        return probabilities

    def postprocess(self, data):
        """One JSON answer per request, in request order; errors get their status code."""
        answers = iter(data.tolist())
        responses = []
        for idx in range(len(data) + len(self.errors)):
            if idx in self.errors:
                code, message = self.errors[idx]
                if self.context:
                    self.context.set_response_status(code, REASONS[code], idx)
                responses.append(json.dumps({"code": code, "error": message}))
            else:
                probabilities = next(answers)
                digit = max(range(10), key=probabilities.__getitem__)
                responses.append(
                    json.dumps(
                        {
                            "digit": digit,
                            "confidence": round(probabilities[digit], 6),
                            "probabilities": [round(p, 6) for p in probabilities],
                        }
                    )
                )
            if self.context:
                self.context.set_response_content_type(idx, "application/json")
        return responses

    def _is_explain(self):
        """True when any request of the batch came through an explanations route (TorchServe checks the first)."""
        return explain.any_requested(self.context)

    @timed
    def explain_handle(self, data_preprocess, raw_data):
        """Explanations for the requests that asked for one, predictions for the others: handler/explain.py."""
        return explain.explain_batch(self, data_preprocess, raw_data)
