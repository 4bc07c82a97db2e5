"""
``nemesis-bkg simulate``: write a simulated Herschel-like map (with its
truth) to FITS and, optionally, a PNG preview.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..instruments import INSTRUMENTS
from ..io import check_output_path

__all__ = ["add_arguments", "run"]

# The keys of maps.REGIMES, spelled out so that building the parser does not import
# the simulator (tests check that the two agree).
_REGIME_NAMES = ("cirrus", "filamentary", "confusion")


def _shape(text: str) -> tuple[int, int]:
    """Parse ``512``, ``512x256`` or ``512,256`` into ``(ny, nx)``."""
    parts = [part for part in re.split(r"[x,\s]+", text.strip().lower()) if part]
    try:
        sides = [int(part) for part in parts]
    except ValueError:
        sides = []
    if len(sides) == 1:
        sides *= 2
    if len(sides) != 2 or min(sides) < 16:
        raise argparse.ArgumentTypeError(
            f"shape must be N or NYxNX with sides >= 16 (e.g. 512 or 512x1024), got {text!r}"
        )
    return sides[0], sides[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Add the options of ``nemesis-bkg simulate`` to ``parser``.

    Parameters
    ----------
    parser : `argparse.ArgumentParser`

    Examples
    --------
    >>> import argparse
    >>> from nemesis_bkg.simulate.command import add_arguments
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> parser.parse_args(["--shape", "256x128", "-o", "sim.fits"]).shape
    (256, 128)
    """
    parser.add_argument(
        "--shape", type=_shape, default=(512, 512), help="map size, N or NYxNX (default 512)"
    )
    parser.add_argument(
        "--instrument",
        choices=sorted(INSTRUMENTS),
        default="spire250",
        help="Herschel band: beam, pixel scale and unit (default spire250)",
    )
    parser.add_argument(
        "--regime",
        choices=_REGIME_NAMES,
        default="filamentary",
        help="kind of sky: faint cirrus, filamentary cloud or Galactic plane (default filamentary)",
    )
    parser.add_argument(
        "--n-sources", type=int, default=100, help="number of compact sources (default 100)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--background",
        type=Path,
        default=None,
        metavar="FITS",
        help="real map to use as the background instead of a simulated one",
    )
    parser.add_argument(
        "--realistic-beam",
        action="store_true",
        help="inject sources with an elongated beam with sidelobes, not a pure Gaussian",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=None, metavar="FITS", help="FITS file to write"
    )
    parser.add_argument(
        "--png", type=Path, default=None, metavar="PNG", help="PNG preview to write"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def run(args: argparse.Namespace) -> int:
    """
    Simulate the map, write what was asked and print a one-line summary.

    Parameters
    ----------
    args : `argparse.Namespace`
        Parsed options (see `add_arguments`).

    Returns
    -------
    int
        0 on success.

    Raises
    ------
    FileExistsError
        If an output exists and ``--overwrite`` was not given (checked
        before simulating).
    FileNotFoundError
        If the folder of an output does not exist (checked before simulating).

    Examples
    --------
    >>> import argparse, tempfile, pathlib
    >>> from nemesis_bkg.simulate.command import add_arguments, run
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> args = parser.parse_args(["--shape", "64", "--n-sources", "2",
    ...                           "-o", str(folder / "sim.fits")])
    >>> run(args)  # doctest: +ELLIPSIS
    simulated 64x64 spire250 filamentary map (beam 3.02 px): 2 sources, ...
    0
    """
    from . import plot_preview, simulate_map, write_simulated_map

    outputs = [path for path in (args.output, args.png) if path is not None]
    for path in outputs:
        check_output_path(path, overwrite=args.overwrite)
    sim = simulate_map(
        args.shape,
        instrument=args.instrument,
        regime=args.regime,
        background=args.background,
        n_sources=args.n_sources,
        realistic_beam=args.realistic_beam,
        seed=args.seed,
    )
    if args.output is not None:
        write_simulated_map(sim, args.output, overwrite=args.overwrite)
    if args.png is not None:
        plot_preview(sim, args.png, overwrite=args.overwrite)

    snr = sim.catalog["peak_snr"]
    snr_text = f", peak SNR {snr.min():.1f}-{snr.max():.0f}" if len(snr) else ""
    written = f" -> {', '.join(str(path) for path in outputs)}" if outputs else ""
    print(
        f"simulated {sim.data.shape[0]}x{sim.data.shape[1]} {sim.instrument.name} "
        f"{sim.regime} map (beam {sim.fwhm_pixels:.2f} px): {len(sim.catalog)} sources"
        f"{snr_text}, noise {sim.noise_std:g} {sim.data.unit}, "
        f"coverage {sim.coverage.mean():.0%}, filament pixels {sim.filament_mask.mean():.1%}"
        f"{written}"
    )
    return 0
