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


def trained_line(summary: dict[str, Any], figure: str, initial: float | None, final: float | None,
                 extra: str = "") -> str:
    """The one-line human summary of a training command: steps, why it stopped, time, where, and the held-out
    `figure` from its start (or "resumed") to its end; a resumed run that had already finished says so."""
    where = summary.get("out", summary.get("run"))
    if summary.get("already_finished"):
        return f"{where} had already finished at step {summary.get('steps')}; nothing to do"
    start = "resumed" if initial is None else f"{initial:.3f}"
    return (f"trained {summary['steps']} steps ({summary['stopped_by']}) in {summary['elapsed_s']:.0f} s -> {where}; "
            f"held-out {figure} {start} -> {final:.3f}{extra}")


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
