"""Compare the samples' model inputs with their golden copies, or rewrite them (--write)."""

import argparse
import sys

import numpy as np

from tests.golden import GOLDEN, TOLERANCE, read_golden, sample_inputs, write_golden


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.golden",
        description="Golden outputs of to_model_input for samples/: report the differences, or --write them.",
    )
    parser.add_argument("--write", action="store_true", help=f"rewrite {GOLDEN.name} from the current preprocessing")
    args = parser.parse_args(argv)
    if args.write:
        print(f"wrote {write_golden()}")
        return 0
    if not GOLDEN.is_file():
        print(f"error: no {GOLDEN}: run with --write", file=sys.stderr)
        return 1
    golden, current = read_golden(), sample_inputs()
    differ = False
    for name in sorted(golden.keys() | current.keys()):
        if name not in golden or name not in current:
            print(f"{name:<24} {'new sample' if name in current else 'no longer a model input'}")
            differ = True
            continue
        gap = float(np.abs(current[name] - golden[name]).max())
        differ |= gap > TOLERANCE
        print(f"{name:<24} max |difference| {gap:.3g}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
