"""`python -m workbench <command> ...`: one subcommand per capability.

Each stage's commands live in its package's ``cli.py`` with a ``register(subparsers)`` function, so this file
only lists them. Handlers print a human summary by default and JSON with ``--json``; measuring commands also
write their JSON into the run's report folder (``--reports``, default ``reports/latest``).
"""

from __future__ import annotations

import argparse
import importlib

from workbench.core.cli import run_command
from workbench.core.errors import UserError

__all__ = ["COMMANDS", "SUBCOMMANDS", "UserError", "build_parser", "main"]

# command name -> module holding its `register(subparsers)`; imported lazily so `--help` stays fast.
COMMANDS = {
    "data": "workbench.data.cli",
    "tokenizer": "workbench.tokenizer.cli",
    "lm": "workbench.lm.cli",
    "codec": "workbench.codec.cli",
    "acoustic": "workbench.acoustic.cli",
    "bench": "workbench.bench.cli",
    "extrapolate": "workbench.pipeline.extrapolate",
    "demo": "workbench.pipeline.demo",
    "reproduce": "workbench.pipeline.reproduce",
    "report": "workbench.pipeline.report",
}
# subcommands of a stage's command that span stages (the layering keeps them out of the stage's cli.py): name ->
# module holding `register_under(subparsers)`, called once the commands above exist
SUBCOMMANDS = {
    "lm probes": "workbench.pipeline.probes",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        importlib.import_module(module).register(sub)
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).register_under(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))
