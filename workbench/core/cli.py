"""Conventions shared by every command: `--json` prints machine-readable output, `--reports` names the folder
that measuring commands write their JSON into (default reports/latest)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from workbench.core.errors import UserError
from workbench.core.io import write_report


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


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command's handler: a UserError becomes one line on stderr and exit status 2."""
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
