"""
The ``nemesis-bkg`` command.

Each subcommand lives in the module that does the work; that module
defines ``add_arguments(parser)`` and ``run(args) -> int``. This file only
dispatches, so ``nemesis-bkg --help`` stays fast (modules import lazily).
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

#: subcommand -> (module holding add_arguments/run, one-line help)
SUBCOMMANDS = {
    "remove": ("nemesis_bkg.commands.remove", "remove the compact sources of FITS maps"),
    "demo": ("nemesis_bkg.commands.demo", "the whole job on a bundled simulated Herschel map"),
    "simulate": ("nemesis_bkg.simulate.command", "write a simulated Herschel-like map to FITS"),
    "bench": ("nemesis_bkg.bench.command", "score ours and the peers on a fixed suite"),
    "train": ("nemesis_bkg.training.command", "train the inpainting network or export its weights"),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``nemesis-bkg`` with every subcommand."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="nemesis-bkg",
        description="Compact-source removal and backgrounds for far-infrared maps.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(subparser)
        subparser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """
    Run ``nemesis-bkg`` with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status: 0 on success, 1 on a failure the command
    reports in one line, 2 on a usage error (from argparse).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except (ValueError, TypeError, OSError, FileExistsError) as exc:
        print(f"nemesis-bkg {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nemesis-bkg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
