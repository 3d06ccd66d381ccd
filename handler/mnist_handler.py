"""TorchServe handler: pictures of digits in, ``{"digit", "confidence", "probabilities", "is_digit"}`` out.

The archive carries this module (``--handler``), ``model/cnn.py`` (``--model-file``),
the weights and the ``model`` and ``handler`` packages (extra files), so the worker
imports the same preprocessing that evaluation uses. With the checkpoint's calibration
(``calibration.pt``, see ``model/calibration.py``) the confidence is tempered and every answer
says whether the picture looks like a handwritten digit at all. TorchServe requires exactly one
class in this module.
"""

import json
import logging
import os
import zlib
from pathlib import Path

import torch
from ts.handler_utils.timer import timed
from ts.torch_handler.base_handler import BaseHandler

from handler.batch import Batch
from handler.decode import RequestError, request_image
from handler.explain import Explanations
from handler.preprocess import PreprocessError, to_model_input
from handler.ts_compat import quiet_per_batch_log
from model.calibration import Answer, answer, load_calibration
from model.inference import for_inference

logger = logging.getLogger(__name__)

# HTTP status lines stay standard; the JSON body says what is wrong.
REASONS = {400: "Bad Request", 500: "Internal Server Error"}
NO_INSTANCES = 'no pictures in the request: send {"instances": [{"data": "<base64 picture>"}, ...]}'
CALIBRATION_FILE = "calibration.pt"  # where scripts.serving.archive.build_archive puts it
NOT_A_DIGIT_NOTE = (
    "this picture does not look like a handwritten digit (an object, a photo, text or a drawing?): "
    "digit and confidence are only the model's best guess"
)


class MnistHandler(Explanations, BaseHandler):
    """Decode each request, run the good ones as one batch, answer 400 for the bad ones.

    The stages are BaseHandler's hooks under ``@timed``: with ``handler: profile: true`` in the model
    config each batch reports ``ts_handler_preprocess``, ``ts_handler_inference`` and
    ``ts_handler_postprocess`` (milliseconds) through TorchServe's metrics (handler/metrics.yaml).
    Explanations come from :class:`handler.explain.Explanations`.
    """

    calibration = None  # the archive's model.calibration.Calibration, once initialize() has loaded it

    def initialize(self, context):
        # Workers, not threads, scale this small CNN: one torch thread each. Intra-op threads
        # spin-wait for cores that the frontend, the other workers and the clients also need
        # (docs/performance.md). OMP_NUM_THREADS wins when set.
        if "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(1)
        super().initialize(context)
        quiet_per_batch_log()
        self.model = for_inference(self.model)
        self.calibration = load_calibration(Path(context.system_properties.get("model_dir"), CALIBRATION_FILE))
        if self.calibration is None:
            logger.warning("no %s in the archive: plain softmax confidence, no not-a-digit check", CALIBRATION_FILE)
        else:
            check = "on" if self.calibration.check is not None else "off (fitted without Fashion-MNIST)"
            logger.info("calibrated: temperature %.3f, not-a-digit check %s", self.calibration.temperature, check)
        # zlib is Pillow's PNG inflater too: "zlib-ng" here means scripts/setup/build_zlib_ng.sh's library is in use.
        logger.info(
            "MnistHandler ready on %s with %d CPU thread(s), zlib %s",
            self.device,
            torch.get_num_threads(),
            zlib.ZLIB_RUNTIME_VERSION,
        )

    @timed
    def preprocess(self, data) -> Batch:
        """Decode and preprocess each request: the good ones' model inputs, a client message per bad one."""
        errors = {}
        tensors = []
        if not data:  # KServe's envelope found no instances in the request
            errors[0] = (400, NO_INSTANCES)
            data = []
        for idx, row in enumerate(data):
            try:
                headers = self.context.get_all_request_header(self._request_of(idx)) if self.context else {}
                tensors.append(to_model_input(request_image(row, headers)))
            except (RequestError, PreprocessError) as error:
                errors[idx] = (400, str(error))
            except Exception:  # a bug must cost this request, not the whole batch or the worker
                logger.exception("preprocessing request %d failed", idx)
                errors[idx] = (500, "the server could not process this image")
        return Batch(torch.stack(tensors) if tensors else torch.empty(0, 1, 28, 28), errors)

    @timed
    def inference(self, data, *args, **kwargs) -> Batch:
        """One forward pass for the batch's good requests: the batch with its :class:`model.calibration.Answer`."""
        batch = data if isinstance(data, Batch) else Batch.of(data)
        inputs = batch.inputs
        if len(inputs) == 0:
            return batch.answered(Answer(inputs.new_empty(0, 10), None, None))
        with torch.inference_mode():
            on_device = inputs.to(self.device, memory_format=torch.channels_last)
            outputs = answer(self.model, on_device, self.calibration)
            result = Answer(*(t.cpu() if t is not None else None for t in outputs))
        metrics = self.context.metrics if self.context else None
        if metrics is not None:
            metrics.add_counter("InferenceBatches", 1, None, [])
            metrics.add_counter("InferenceImages", len(inputs), None, [])
            flagged = len(inputs) - int(result.is_digit.sum()) if result.is_digit is not None else 0
            if flagged:
                metrics.add_counter("NotADigitImages", flagged, None, [])
        return batch.answered(result)

    @timed
    def postprocess(self, data: Batch) -> list:
        """One JSON answer per request, in request order; errors get their status code."""
        return self.respond(self.answers(data))

    def answers(self, batch: Batch) -> list[dict]:
        """An answer per request of the batch, in order: the prediction (flagged when not a digit), or its error."""
        result = batch.answer
        predictions = iter(result.probabilities.tolist())
        flags = iter(result.is_digit.tolist()) if result.is_digit is not None else None
        answers = []
        for idx in range(batch.size):
            if idx in batch.errors:
                code, message = batch.errors[idx]
                answers.append({"code": code, "error": message})
                continue
            p = next(predictions)
            digit = max(range(10), key=p.__getitem__)
            body = {"digit": digit, "confidence": round(p[digit], 6), "probabilities": [round(v, 6) for v in p]}
            if flags is not None:
                body["is_digit"] = next(flags)
                if not body["is_digit"]:
                    body["note"] = NOT_A_DIGIT_NOTE
            answers.append(body)
        return answers

    def respond(self, answers: list[dict]) -> list:
        """Each request's answer as JSON with its status; behind KServe's envelope, the instances' answers as objects.

        KServe's envelope turns one request's instances into rows and wraps whatever comes back into
        ``{"predictions": [...]}``: a bad instance makes the whole request a 400, with each
        instance's answer or error in its place.
        """
        if self.context is None:
            return [json.dumps(answer) for answer in answers]
        if not self._enveloped(len(answers)):
            for idx, answer in enumerate(answers):
                if "error" in answer:
                    self.context.set_response_status(answer["code"], REASONS[answer["code"]], idx)
                self.context.set_response_content_type(idx, "application/json")
            return [json.dumps(answer) for answer in answers]
        code = max((answer["code"] for answer in answers if "error" in answer), default=None)
        if code is not None:
            self.context.set_response_status(code, REASONS[code], 0)
        self.context.set_response_content_type(0, "application/json")
        return answers

    def _requests(self) -> int:
        return len(getattr(self.context, "request_processor", None) or []) or 1

    def _request_of(self, row: int) -> int:
        """The request a row came in: itself, or behind KServe's envelope the one request it was an instance of."""
        return min(row, self._requests() - 1)

    def _enveloped(self, rows: int) -> bool:
        return bool(os.environ.get("TS_SERVICE_ENVELOPE")) or rows != self._requests()
