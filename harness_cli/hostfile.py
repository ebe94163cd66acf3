"""``harness hostfile check FILE``: syntax, slots > 0, duplicates; one line per problem."""

from __future__ import annotations

import argparse
import sys

from harness.runtime.errors import ConfigError
from harness.runtime.hostfile import LAUNCHERS, parse_hostfile


def check(args: argparse.Namespace) -> int:
    """Print every problem (exit 2) or a one-line summary (exit 0)."""
    try:
        parsed = parse_hostfile(args.file, launcher=args.launcher)
    except OSError as exc:
        raise ConfigError(f"cannot read hostfile {args.file}: {exc.strerror}") from None
    if parsed.problems:
        for problem in parsed.problems:
            print(f"harness: error: {problem}", file=sys.stderr)
        return 2
    print(f"{args.file}: ok ({parsed.dialect}, {len(parsed.hosts)} hosts, {parsed.total_slots} slots)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """``harness hostfile check FILE [--launcher any|mpirun|horovodrun]``."""
    hostfile = sub.add_parser("hostfile", help="work with hostfiles")
    hsub = hostfile.add_subparsers(dest="hostfile_command", metavar="ACTION", required=True)
    chk = hsub.add_parser("check", help="validate a hostfile: syntax, slots > 0, duplicate hosts")
    chk.add_argument("file")
    chk.add_argument("--launcher", choices=LAUNCHERS, default="any",
                     help="check against this launcher's rules (default: the file's own dialect)")
    chk.set_defaults(func=check)
