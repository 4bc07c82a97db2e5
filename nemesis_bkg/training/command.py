"""
``nemesis-bkg train``: train the inpainting network from a configuration
file, resume a run, or export a checkpoint to weights and a model card.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_arguments", "run"]

_EPILOG = (
    "The real maps used as backgrounds are the FITS files of the folder named by the "
    "NEMESIS_BKG_REAL_MAPS environment variable (default: ../shared/data/real_maps next to a "
    "source checkout). Exit status: 0 on success, 1 on an error reported in one line, "
    "2 on a usage error."
)

#: Options that only mean something when training, and only when exporting.
_TRAINING_ONLY = ("resume", "max_minutes", "max_steps")
_EXPORT_ONLY = ("weights", "notes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Add the ``train`` subcommand's arguments to ``parser``.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`
        The parser of ``nemesis-bkg train`` (or of any program that wants
        its options).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> parser.parse_args(["--resume", "--out", "runs/a"]).resume
    True
    """
    parser.epilog = _EPILOG
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML configuration (default: the run's own configuration with "
                             "--resume, else nemesis_bkg/training/configs/default.toml, sized for "
                             "a few CPU cores); with --export, the configuration to "
                             "describe (default: the checkpoint's)")
    parser.add_argument("--out", type=Path, default=Path("runs/default"),
                        help="run folder for checkpoints and log.jsonl (default: runs/default)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run of OUT from OUT/last.ckpt")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in a run folder that holds a run (its last.ckpt, "
                             "best.ckpt and log.jsonl are deleted); with --export, replace an "
                             "existing weights file and model card (needed to replace the "
                             "bundled weights)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="total training minutes, across resumes (overrides the config)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="total training steps (overrides the config)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument("--export", type=Path, default=None, metavar="CKPT",
                        help="instead of training, write weights and model card from CKPT")
    parser.add_argument("--weights", type=Path, default=None,
                        help="with --export: weights file to write (default: the bundled "
                             "weights inside the package, which needs --overwrite); the model "
                             "card MODEL_CARD.md is written next to it")
    parser.add_argument("--notes", default=None,
                        help="with --export: text for the model card's Notes section")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_options(args: argparse.Namespace) -> None:
    """Refuse options that the chosen action would silently ignore."""
    ignored = _TRAINING_ONLY if args.export is not None else _EXPORT_ONLY
    given = [f"--{name.replace('_', '-')}" for name in ignored
             if getattr(args, name) not in (None, False)]
    if given:
        action = "--export" if args.export is not None else "training (no --export)"
        raise ValueError(f"{', '.join(given)} has no effect with {action}; leave it out")


def run(args: argparse.Namespace) -> int:
    """
    Run ``nemesis-bkg train``.

    Parameters
    ----------
    args : `argparse.Namespace`
        The options of `add_arguments`, parsed.

    Returns
    -------
    int
        The exit status: 0 on success (errors are raised for the caller to
        report, as ``nemesis-bkg`` does).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> run(parser.parse_args(["--notes", "a note"]))
    Traceback (most recent call last):
    ...
    ValueError: --notes has no effect with training (no --export); leave it out
    """
    _check_options(args)
    from .config import DEFAULT_CONFIG, checkpoint_config, load_config

    if args.export is not None:
        from .export import export_checkpoint

        options = {"notes": args.notes or "", "overwrite": args.overwrite}
        if args.weights is not None:
            options["weights"] = args.weights
        if args.config is not None:
            options["config"] = load_config(args.config)
        metrics = export_checkpoint(args.export, **options)
        print(json.dumps(metrics, indent=1))
        return 0
    from .loop import train

    if args.config is not None:
        config = load_config(args.config)
    elif args.resume and (args.out / "last.ckpt").is_file():
        # A resumed run keeps its own configuration unless another is given.
        config = checkpoint_config(args.out / "last.ckpt")
    else:
        config = load_config(DEFAULT_CONFIG)
    metrics = train(config, args.out, resume=args.resume, overwrite=args.overwrite,
                    max_minutes=args.max_minutes, max_steps=args.max_steps, device=args.device,
                    progress=not args.no_progress)
    print(json.dumps(metrics, indent=1))
    return 0
