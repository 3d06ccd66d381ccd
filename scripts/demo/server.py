"""The drawing page's web server: the page's files, and ``POST /api/explain`` relayed to TorchServe.

The browser sends the picture here; this server reads the inference key from TorchServe's key file
and calls ``/explanations/<model>`` itself, so the key and TorchServe's address stay on the server.
Answers are TorchServe's JSON; every failure is ``{"error": "<one readable sentence>"}``.
"""

import json
import mimetypes
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import requests

from scripts.serving.errors import ServeError
from scripts.serving.process import Server

STATIC = Path(__file__).resolve().parent / "static"
# TorchServe's own limit (config.properties max_request_size): a larger upload could never be answered.
MAX_UPLOAD = 16 * 1024 * 1024
TORCHSERVE_TIMEOUT = 60.0
# The page loads only its own files; its scripts can reach only this server.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Relay:
    """TorchServe as the page reaches it: the server recorded in ``run_dir``, its key read per request."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def server(self) -> Server:
        server = Server.load(self.run_dir)
        if server is None:
            raise ServeError("TorchServe is not running: `make serve` starts it")
        return server

    def explain(self, picture: bytes, content_type: str, target: str | None) -> tuple[int, bytes]:
        """(status, JSON body) for one picture: TorchServe's answer, or an error the page can show."""
        try:
            server = self.server()
            # Read on every request: `make renew-key` replaces the key while the page is open.
            headers = server.auth("inference")
        except ServeError as error:
            return HTTPStatus.SERVICE_UNAVAILABLE, error_body(str(error))
        fields = {"target": target} if target else None
        try:
            response = requests.post(
                f"{server.inference}/explanations/{server.model}",
                files={"data": ("picture", picture, image_type(content_type))},
                data=fields,
                headers=headers,
                timeout=TORCHSERVE_TIMEOUT,
            )
        except requests.RequestException as error:
            return HTTPStatus.BAD_GATEWAY, error_body(f"TorchServe cannot be reached: {type(error).__name__}")
        if response.status_code == 200:
            return HTTPStatus.OK, response.content
        return relayed_error(response)


def image_type(content_type: str) -> str:
    """The upload's type when it is an image's; otherwise octet-stream, so the handler decodes it as a picture.

    (A text/* part would reach the handler as base64 text, and a wrong file would get a base64 message.)
    """
    bare = (content_type or "").split(";")[0].strip().lower()
    return bare if bare.startswith("image/") else "application/octet-stream"


def relayed_error(response: requests.Response) -> tuple[int, bytes]:
    """TorchServe's error as one sentence: the handler's 4xx message as is, its own errors explained."""
    try:
        body = response.json()
        message, kind = body.get("error") or body.get("message") or "", body.get("type")
    except (ValueError, AttributeError):
        message, kind = "", None
    # TorchServe 0.12 refuses a wrong or expired key with a 400 of this type.
    if kind == "InvalidKeyException" or response.status_code in (401, 403):
        return HTTPStatus.BAD_GATEWAY, error_body(
            "TorchServe refused the inference key (keys expire after 60 minutes): `make renew-key` replaces it"
        )
    if 400 <= response.status_code < 500 and response.status_code != 404:
        return response.status_code, error_body(message or f"TorchServe answered HTTP {response.status_code}")
    return HTTPStatus.BAD_GATEWAY, error_body(
        f"TorchServe answered HTTP {response.status_code}" + (f": {message}" if message else "")
    )


def static_file(path: str) -> Path | None:
    """The page's file for a URL path (``/`` is index.html), None for anything outside static/."""
    if path in ("/", "/index.html"):
        name = "index.html"
    elif path.startswith("/static/"):
        name = path.removeprefix("/static/")
    else:
        return None
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    asset = STATIC / name
    return asset if asset.is_file() else None


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class DemoHandler(BaseHTTPRequestHandler):
    """GET the page and its files; POST a picture to /api/explain."""

    server_version = "mnist-serve-demo"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = urlparse(self.path).path
        asset = static_file(path)
        if asset is None:
            self.answer(HTTPStatus.NOT_FOUND, error_body(f"no page at {path}: the demo is at /"))
            return
        content_type = mimetypes.guess_type(asset.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        self.answer(HTTPStatus.OK, asset.read_bytes(), content_type)

    def do_POST(self):  # noqa: N802
        url = urlparse(self.path)
        if url.path != "/api/explain":
            self.answer(HTTPStatus.NOT_FOUND, error_body(f"no API at {url.path}: POST pictures to /api/explain"))
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self.answer(HTTPStatus.LENGTH_REQUIRED, error_body("send the picture with a Content-Length"))
            return
        if int(length) > MAX_UPLOAD:
            self.close_connection = True
            self.answer(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                error_body(f"the picture is too large: {int(length):,} bytes (limit {MAX_UPLOAD:,})"),
            )
            return
        picture = self.rfile.read(int(length))
        if not picture:
            self.answer(HTTPStatus.BAD_REQUEST, error_body("no picture: draw a digit or choose an image"))
            return
        target = parse_qs(url.query).get("target", [None])[0]
        try:
            status, body = self.server.relay.explain(picture, self.headers.get("Content-Type", ""), target)
        except Exception as error:  # a bug here costs this request a readable 500, not the page
            self.server.report(error, self.client_address)
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, error_body(f"the demo server failed: {error}")
        self.answer(status, body)

    def answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class DemoServer(ThreadingHTTPServer):
    """The page's HTTP server; a request that fails costs one line on stderr, never a traceback."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], relay: Relay, verbose: bool = False):
        super().__init__(address, DemoHandler)
        self.relay = relay
        self.verbose = verbose

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if not isinstance(error, (BrokenPipeError, ConnectionResetError)):  # those: the browser went away
            self.report(error, client_address)

    @staticmethod
    def report(error: BaseException, client_address) -> None:
        sys.stderr.write(f"error: a request from {client_address[0]} failed: {type(error).__name__}: {error}\n")
