"""The ``cairn`` command line: one entry point, one sub-command per task.

``main()`` returns an exit code; a configuration error prints one line and
exits with 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from config import ConfigError

#: Sub-command modules, each with ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "engine.commands.serve",
    "engine.commands.db",
    "engine.commands.region",
    "engine.commands.send",
    "engine.commands.load",
    "engine.commands.messages",
    "engine.commands.journal",
    "engine.commands.audit",
    "engine.commands.cdsi",
    "engine.commands.codes",
    "engine.commands.review",
    "engine.commands.patient",
    "engine.commands.org",
    "engine.commands.inventory",
    "engine.commands.report",
    "engine.commands.replay",
    "engine.commands.recall",
    "engine.commands.requirements",
    "engine.commands.coverage",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="cairn",
        description="Cairn immunization information system (HL7 v2 engine).",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML settings file (default: built-in development settings)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cairn`` command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"cairn: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `cairn messages | head`: the reader left; not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
