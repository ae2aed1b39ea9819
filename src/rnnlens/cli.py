"""The ``rnnlens`` command line: one subcommand per module in ``rnnlens.commands``.

User errors (``RnnlensError``) become one line on stderr and exit status 2; Ctrl-C exits with 130. A full disk
or quota (ENOSPC, EDQUOT) is a user error too, also when a writer outside ``rnnlens.fsutil`` raises it raw.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
from .exceptions import RnnlensError
from .fsutil import disk_full_reason, is_disk_full

# Each name is a module rnnlens.commands.<name> with add_parser(subparsers) and run(args).
COMMANDS = ("quickstart", "train", "eval", "sample", "sizes", "data", "ngram", "nnn", "baselines", "capture", "gates",
            "cells", "ablate", "curves", "runs", "compare", "errors", "serve", "reproduce", "report", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnlens",
        description="Train character-level RNN/LSTM/GRU language models the way Karpathy, Johnson & Fei-Fei "
        "(2015) did, and look inside them.",
    )
    parser.add_argument("--version", action="version", version=f"rnnlens {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"rnnlens.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"rnnlens.commands.{name}":
                continue  # a command still being written is simply absent
            raise
        module.add_parser(sub)
    return parser


def flag_message(exc: RnnlensError, args: argparse.Namespace) -> str:
    """The error's message with a leading library field name (``epochs must be > 0``) shown as the command's
    flag of that name (``--epochs must be > 0``): library errors name fields, the CLI speaks in flags."""
    message, field = str(exc), getattr(exc, "field", None)
    if field and hasattr(args, field) and message.startswith(field + " "):
        return "--" + field.replace("_", "-") + message[len(field):]
    return message


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="rnnlens: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        threads = getattr(args, "threads", 0)
        if threads:
            if threads < 0:
                raise RnnlensError(f"--threads must be >= 0, got {threads}")
            import torch

            torch.set_num_threads(threads)
        return int(args.func(args) or 0)
    except RnnlensError as exc:
        print(f"rnnlens: error: {flag_message(exc, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnlens: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the safety net for writers that do not go through rnnlens.fsutil
        if not is_disk_full(exc):
            raise
        print(f"rnnlens: error: {disk_full_message(exc)}", file=sys.stderr)
        return 2


def disk_full_message(exc: BaseException) -> str:
    """One line for a raw ENOSPC/EDQUOT error: what failed, where, and what to do."""
    path = getattr(exc, "filename", None)
    where = f" while writing {path}" if path else ""
    return (f"{disk_full_reason(exc)}{where}; free space and run the command again "
            "(files rnnlens writes atomically keep their previous version)")


if __name__ == "__main__":
    sys.exit(main())
