"""
``nemesis-bkg bench``: score ours and the peers on the fixed suite.

``nemesis-bkg bench [inpaint|masks|speed|scale] [--quick] [--out DIR] [--seed N]``:
``inpaint`` (the default) runs `~nemesis_bkg.bench.run_benchmark`;
``masks`` runs the masking benchmark of `nemesis_bkg.bench.masks`;
``speed`` times a whole-map removal against one network call per source
(`nemesis_bkg.bench.speed`); ``scale`` measures Dask throughput, mosaics
and the memory of an 8192x8192 mosaic (`nemesis_bkg.bench.scale`). All
print the Markdown report and write it, with a JSON file of every figure
(and, for ``inpaint``, PNG plots), into ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]

#: Default output folder, relative to the working directory.
DEFAULT_OUT = Path("out") / "bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Add the options of ``nemesis-bkg bench`` to ``parser``.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`

    Examples
    --------
    >>> import argparse
    >>> from nemesis_bkg.bench.command import add_arguments
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["masks", "--quick"])
    >>> args.suite, args.quick, args.seed
    ('masks', True, 0)
    """
    parser.add_argument(
        "suite",
        nargs="?",
        choices=("inpaint", "masks", "speed", "scale"),
        default="inpaint",
        help="what to benchmark: background inpainting against the peers (default), the "
        "source masking, or the speed of a whole-map removal against one network call per "
        "source (2048x2048 SPIRE 250 map, 400 sources; --quick: 512x512, 50 sources), or "
        "scaling with Dask (files on 1 and 2 workers, mosaics, 8192x8192 memory)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one small simulated map per band (about a minute) instead of the full suite",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder for the JSON, Markdown and PNG files (default: {DEFAULT_OUT})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the suite (default: 0)")
    parser.add_argument(
        "--holes",
        choices=("both", "detected", "true"),
        default="both",
        help="inpaint suite: holes from detection, at the true positions, or both (default)",
    )
    parser.add_argument(
        "--no-real-maps",
        dest="real_maps",
        action="store_false",
        help="leave out the real maps of ../shared/data/real_maps even when present",
    )


def _publish(args: argparse.Namespace, name: str, results: dict, report: str) -> int:
    """Print the Markdown report and write it, with the JSON of ``results``, into ``--out``."""
    from .report import to_json

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(to_json(results))
    (args.out / f"{name}.md").write_text(report)
    print(report)
    print(f"wrote {args.out / f'{name}.json'} and {args.out / f'{name}.md'}")
    return 0


def _run_masks(args: argparse.Namespace) -> int:
    from .masks import format_mask_report, run_mask_benchmark

    results = run_mask_benchmark(quick=args.quick, seed=args.seed, real_maps=args.real_maps)
    return _publish(args, "masks", results, format_mask_report(results))


def _run_speed(args: argparse.Namespace) -> int:
    from .speed import format_speed_report, run_speed_benchmark

    size, n_sources = (512, 50) if args.quick else (2048, 400)
    results = run_speed_benchmark(shape=(size, size), n_sources=n_sources, seed=args.seed)
    return _publish(args, "speed", results, format_speed_report(results))


def _run_scale(args: argparse.Namespace) -> int:
    from .scale import format_scale_report, run_scale_benchmark

    results = run_scale_benchmark(quick=args.quick, seed=args.seed)
    return _publish(args, "scale", results, format_scale_report(results))


def _run_inpaint(args: argparse.Namespace) -> int:
    from .report import format_report
    from .run import run_benchmark

    results = run_benchmark(
        quick=args.quick,
        out=args.out,
        seed=args.seed,
        holes=args.holes,
        real_maps=args.real_maps,
    )
    print(format_report(results))
    written = [path for paths in results["files"].values() for path in paths]
    print(f"wrote {len(written)} files into {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    """
    Run ``nemesis-bkg bench`` with parsed arguments.

    Parameters
    ----------
    args : `argparse.Namespace`
        From a parser prepared by `add_arguments`.

    Returns
    -------
    int
        0 on success.
    """
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s"
    )
    if args.suite == "masks":
        return _run_masks(args)
    if args.suite == "speed":
        return _run_speed(args)
    if args.suite == "scale":
        return _run_scale(args)
    return _run_inpaint(args)
