"""
Coverage of a simulated scan map: a rotated rectangle with ragged edges,
like the NaN borders of real Herschel scan maps.
"""

from __future__ import annotations

import numpy as np

__all__ = ["scan_coverage"]


def scan_coverage(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    angle_range: tuple[float, float] = (np.radians(5.0), np.radians(30.0)),
    size_range: tuple[float, float] = (0.88, 1.05),
    raggedness: float = 0.015,
) -> np.ndarray:
    """
    Covered pixels of a scan map: a rotated rectangle with a ragged edge.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the map.
    rng : `numpy.random.Generator`
    angle_range : tuple of float, optional
        Range of the rectangle's rotation, radians.
    size_range : tuple of float, optional
        Range of the rectangle's sides relative to the map's.
    raggedness : float, optional
        Amplitude of the edge wiggles relative to the map size.

    Returns
    -------
    ndarray of bool
        True where covered. The middle of the map, half its width by half
        its height, is always covered.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.coverage import scan_coverage
    >>> covered = scan_coverage((128, 128), np.random.default_rng(0))
    >>> bool(covered[64, 64]), bool(covered.all())
    (True, False)
    """
    ny, nx = shape
    y, x = np.indices(shape, dtype=float)
    x -= (nx - 1) / 2
    y -= (ny - 1) / 2
    angle = rng.uniform(*angle_range) * rng.choice([-1.0, 1.0])
    along = x * np.cos(angle) + y * np.sin(angle)
    across = -x * np.sin(angle) + y * np.cos(angle)
    half_width = 0.5 * nx * rng.uniform(*size_range)
    half_height = 0.5 * ny * rng.uniform(*size_range)
    size = max(shape)
    margin = np.minimum(half_width - np.abs(along), half_height - np.abs(across))
    # Ragged edges: a few random sinusoids along each side (scan legs end
    # unevenly), evaluated only near the edge where they can matter.
    reach = raggedness * size
    near_edge = np.abs(margin) < reach
    wiggle = np.zeros(int(near_edge.sum()))
    for coordinate in (along[near_edge], across[near_edge]):
        for cycles in rng.uniform(2.0, 12.0, 3):
            phase = rng.uniform(0.0, 2 * np.pi)
            wiggle += np.sin(2 * np.pi * cycles * coordinate / size + phase) / 6.0
    covered = margin > 0
    covered[near_edge] = margin[near_edge] + reach * wiggle > 0
    centre = (np.abs(x) <= nx / 4) & (np.abs(y) <= ny / 4)
    return covered | centre
