"""
``nemesis-bkg demo``: the whole job on a simulated Herschel map whose truth
is known, with a FITS product, a PNG quick-look and a printed summary.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from astropy.nddata import NDData

from ..io import check_output_path
from ..remover import CompactSourceRemover
from ..results import RemovalResult
from ..simulate import SimulatedMap, simulate_map
from .remove import reworded

__all__ = ["add_arguments", "plot_quicklook", "run"]

#: The demo map: a bright filamentary SPIRE 250 um field, fixed seed.
DEMO_MAP = {"shape": (512, 512), "instrument": "spire250", "regime": "filamentary",
            "n_sources": 80, "seed": 2025}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``nemesis-bkg demo``."""
    parser.add_argument("-o", "--output", default="demo.fits", metavar="OUT.fits",
                        help="output FITS file (default: demo.fits)")
    parser.add_argument("--png", default="demo.png", metavar="OUT.png",
                        help="quick-look image (default: demo.png)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def plot_quicklook(data: NDData, result: RemovalResult, path: str | Path) -> None:
    """
    Save a PNG of data / background / sources / holes side by side.

    Parameters
    ----------
    data : `~astropy.nddata.NDData`
        The map the sources were removed from.
    result : `~nemesis_bkg.results.RemovalResult`
        Its removal.
    path : str or path-like
        The PNG file to write.
    """
    # A bare Figure draws without pyplot, so the caller's backend and figures are left alone.
    from matplotlib.figure import Figure

    values = np.asarray(data.data)
    finite = values[np.isfinite(values)]
    low, high = np.percentile(finite, [1, 99.5])
    panels = [
        ("data", values, (low, high)),
        ("background", result.background.data, (low, high)),
        ("sources", result.sources.data, None),
        ("holes", result.source_mask.astype(float), (0, 1)),
    ]
    figure = Figure(figsize=(16, 4.4), layout="constrained")
    axes = figure.subplots(1, 4)
    for axis, (title, image, limits) in zip(axes, panels, strict=True):
        if limits is None:
            scale = np.nanpercentile(np.abs(image), 99.5) or 1.0
            limits = (-0.1 * scale, scale)
        axis.imshow(image, origin="lower", cmap="magma", vmin=limits[0], vmax=limits[1])
        axis.set_title(title)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.savefig(path, dpi=90)


def summarise(sim: SimulatedMap, result: RemovalResult) -> str:
    """A few lines comparing the result with the simulation's truth."""
    holes = result.source_mask & np.isfinite(sim.background)
    residual = result.background.data[holes] - sim.background[holes]
    rms_in_holes = float(np.sqrt(np.mean(residual**2))) if holes.any() else float("nan")
    bright = sim.catalog["peak_snr"] >= 5
    found = int(np.count_nonzero(
        result.source_mask[np.round(sim.catalog["y"]).astype(int),
                           np.round(sim.catalog["x"]).astype(int)][bright]))
    return (
        f"demo map: {sim.data.shape[1]}x{sim.data.shape[0]} {sim.instrument.name}, "
        f"beam {sim.fwhm_pixels:.2f} px, {len(sim.catalog)} injected sources\n"
        f"masked {len(result.catalog)} sources; {found}/{int(bright.sum())} injected sources "
        f"with peak SNR >= 5 lie in a hole\n"
        f"background error in the holes: {rms_in_holes / sim.noise_std:.2f} x the noise (RMS)"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``nemesis-bkg demo``."""
    # Both outputs are checked before the work, so that neither is written alone.
    for path in (args.output, args.png):
        try:
            check_output_path(path, overwrite=args.overwrite)
        except FileExistsError as exc:
            raise reworded(exc) from exc
    sim = simulate_map(DEMO_MAP["shape"], **{k: v for k, v in DEMO_MAP.items() if k != "shape"})
    start = time.perf_counter()
    result = CompactSourceRemover(device=args.device, progress=True).remove(sim.data)
    elapsed = time.perf_counter() - start
    result.write(args.output, overwrite=args.overwrite)
    plot_quicklook(sim.data, result, args.png)
    print(summarise(sim, result))
    print(f"removal took {elapsed:.1f} s; wrote {args.output} and {args.png}")
    return 0
