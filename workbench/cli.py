"""`python -m workbench <command> ...`: one subcommand per capability.

Each capability lives in its subpackage's ``cli.py`` with a ``register(subparsers)`` function, so this file
only lists them. Handlers print a human summary by default and JSON with ``--json``; measuring commands also
write their JSON into the run's report folder (``--reports``, default ``reports/latest``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Callable

from workbench.io import write_report

# command name -> module holding its `register(subparsers)`; imported lazily so `--help` stays fast.
COMMANDS = {
    "data": "workbench.data.cli",
    "tokenizer": "workbench.tokenizer.cli",
    "lm": "workbench.lm.cli",
    "bench": "workbench.bench.cli",
    "codec": "workbench.codec.cli",
    "demo": "workbench.demo",
    "acoustic": "workbench.acoustic.cli",
    "reproduce": "workbench.reproduce",
}


class UserError(Exception):
    """A problem with the user's input or setup: printed as one clear line, no traceback."""


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a summary")
    parser.add_argument("--reports", default=None, help="report folder for measured figures (default reports/latest)")


def emit(args: argparse.Namespace, payload: dict[str, Any], human: Callable[[dict], str] | None = None,
         report_name: str | None = None) -> None:
    """Print `payload` (JSON or human) and, for measuring commands, write it to the report folder."""
    if report_name:
        path = write_report(report_name, payload, getattr(args, "reports", None))
        if not args.json:
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(human(payload) if human else json.dumps(payload, indent=2, default=str))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
