"""
The holes every method of the benchmark is given, the same for all.

Two hole sets per map: the holes the masking module cuts around the
sources it detects (what a user gets), and the holes it cuts at the true
injected positions (what a perfect detector would give). The reference
case of the design note uses fixed discs at the true positions instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .suite import BenchMap

__all__ = ["HOLE_SETS", "HoleSet", "disc_mask", "make_holes"]

#: Names of the hole sets, in the order they are run.
HOLE_SETS = ("detected", "true")


@dataclass
class HoleSet:
    """
    One set of holes for one map.

    Attributes
    ----------
    name : str
        ``"detected"`` or ``"true"``.
    mask : ndarray of bool
        The pixels every method replaces.
    n_sources : int
        Number of sources the holes were cut for.
    seconds : float
        Wall time of the masking.
    """

    name: str
    mask: np.ndarray
    n_sources: int
    seconds: float


def disc_mask(
    shape: tuple[int, int], x: np.ndarray, y: np.ndarray, radius: np.ndarray | float
) -> np.ndarray:
    """
    Union of discs of the given radii around the given positions.

    Parameters
    ----------
    shape : tuple of int
    x, y : array-like
        Centres (0-based pixels).
    radius : float or array-like
        Radius of each disc in pixels; a pixel is inside when its centre is
        within ``radius`` of the disc centre.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> from nemesis_bkg.bench.holes import disc_mask
    >>> int(disc_mask((9, 9), [4.0], [4.0], 1.0).sum())
    5
    """
    x = np.atleast_1d(np.asarray(x, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    radius = np.broadcast_to(np.asarray(radius, dtype=float), x.shape)
    mask = np.zeros(shape, dtype=bool)
    for centre_x, centre_y, disc_radius in zip(x, y, radius, strict=True):
        # Only the disc's bounding box is evaluated.
        row0 = max(int(centre_y - disc_radius), 0)
        row1 = min(int(centre_y + disc_radius) + 2, shape[0])
        col0 = max(int(centre_x - disc_radius), 0)
        col1 = min(int(centre_x + disc_radius) + 2, shape[1])
        if row0 >= row1 or col0 >= col1:
            continue
        rows, cols = np.ogrid[row0:row1, col0:col1]
        inside = (cols - centre_x) ** 2 + (rows - centre_y) ** 2 <= disc_radius**2
        mask[row0:row1, col0:col1] |= inside
    return mask


def make_holes(bench_map: BenchMap, name: str) -> HoleSet:
    """
    Cut one hole set for a map.

    Parameters
    ----------
    bench_map : `~nemesis_bkg.bench.suite.BenchMap`
    name : {"detected", "true"}
        ``"detected"``: `nemesis_bkg.masking.build_source_mask` finds the
        sources itself; ``"true"``: it cuts holes at the true positions
        (its SNR-adaptive radius rule, from the peak SNR it measures at
        each position, not the simulator's true one). For the reference
        case both are discs of a fixed number of beams at the true
        positions.

    Returns
    -------
    `HoleSet`

    Examples
    --------
    >>> from nemesis_bkg.bench.holes import make_holes
    >>> from nemesis_bkg.bench.suite import reference_map, suite_specs
    >>> spec = [s for s in suite_specs() if s.family == "reference"][0]
    >>> holes = make_holes(reference_map(spec), "true")
    >>> holes.n_sources
    60
    """
    if name not in HOLE_SETS:
        raise ValueError(f"unknown hole set {name!r}; use one of {HOLE_SETS}.")
    catalog = bench_map.catalog
    start = time.perf_counter()
    if bench_map.hole_radius_fwhm is not None:
        mask = disc_mask(
            bench_map.image.shape,
            np.asarray(catalog["x"]),
            np.asarray(catalog["y"]),
            bench_map.hole_radius_fwhm * bench_map.fwhm_pixels,
        )
        return HoleSet(name, mask, len(catalog), time.perf_counter() - start)

    from nemesis_bkg.io import read_image
    from nemesis_bkg.masking import build_source_mask

    image = read_image(bench_map.data)
    if name == "detected":
        source_mask = build_source_mask(image, bench_map.fwhm_pixels)
    else:
        source_mask = build_source_mask(image, bench_map.fwhm_pixels, detect=False, catalog=catalog)
    seconds = time.perf_counter() - start
    mask = np.asarray(source_mask.mask, dtype=bool) & bench_map.coverage
    return HoleSet(name, mask, len(source_mask.catalog), seconds)
