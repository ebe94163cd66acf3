"""Entry point of the ``harness`` console script.

Every user mistake ends as one line on stderr (``harness: error: ...``) and exit code 2;
a traceback means a bug in this project.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from harness.runtime.worker import say_once
from harness_cli.errors import RunFailure, UsageError, message

# One module per subcommand, each with ``register(subparsers)``; heavy imports stay in the handlers,
# so ``harness --help`` and ``harness hostfile check`` start fast.
SUBCOMMANDS = ("hostfile", "data", "train", "report", "bench", "sweep", "project", "experiment", "cluster")
EXIT_USAGE = 2
EXIT_FAILURE = 1


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag prints one line (no usage block) and exits 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``harness`` parser with every subcommand registered."""
    parser = _Parser(prog="harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"harness_cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``harness`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "collective_timeout_s", None) is not None:  # launched workers inherit it
            os.environ["HOROVOD_GLOO_TIMEOUT_SECONDS"] = str(args.collective_timeout_s)
        if getattr(args, "np", None) is not None:
            from harness_cli.launching import relaunch

            return relaunch(args, argv)
        return int(args.func(args) or 0)
    except UsageError as exc:
        say_once(f"harness: error: {message(exc)}", everywhere=exc.local)
        return EXIT_USAGE
    except RunFailure as exc:
        say_once(f"harness: error: {message(exc)}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
