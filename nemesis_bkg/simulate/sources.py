"""
Compact sources: drawing a catalogue (peak SNRs, positions anywhere in the
covered map including on filaments, close pairs) and injecting it by
adding small beam stamps, never by convolving the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .beams import Beam

__all__ = ["SourceDraw", "draw_peak_snr", "draw_sources", "inject_sources"]


@dataclass(frozen=True)
class SourceDraw:
    """
    Positions and peak SNRs of drawn sources.

    Attributes
    ----------
    x, y : ndarray
        0-based pixel positions of the beam centres.
    peak_snr : ndarray
        Peak of each beam-convolved source over the noise std.
    close_pair : ndarray of bool
        True for the members of deliberately close pairs.
    """

    x: np.ndarray
    y: np.ndarray
    peak_snr: np.ndarray
    close_pair: np.ndarray


def draw_peak_snr(
    rng: np.random.Generator,
    n_sources: int,
    snr_range: tuple[float, float],
    *,
    snr_slope: float = 0.5,
) -> np.ndarray:
    """
    Peak SNRs with ``dN / dln(SNR) ~ SNR**-snr_slope``: log-uniform tilted to faint ones.

    Parameters
    ----------
    rng : `numpy.random.Generator`
    n_sources : int
    snr_range : tuple of float
        Lowest and highest peak SNR (both positive).
    snr_slope : float, optional
        0 gives a log-uniform distribution; larger values give more faint sources.

    Returns
    -------
    ndarray

    Raises
    ------
    ValueError
        If ``snr_range`` is not two numbers with ``0 < low <= high``.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.sources import draw_peak_snr
    >>> snr = draw_peak_snr(np.random.default_rng(0), 1000, (3.0, 3000.0))
    >>> bool(snr.min() >= 3.0 and snr.max() <= 3000.0)
    True
    """
    try:
        low, high = (float(value) for value in snr_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"snr_range must be two numbers (low, high), got {snr_range!r}."
        ) from None
    if not 0 < low <= high or not np.isfinite(high):
        raise ValueError(f"snr_range must be (low, high) with 0 < low <= high, got {snr_range}.")
    uniform = rng.uniform(0.0, 1.0, n_sources)
    log_low, log_high = np.log(low), np.log(high)
    if snr_slope == 0 or low == high:
        return np.exp(log_low + uniform * (log_high - log_low))
    # Inverse of the cumulative distribution of an exponential in ln(SNR).
    cdf_low, cdf_high = np.exp(-snr_slope * log_low), np.exp(-snr_slope * log_high)
    log_snr = -np.log(cdf_low - uniform * (cdf_low - cdf_high)) / snr_slope
    return np.clip(np.exp(log_snr), low, high)


def _random_pixels(rng: np.random.Generator, allowed: np.ndarray, count: int) -> np.ndarray:
    """Sub-pixel positions (x, y) drawn uniformly over the True pixels of ``allowed``."""
    flat = np.flatnonzero(allowed)
    chosen = flat[rng.integers(0, flat.size, count)]
    x = chosen % allowed.shape[1] + rng.uniform(-0.5, 0.5, count)
    y = chosen // allowed.shape[1] + rng.uniform(-0.5, 0.5, count)
    return np.stack([x, y], axis=1)


def draw_sources(
    rng: np.random.Generator,
    *,
    n_sources: int,
    allowed: np.ndarray,
    snr_range: tuple[float, float],
    fwhm_pixels: float,
    close_pair_fraction: float = 0.1,
    preferred: np.ndarray | None = None,
    preferred_fraction: float = 0.25,
    snr_slope: float = 0.5,
) -> SourceDraw:
    """
    Draw positions and peak SNRs of compact sources.

    Parameters
    ----------
    rng : `numpy.random.Generator`
    n_sources : int
    allowed : ndarray of bool
        Pixels where a source centre may fall (covered, away from the edge).
    snr_range : tuple of float
        Range of peak SNR.
    fwhm_pixels : float
        Beam FWHM, sets the separations of close pairs (1 to 2.5 FWHM).
    close_pair_fraction : float, optional
        Fraction of sources placed as the close companion of another one.
    preferred : ndarray of bool, optional
        Pixels that attract a share of the sources (e.g. filaments, where
        stars form).
    preferred_fraction : float, optional
        Share (0 to 1) of the non-companion sources drawn inside ``preferred``.
    snr_slope : float, optional
        See `draw_peak_snr`.

    Returns
    -------
    `SourceDraw`

    Raises
    ------
    ValueError
        If ``n_sources`` is negative, ``close_pair_fraction`` is not between 0
        and 0.5, ``preferred_fraction`` not between 0 and 1, ``snr_range`` is
        invalid, or no pixel is allowed.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.sources import draw_sources
    >>> draw = draw_sources(np.random.default_rng(0), n_sources=10,
    ...                     allowed=np.ones((64, 64), bool), snr_range=(5, 50),
    ...                     fwhm_pixels=3.0)
    >>> draw.x.shape
    (10,)
    """
    if n_sources < 0:
        raise ValueError(f"n_sources must be >= 0, got {n_sources}.")
    if not 0.0 <= close_pair_fraction <= 0.5:
        raise ValueError(
            f"close_pair_fraction must be between 0 and 0.5, got {close_pair_fraction}."
        )
    if not 0.0 <= preferred_fraction <= 1.0:
        raise ValueError(f"preferred_fraction must be between 0 and 1, got {preferred_fraction}.")
    if n_sources and not allowed.any():
        raise ValueError(
            "no pixel can hold a source (map too small or fully uncovered); "
            "use a larger shape or fewer NaN pixels."
        )
    n_companions = int(round(close_pair_fraction * n_sources))
    n_primary = n_sources - n_companions
    positions = _random_pixels(rng, allowed, n_primary)
    if preferred is not None:
        preferred = preferred & allowed
        if preferred.any():
            on_preferred = rng.uniform(0.0, 1.0, n_primary) < preferred_fraction
            positions[on_preferred] = _random_pixels(rng, preferred, int(on_preferred.sum()))

    close_pair = np.zeros(n_sources, dtype=bool)
    companions = np.empty((n_companions, 2))
    for index in range(n_companions):
        # Try a few companions around random primaries; fall back to a free position.
        for _ in range(10):
            parent = int(rng.integers(0, max(n_primary, 1)))
            separation = rng.uniform(1.0, 2.5) * fwhm_pixels
            angle = rng.uniform(0.0, 2 * np.pi)
            candidate = positions[parent] + separation * np.array([np.cos(angle), np.sin(angle)])
            col, row = np.round(candidate).astype(int)
            if (
                n_primary
                and 0 <= row < allowed.shape[0]
                and 0 <= col < allowed.shape[1]
                and allowed[row, col]
            ):
                companions[index] = candidate
                close_pair[[parent, n_primary + index]] = True
                break
        else:
            companions[index] = _random_pixels(rng, allowed, 1)[0]
    positions = np.concatenate([positions, companions])
    return SourceDraw(
        x=positions[:, 0],
        y=positions[:, 1],
        peak_snr=draw_peak_snr(rng, n_sources, snr_range, snr_slope=snr_slope),
        close_pair=close_pair,
    )


def inject_sources(
    shape: tuple[int, int], x: np.ndarray, y: np.ndarray, peak: np.ndarray, beam: Beam
) -> tuple[np.ndarray, np.ndarray]:
    """
    Image of point sources seen through ``beam``, made by adding beam stamps.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the image.
    x, y : ndarray
        0-based pixel positions of the sources.
    peak : ndarray
        Value of each source's beam profile at its centre.
    beam : `~nemesis_bkg.simulate.beams.Beam`

    Returns
    -------
    image : ndarray
        Sum of the sources.
    flux : ndarray
        Sum of each source's pixels inside the image (its integrated flux in
        map units times pixels).

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.beams import gaussian_beam
    >>> from nemesis_bkg.simulate.sources import inject_sources
    >>> image, flux = inject_sources((32, 32), np.array([16.0]), np.array([16.0]),
    ...                              np.array([2.0]), gaussian_beam(3.0))
    >>> round(float(image.max()), 6), round(float(flux[0] / image.sum()), 6)
    (2.0, 1.0)
    """
    image = np.zeros(shape)
    flux = np.zeros(len(x))
    radius = beam.stamp_radius
    for index, (source_x, source_y, source_peak) in enumerate(zip(x, y, peak, strict=True)):
        col, row = int(np.round(source_x)), int(np.round(source_y))
        stamp = source_peak * beam.stamp(source_x - col, source_y - row)
        # Clip the stamp to the image so sources near an edge keep their visible part.
        top, bottom = max(row - radius, 0), min(row + radius + 1, shape[0])
        left, right = max(col - radius, 0), min(col + radius + 1, shape[1])
        if top >= bottom or left >= right:
            continue
        visible = stamp[
            top - (row - radius) : bottom - (row - radius),
            left - (col - radius) : right - (col - radius),
        ]
        image[top:bottom, left:right] += visible
        flux[index] = visible.sum()
    return image, flux
