"""The ``cairn`` command line: one entry point, one sub-command per task.

``main()`` returns an exit code; a configuration error prints one line and
exits with 2.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

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


class _Parser(argparse.ArgumentParser):
    """An argument parser that names a mistyped option, not the word after it.

    ``cairn messages --sendr X`` made argparse skip the unknown ``--sendr``
    and complain that ``X`` is not an ACTION; the user typed no ACTION.
    """

    _given: list[str]

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def _options(self) -> Iterator[str]:
        for action in self._actions:
            yield from action.option_strings
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    if isinstance(sub, _Parser):
                        yield from sub._options()

    def error(self, message: str) -> NoReturn:
        if "invalid choice" in message:
            known = sorted(set(self._options()))
            for token in getattr(self, "_given", []):
                name = token.split("=", 1)[0]
                if name.startswith("--") and not any(o.startswith(name) for o in known):
                    message = f"unrecognized option {name}"
                    close = difflib.get_close_matches(name, known, n=1)
                    if close:
                        message += f"; did you mean {close[0]}?"
                    break
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    parser = _Parser(
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
