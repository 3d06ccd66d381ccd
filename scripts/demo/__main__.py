"""Serve the drawing page: draw a digit in a browser, see TorchServe's answer and its explanation.

    python -m scripts.demo                   # http://127.0.0.1:8090/, against `make serve`'s TorchServe
    python -m scripts.demo --port 9000 --host 0.0.0.0

TorchServe must be running (`make demo` starts it first). The page talks only to this server,
which holds the inference key: the browser never sees the key or TorchServe's address.
"""

import errno
import sys
from pathlib import Path

from scripts.cli import OneLineParser
from scripts.demo.server import DemoServer, Relay
from scripts.serving.errors import ServeError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="python -m scripts.demo",
        description=__doc__.split("\n\n")[0],
        epilog="TorchServe must be running: `make serve` (or `make demo`, which starts both).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine)")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on (default 8090; 0 picks a free one)")
    parser.add_argument("--run-dir", type=Path, default=Path("logs"), help="TorchServe's state dir (default: logs)")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    relay = Relay(args.run_dir)
    try:
        torchserve = relay.server()
        page = DemoServer((args.host, args.port), relay, verbose=args.verbose)
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        in_use = error.errno == errno.EADDRINUSE
        reason = "is in use: pick another with --port" if in_use else f"failed: {error.strerror}"
        print(f"error: listening on {args.host}:{args.port} {reason}", file=sys.stderr)
        return 1
    host, port = page.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"Draw a digit at http://{shown}:{port}/  (TorchServe {torchserve.inference}; Ctrl-C stops the page)")
    if args.host not in LOOPBACK:
        print(f"note: listening on {args.host}: anyone who reaches this port can use the model", file=sys.stderr)
    sys.stdout.flush()
    try:
        page.serve_forever()
    except KeyboardInterrupt:
        print("\nThe page has stopped; TorchServe keeps running (`make stop` stops it).")
    finally:
        page.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
