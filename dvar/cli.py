"""The `dvar` command line. Each sub-command lives in `dvar/commands/NAME.py`.

dvar's own errors (`DvarError`: a configuration, data or setup mistake) and a missing user
file print as one line `dvar COMMAND: error: ...` with exit status 2; anything else is a
bug (in dvar or a library under it) and propagates as a traceback."""

from __future__ import annotations

import argparse
import importlib
import sys

from dvar import __version__
from dvar.errors import DvarError

COMMANDS = ("generate", "check", "solve", "train", "eval", "report", "analyze", "study", "demo", "reproduce")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dvar",
        description="Train and evaluate masked diffusion vs autoregressive models "
        "on reasoning and planning tasks.",
        epilog="Run `dvar COMMAND --help` for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"dvar {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"dvar.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value items may follow the options (`dvar study run FILE --only x key=value`).
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any("=" not in item or item.startswith("-") for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        return int(args.run(args) or 0)
    except (DvarError, FileNotFoundError) as err:
        # A KeyError subclass would print its message quoted (KeyError.__str__ is repr).
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"dvar {args.command}: error: {message}", file=sys.stderr)
        return 2
