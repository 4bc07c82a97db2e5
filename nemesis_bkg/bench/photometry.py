"""
Photometry of the injected sources, the way the benchmark scores fluxes.

Two recipes: a beam-scaled circular aperture on the data minus a method's
background, corrected for the encircled energy of a Gaussian beam; and the
method paper's "standard" photometry: the aperture sum minus the mean of a
surrounding annulus times the aperture area, with the same correction.
"""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np

from nemesis_bkg.instruments import get_instrument
from nemesis_bkg.photometry import gaussian_aperture_correction as aperture_correction

__all__ = [
    "ANNULUS_RADII_FWHM",
    "APERTURE_RADIUS_FWHM",
    "annulus_fluxes",
    "aperture_correction",
    "aperture_fluxes",
    "aperture_noise_errors",
    "measurable_sources",
]

#: Aperture radius in beams (FWHM); holds 93.75 % of a Gaussian beam's flux.
APERTURE_RADIUS_FWHM = 1.0


def _paper_annulus_in_beams() -> tuple[float, float]:
    # The paper subtracts the mean of a 25"-35" annulus in every PACS band; in
    # beams of the 160 um band (the widest PACS beam) that is the tightest
    # annulus, the most favourable to this peer on structured backgrounds.
    beam = get_instrument("pacs160").beam_fwhm
    inner, outer = (25.0 * u.arcsec / beam).decompose(), (35.0 * u.arcsec / beam).decompose()
    return float(inner), float(outer)


#: Inner and outer radius of the "standard" annulus, in beams (FWHM).
ANNULUS_RADII_FWHM = _paper_annulus_in_beams()


def measurable_sources(
    x: np.ndarray, y: np.ndarray, fwhm_pixels: float, coverage: np.ndarray
) -> np.ndarray:
    """
    Which sources have their aperture and "standard" annulus fully covered.

    Parameters
    ----------
    x, y : array-like
        Source positions (0-based pixels).
    fwhm_pixels : float
        Beam FWHM in pixels.
    coverage : ndarray of bool
        Covered pixels.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.photometry import measurable_sources
    >>> measurable_sources([50.0, 2.0], [50.0, 50.0], 3.0, np.ones((100, 100), bool)).tolist()
    [True, False]
    """
    from photutils.aperture import CircularAperture, aperture_photometry

    outer = ANNULUS_RADII_FWHM[1] * fwhm_pixels
    positions = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    if positions.size == 0:
        return np.zeros(0, dtype=bool)
    # Pixels off the image count as uncovered: pad with them.
    margin = int(math.ceil(outer)) + 2
    uncovered = np.pad(~np.asarray(coverage, dtype=bool), margin, constant_values=True)
    aperture = CircularAperture(positions + margin, r=outer + 1.0)
    table = aperture_photometry(uncovered.astype(float), aperture, method="center")
    return np.asarray(table["aperture_sum"], dtype=float) == 0


def _aperture_sums(image: np.ndarray, aperture) -> np.ndarray:
    from photutils.aperture import aperture_photometry

    invalid = ~np.isfinite(image)
    sums = np.asarray(
        aperture_photometry(image, aperture, mask=invalid, method="exact")["aperture_sum"],
        dtype=float,
    )
    # A NaN pixel inside the aperture makes the flux unmeasured, not smaller.
    touched = aperture_photometry(invalid.astype(float), aperture, method="exact")["aperture_sum"]
    sums[np.asarray(touched, dtype=float) > 0] = np.nan
    return sums


def aperture_fluxes(
    image: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm_pixels: float
) -> np.ndarray:
    """
    Aperture fluxes on a background-subtracted image, corrected to total flux.

    The aperture radius is `APERTURE_RADIUS_FWHM` beams; the sum is divided
    by `aperture_correction` at that radius.

    Parameters
    ----------
    image : ndarray
        Data minus a background (NaN where not measured).
    x, y : array-like
        Source positions (0-based pixels).
    fwhm_pixels : float
        Beam FWHM in pixels.

    Returns
    -------
    ndarray
        Flux per source (sum over pixels, like the simulator's ``flux``); NaN
        where the aperture touches a NaN pixel.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.photometry import aperture_fluxes
    >>> yy, xx = np.mgrid[:64, :64]
    >>> sigma = 4.0 / 2.3548
    >>> source = 100.0 * np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / (2 * sigma**2))
    >>> flux = aperture_fluxes(source, [32.0], [32.0], 4.0)[0]
    >>> bool(abs(flux / source.sum() - 1) < 0.01)
    True
    """
    from photutils.aperture import CircularAperture

    positions = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    radius = APERTURE_RADIUS_FWHM * fwhm_pixels
    aperture = CircularAperture(positions, r=radius)
    sums = _aperture_sums(np.asarray(image, dtype=float), aperture)
    return sums / aperture_correction(radius, fwhm_pixels)


def annulus_fluxes(
    data: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm_pixels: float
) -> np.ndarray:
    """
    The paper's "standard" photometry: aperture sum minus annulus mean times area.

    The annulus spans `ANNULUS_RADII_FWHM` beams (the paper's 25"-35" in
    beams of PACS 160 um); its mean is over the finite pixels. The result is
    corrected to total flux as in `aperture_fluxes`.

    Parameters
    ----------
    data : ndarray
        The map with its background (NaN where not covered).
    x, y : array-like
        Source positions (0-based pixels).
    fwhm_pixels : float
        Beam FWHM in pixels.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.photometry import annulus_fluxes
    >>> yy, xx = np.mgrid[:64, :64]
    >>> sigma = 4.0 / 2.3548
    >>> source = 100.0 * np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / (2 * sigma**2))
    >>> flux = annulus_fluxes(source + 7.0, [32.0], [32.0], 4.0)[0]
    >>> bool(abs(flux / source.sum() - 1) < 0.01)
    True
    """
    from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture

    data = np.asarray(data, dtype=float)
    positions = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    radius = APERTURE_RADIUS_FWHM * fwhm_pixels
    aperture = CircularAperture(positions, r=radius)
    inner, outer = (edge * fwhm_pixels for edge in ANNULUS_RADII_FWHM)
    annulus = CircularAnnulus(positions, r_in=inner, r_out=outer)
    annulus_mean = np.atleast_1d(ApertureStats(data, annulus, mask=~np.isfinite(data)).mean)
    sums = _aperture_sums(data, aperture)
    net = sums - np.asarray(annulus_mean, dtype=float) * math.pi * radius**2
    return net / aperture_correction(radius, fwhm_pixels)


