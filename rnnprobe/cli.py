"""The ``rnnprobe`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__
from .errors import RnnprobeError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnprobe",
        description="Record, analyse and compare the hidden states of recurrent networks.",
    )
    parser.add_argument("--version", action="version", version=f"rnnprobe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="record a small built-in recurrent model and summarise the Recording")
    demo.add_argument("--out", default=None, help="directory to save the recording to (zarr store)")
    demo.add_argument("--quick", action="store_true", help="fewer stimuli, for a fast check")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rnnprobe`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(out=args.out, quick=args.quick, progress=not args.no_progress)
    except RnnprobeError as exc:
        print(f"rnnprobe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
