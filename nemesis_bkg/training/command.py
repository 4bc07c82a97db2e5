"""
``nemesis-bkg train``: train the inpainting network from a configuration
file, resume a run, or export a checkpoint to weights and a model card.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` subcommand's arguments to ``parser``."""
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML configuration (default: the bundled weights' "
                             "nemesis_bkg/training/configs/default.toml); with --export, "
                             "the configuration to describe (default: the checkpoint's)")
    parser.add_argument("--out", type=Path, default=Path("runs/default"),
                        help="run folder for checkpoints and log.jsonl (default: runs/default)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.ckpt")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="total training minutes, across resumes (overrides the config)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="total training steps (overrides the config)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument("--export", type=Path, default=None, metavar="CKPT",
                        help="instead of training, write weights and model card from CKPT")
    parser.add_argument("--weights", type=Path, default=None,
                        help="with --export: weights file to write (default: the bundled "
                             "weights inside the package)")
    parser.add_argument("--notes", default="",
                        help="with --export: text for the model card's Notes section")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``nemesis-bkg train``; returns the exit status."""
    if args.export is not None:
        from .export import export_checkpoint

        options = {"notes": args.notes}
        if args.weights is not None:
            options["weights"] = args.weights
        if args.config is not None:
            from .config import load_config

            options["config"] = load_config(args.config)
        metrics = export_checkpoint(args.export, **options)
        print(json.dumps(metrics, indent=1))
        return 0
    from .config import DEFAULT_CONFIG, load_config
    from .loop import train

    config = load_config(args.config or DEFAULT_CONFIG)
    metrics = train(config, args.out, resume=args.resume, max_minutes=args.max_minutes,
                    max_steps=args.max_steps, device=args.device,
                    progress=not args.no_progress)
    print(json.dumps(metrics, indent=1))
    return 0
