"""Turn one TorchServe request into a decoded picture, or say what is wrong with it.

TorchServe hands the handler one dict per request, ``{field name: value}``:
a raw body arrives as ``body`` (bytes), a multipart form as one entry per
field, JSON already parsed (a dict) and ``text/*`` as a str.
"""

from __future__ import annotations

import base64
import binascii
import io
import json

from PIL import Image, ImageOps, UnidentifiedImageError

from handler import codecs
from handler.preprocess import draft

# 50 megapixels covers phone cameras; anything larger is refused before it is decoded.
MAX_PIXELS = 50_000_000

# Field names checked first, in order, for the image (multipart field, raw body, JSON key).
IMAGE_FIELDS = ("data", "file", "image", "body")
JSON_IMAGE_KEYS = ("data", "image", "b64", "base64")

NO_CONTENT_TYPE_HINT = (
    "the request body was sent form-encoded (no Content-Type), so it arrives empty: "
    "add -H 'Content-Type: image/png' (or the image's type) to curl --data-binary, or use -F data=@file"
)


class RequestError(ValueError):
    """The request carries no usable image; the message is for the client (HTTP 400)."""


def request_image(row: dict, headers: dict | None = None) -> Image.Image:
    """Return the decoded, upright picture that one request carries."""
    return decode_image(request_bytes(row, headers or {}))


def request_bytes(row: dict, headers: dict) -> bytes:
    """Return the encoded image bytes of one request (raw body, form field or base64 JSON)."""
    if _content_type(headers) == "application/x-www-form-urlencoded":
        raise RequestError(NO_CONTENT_TYPE_HINT)
    name = next((n for n in IMAGE_FIELDS if n in row), None)
    if name is None:
        name = next((n for n in row if _is_image_part(headers.get(n))), None)
    if name is None:
        raise RequestError(
            "no image in the request: send the file as the body (-H 'Content-Type: image/png' --data-binary @f), "
            'as a form field \'data\' (-F data=@f) or as JSON {"data": "<base64>"}'
        )
    value = row[name]
    part_type = _content_type(headers.get(name)) or _content_type(headers)
    if isinstance(value, (bytes, bytearray)) and part_type == "application/json":
        value = _parse_json(value)
    if isinstance(value, dict):
        return _from_json(value)
    if isinstance(value, str):
        return _from_base64(value)
    if isinstance(value, (bytes, bytearray)):
        if not value:
            raise RequestError("the request body is empty: send an image file")
        return bytes(value)
    raise RequestError('a JSON body must be an object like {"data": "<base64 image>"}')


def decode_image(data: bytes) -> Image.Image:
    """Decode any format Pillow reads (colour PNGs by libpng: :mod:`handler.codecs`), refusing decompression
    bombs, with EXIF orientation applied."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise RequestError("the body is not an image Pillow can read (PNG, JPEG, GIF, BMP, WebP, TIFF)") from None
    except Image.DecompressionBombError:
        raise RequestError(f"the image has too many pixels (limit {MAX_PIXELS:,})") from None
    except MemoryError:
        raise
    except Exception as error:  # Pillow's parsers raise all kinds on malformed headers (found by tests/test_fuzz.py)
        raise RequestError(f"the image cannot be decoded: {error}") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise RequestError(f"the image has too many pixels: {width}x{height} (limit {MAX_PIXELS:,})")
    if width == 0 or height == 0:
        raise RequestError("the image has no pixels")
    try:
        # A JPEG decodes straight to small greyscale (DCT scaling): the preprocessing shrinks it anyway.
        draft(image)
        decoded = codecs.decode(image, data)
        if decoded is None:
            image.load()
            decoded = image
        # In place: without an EXIF rotation the default returns a copy of every picture.
        ImageOps.exif_transpose(decoded, in_place=True)
        return decoded
    except MemoryError:
        raise
    except Exception as error:  # e.g. a TIFF whose strip offset is a fraction: TypeError
        raise RequestError(f"the image cannot be decoded (truncated or corrupt): {error}") from None


def _content_type(headers) -> str:
    """The bare MIME type from a header dict (any key case), '' when there is none."""
    if isinstance(headers, dict):
        for key, value in headers.items():
            if key.lower() == "content-type" and isinstance(value, str):
                return value.split(";")[0].strip().lower()
    return ""


def _is_image_part(part_headers) -> bool:
    return _content_type(part_headers).startswith("image/") or _content_type(part_headers) in (
        "application/octet-stream",
        "application/json",
    )


def _parse_json(raw: bytes):
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RequestError('the body is not valid JSON: send {"data": "<base64 image>"}') from None


def _from_json(document: dict) -> bytes:
    key = next((k for k in JSON_IMAGE_KEYS if k in document), None)
    if key is None or not isinstance(document[key], str):
        raise RequestError(
            f'the JSON body has no base64 image: send {{"data": "<base64 image>"}} (got keys {sorted(document)})'
        )
    return _from_base64(document[key])


def _from_base64(text: str) -> bytes:
    if text.startswith("data:") and "," in text:  # a data URL, as canvas.toDataURL() makes
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("the image data is not valid base64") from None
    if not data:
        raise RequestError("the base64 image data is empty")
    return data