def _noise_autocovariance(noise: np.ndarray, max_lag: int) -> np.ndarray:
    """
    Autocovariance of a noise map for lags up to ``max_lag`` pixels on each axis.

    Non-finite pixels are left out (each lag is averaged over the pairs of
    finite pixels). Index ``[max_lag + dy, max_lag + dx]`` holds lag
    ``(dy, dx)``.
    """
    from scipy import fft

    valid = np.isfinite(noise)
    if not valid.any():
        raise ValueError("the noise map has no finite pixel.")
    values = np.where(valid, noise - np.mean(noise[valid]), 0.0)
    # Padding by the largest lag keeps the circular correlation free of wrap-around.
    shape = tuple(fft.next_fast_len(size + max_lag, real=True) for size in noise.shape)
    products = fft.irfft2(np.abs(fft.rfft2(values, shape)) ** 2, shape)
    pairs = fft.irfft2(np.abs(fft.rfft2(valid.astype(float), shape)) ** 2, shape)
    lags = [np.arange(-max_lag, max_lag + 1) % size for size in shape]
    window = np.ix_(*lags)
    return products[window] / np.maximum(np.round(pairs[window]), 1.0)


def aperture_noise_errors(
    noise: np.ndarray | None,
    kept: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    fwhm_pixels: float,
    *,
    noise_std: float | None = None,
) -> np.ndarray:
    """
    1-sigma noise of `aperture_fluxes` on data minus a background.

    The residual holds the data's noise only on the ``kept`` pixels: an
    inpainter returns the data (noise included) outside its holes, so there
    the residual is zero; a smooth mesh background keeps the noise
    everywhere. The variance of each source's aperture sum over those pixels
    is exact for stationary noise of the map's measured autocovariance, so
    correlated noise (scan stripes) counts in full.

    Parameters
    ----------
    noise : ndarray or None
        The noise realisation of the map (NaN where not covered); None means
        white noise of ``noise_std``.
    kept : ndarray of bool
        Pixels where the residual holds the data's noise.
    x, y : array-like
        Source positions (0-based pixels).
    fwhm_pixels : float
        Beam FWHM in pixels.
    noise_std : float, optional
        Per-pixel noise; needed when ``noise`` is None.

    Returns
    -------
    ndarray
        One error per source, in the units of `aperture_fluxes`.

    Examples
    --------
    White noise over a whole aperture: about ``noise * sqrt(area)`` (a
    little less: the pixels cut by the aperture's edge count in part),
    corrected to total flux like the fluxes; over its inner half only, when
    a background keeps the noise there alone.

    >>> import math
    >>> import numpy as np
    >>> from nemesis_bkg.bench.photometry import aperture_correction, aperture_noise_errors
    >>> kept = np.ones((40, 40), bool)
    >>> error = aperture_noise_errors(None, kept, [20.0], [20.0], 4.0, noise_std=1.0)[0]
    >>> print(f"{error * aperture_correction(4.0, 4.0) / math.sqrt(math.pi * 4.0**2):.2f}")
    0.95
    >>> yy, xx = np.mgrid[:40, :40]
    >>> inner = (xx - 20) ** 2 + (yy - 20) ** 2 <= 2.0**2
    >>> inner_error = aperture_noise_errors(None, inner, [20.0], [20.0], 4.0, noise_std=1.0)[0]
    >>> print(f"{inner_error / error:.2f}")
    0.53
    """
    from photutils.aperture import CircularAperture
    from scipy import signal

    positions = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    if positions.size == 0:
        return np.zeros(0)
    radius = APERTURE_RADIUS_FWHM * fwhm_pixels
    masks = CircularAperture(positions, r=radius).to_mask(method="exact")
    masks = masks if isinstance(masks, list) else [masks]
    max_lag = max(max(mask.data.shape) for mask in masks) - 1
    if noise is None:
        if noise_std is None or not noise_std > 0:
            raise ValueError("give the noise map or a positive noise_std.")
        autocovariance = np.zeros((2 * max_lag + 1, 2 * max_lag + 1))
        autocovariance[max_lag, max_lag] = noise_std**2
    else:
        autocovariance = _noise_autocovariance(np.asarray(noise, dtype=float), max_lag)
    kept = np.asarray(kept, dtype=float)
    variances = np.empty(len(masks))
    for index, mask in enumerate(masks):
        weights = mask.data * mask.cutout(kept, fill_value=0.0)
        # Sum over pixel pairs of w_a w_b C(b - a) = sum over lags of the weights'
        # autocorrelation times the noise's autocovariance.
        pair_weights = signal.correlate(weights, weights, mode="full", method="direct")
        half_rows, half_cols = (size // 2 for size in pair_weights.shape)
        window = autocovariance[max_lag - half_rows : max_lag + half_rows + 1,
                                max_lag - half_cols : max_lag + half_cols + 1]
        variances[index] = np.sum(pair_weights * window)
    return np.sqrt(np.maximum(variances, 0.0)) / aperture_correction(radius, fwhm_pixels)
