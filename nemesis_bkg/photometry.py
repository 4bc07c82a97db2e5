"""
Aperture photometry of the removed compact sources, with apertures scaled
to the beam, aperture corrections and flux densities in Jy where the map
unit allows it.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.nddata import NDData
from astropy.stats import gaussian_fwhm_to_sigma
from astropy.table import QTable
from astropy.wcs.utils import proj_plane_pixel_area
from photutils.aperture import ApertureStats, CircularAperture

from .io import _error_from_uncertainty

__all__ = [
    "gaussian_aperture_correction",
    "gaussian_encircled_energy",
    "measure_sources",
    "pixel_sum_to_flux_density",
]

# Variance of a uniform one-pixel box, per axis.
_PIXEL_VARIANCE = 1.0 / 12.0


def gaussian_encircled_energy(radius: float | np.ndarray, fwhm_pixels: float) -> np.ndarray:
    """
    Fraction of a circular Gaussian beam's flux inside ``radius``.

    Parameters
    ----------
    radius : float or ndarray
        Aperture radius in pixels.
    fwhm_pixels : float
        Beam FWHM in pixels.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> round(float(gaussian_encircled_energy(1.0, 2.0)), 4)  # r = FWHM / 2
    0.5
    """
    sigma = fwhm_pixels * gaussian_fwhm_to_sigma
    return 1.0 - np.exp(-np.square(radius) / (2.0 * sigma**2))


def gaussian_aperture_correction(radius: float, fwhm_pixels: float) -> float:
    """
    Fraction of a Gaussian source's pixel sum that an exact-overlap aperture holds.

    The aperture spreads each pixel's value over the pixel's area, which
    smooths a sampled source by one pixel (variance 1/12 per axis): at 3
    pixels per beam that moves the encircled energy at one FWHM by 1 %, so
    the correction is the encircled energy of the Gaussian so broadened.

    Parameters
    ----------
    radius : float
        Aperture radius in pixels.
    fwhm_pixels : float
        Beam FWHM in pixels.

    Returns
    -------
    float

    Examples
    --------
    >>> round(gaussian_aperture_correction(3.0, 3.0), 4)
    0.9284
    """
    if radius < 0 or fwhm_pixels <= 0:
        raise ValueError(
            f"need radius >= 0 and fwhm_pixels > 0, got radius={radius}, fwhm={fwhm_pixels}."
        )
    smoothed_fwhm = np.sqrt(fwhm_pixels**2 + _PIXEL_VARIANCE / gaussian_fwhm_to_sigma**2)
    return float(gaussian_encircled_energy(radius, smoothed_fwhm))


def pixel_sum_to_flux_density(nddata: NDData, fwhm_pixels: float) -> u.Quantity | None:
    """
    The factor that turns a sum of pixel values into a flux density.

    Jy/beam maps (SPIRE) are divided by the Gaussian beam area in pixels,
    Jy/pixel maps (PACS) are summed as they are, surface brightness maps
    (MJy/sr) are multiplied by the pixel solid angle (needs a celestial WCS).

    Parameters
    ----------
    nddata : `~astropy.nddata.NDData`
        The map; its ``unit`` and ``wcs`` are used.
    fwhm_pixels : float
        Beam FWHM in pixels (for Jy/beam maps).

    Returns
    -------
    `~astropy.units.Quantity` or None
        Factor with units such that ``sum * unit * factor`` is in Jy; None
        when the map unit is not a brightness astropy can convert.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.nddata import CCDData
    >>> from nemesis_bkg.photometry import pixel_sum_to_flux_density
    >>> factor = pixel_sum_to_flux_density(CCDData(np.zeros((4, 4)), unit="mJy/pix"), 3.0)
    >>> (10 * factor * u.mJy / u.pix).to(u.Jy)
    <Quantity 0.01 Jy>
    """
    return _flux_density_factor(nddata.unit, nddata.wcs, fwhm_pixels)


def _flux_density_factor(unit: u.UnitBase | None, wcs: Any,
                         fwhm_pixels: float) -> u.Quantity | None:
    """`pixel_sum_to_flux_density` from a unit and a WCS."""
    if unit is None:
        return None
    beam_area_pixels = 2.0 * np.pi * (fwhm_pixels * gaussian_fwhm_to_sigma) ** 2
    candidates = [
        (u.Jy / u.beam, 1.0 / beam_area_pixels * u.beam),
        (u.Jy / u.pix, 1.0 * u.pix),
    ]
    if wcs is not None and getattr(wcs, "has_celestial", False):
        pixel_area = proj_plane_pixel_area(wcs.celestial) * u.deg**2
        candidates.append((u.Jy / u.sr, pixel_area.to(u.sr)))
    for reference, factor in candidates:
        try:
            scale = unit.to(reference)
        except u.UnitConversionError:
            continue
        return (scale * reference * factor).to(u.Jy) / unit
    return None


def measure_sources(
    sources: NDData,
    catalog: QTable,
    fwhm_pixels: float,
    *,
    aperture_radius: float | None = None,
    aperture_correction: bool = True,
    background_error: np.ndarray | None = None,
) -> QTable:
    """
    Aperture photometry of catalogued sources on a compact-only map.

    Parameters
    ----------
    sources : `~astropy.nddata.NDData`
        The compact-only map, e.g. ``result.sources`` of
        `~nemesis_bkg.CompactSourceRemover.remove`; its uncertainty and
        mask are used (any astropy uncertainty class: standard deviation,
        variance or inverse variance, in a unit convertible to the map's).
    catalog : `~astropy.table.QTable`
        Positions: ``x``, ``y`` (pixels) or a ``sky_centroid`` column.
    fwhm_pixels : float
        Beam FWHM in pixels.
    aperture_radius : float, optional
        Radius in pixels; default one beam FWHM, which holds 94 % of a
        Gaussian beam's flux.
    aperture_correction : bool, optional
        Divide by the fraction of a Gaussian beam's pixel sum inside the
        aperture (`gaussian_aperture_correction`, pixelisation included).
    background_error : ndarray, optional
        1-sigma error of the subtracted background per pixel, e.g.
        ``result.background_error``. It is smooth across a hole, so it is
        summed linearly over the aperture (fully correlated) and added in
        quadrature to the noise, which is then taken as
        ``sqrt(uncertainty**2 - background_error**2)``. Without it the
        uncertainty is treated as independent from pixel to pixel, which
        underestimates the error of a source in an inpainted hole.

    Returns
    -------
    `~astropy.table.QTable`
        ``id``, ``x``, ``y``, ``aperture_radius``, ``aperture_sum``,
        ``aperture_sum_err``, ``aperture_correction``, ``masked_fraction``
        (the fraction of the aperture masked or off the map, whose flux is
        missing from the sum and not corrected for), and ``flux`` /
        ``flux_err`` (in Jy where the unit allows, else the map unit times
        pixels).

    Examples
    --------
    >>> from nemesis_bkg import CompactSourceRemover
    >>> from nemesis_bkg.photometry import measure_sources
    >>> from nemesis_bkg.simulate import simulate_map
    >>> sim = simulate_map((128, 128), instrument="spire250", n_sources=4, seed=7)
    >>> result = CompactSourceRemover().remove(sim.data)
    >>> table = measure_sources(result.sources, sim.catalog, result.fwhm_pixels,
    ...                         background_error=result.background_error)
    >>> table["flux"].unit, len(table)
    (Unit("Jy"), 4)
    """
    if not (np.isfinite(fwhm_pixels) and fwhm_pixels > 0):
        raise ValueError(f"fwhm_pixels must be positive, got {fwhm_pixels}.")
    radius = float(fwhm_pixels if aperture_radius is None else aperture_radius)
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"aperture_radius must be positive, got {aperture_radius}.")
    if "x" in catalog.colnames and "y" in catalog.colnames:
        positions = np.column_stack([np.asarray(catalog["x"], float),
                                     np.asarray(catalog["y"], float)])
    elif "sky_centroid" in catalog.colnames and sources.wcs is not None:
        sky = catalog["sky_centroid"]
        if not isinstance(sky, SkyCoord):
            raise TypeError("the sky_centroid column must hold SkyCoord positions.")
        positions = np.column_stack(sources.wcs.world_to_pixel(sky))
    else:
        raise ValueError("the catalogue needs x and y columns, or sky_centroid and a WCS.")

    data = np.asarray(sources.data, dtype=float)
    # Any astropy uncertainty class, in any unit convertible to the map's, as a 1-sigma map.
    error = (None if sources.uncertainty is None
             else _error_from_uncertainty(sources.uncertainty, data.shape, sources.unit))
    mask = ~np.isfinite(data)
    if sources.mask is not None:
        mask |= np.asarray(sources.mask, dtype=bool)
    if background_error is not None:
        background_error = np.nan_to_num(np.asarray(background_error, dtype=float))
        if background_error.shape != data.shape:
            raise ValueError(f"background_error has shape {background_error.shape}, the map "
                             f"{data.shape}; they must match.")
        if error is not None:
            error = np.sqrt(np.clip(error**2 - background_error**2, 0.0, None))

    table = QTable()
    table["id"] = catalog["id"] if "id" in catalog.colnames else np.arange(1, len(catalog) + 1)
    table["x"] = positions[:, 0]
    table["y"] = positions[:, 1]
    table["aperture_radius"] = np.full(len(catalog), radius)
    correction = 1.0
    if aperture_correction:
        correction = gaussian_aperture_correction(radius, fwhm_pixels)
    if len(catalog) == 0:
        aperture_sum = aperture_sum_err = masked_fraction = np.zeros(0)
    else:
        aperture = CircularAperture(positions, r=radius)
        stats = ApertureStats(data, aperture, error=error, mask=mask, sum_method="exact")
        aperture_sum = np.atleast_1d(stats.sum)
        if error is None:
            aperture_sum_err = np.full(len(table), np.nan)
        else:
            aperture_sum_err = np.atleast_1d(stats.sum_err)
        if background_error is not None:
            correlated = ApertureStats(background_error, aperture, mask=mask, sum_method="exact")
            aperture_sum_err = np.hypot(aperture_sum_err, np.atleast_1d(correlated.sum))
        # Masked pixels and pixels off the map are left out of the sums: say how much.
        usable = ApertureStats((~mask).astype(float), aperture, sum_method="exact")
        usable_area = np.nan_to_num(np.atleast_1d(usable.sum), nan=0.0)
        masked_fraction = np.clip(1.0 - usable_area / aperture.area, 0.0, 1.0)
    table["aperture_sum"] = aperture_sum
    table["aperture_sum_err"] = aperture_sum_err
    table["aperture_correction"] = np.full(len(table), correction)
    table["masked_fraction"] = masked_fraction

    factor = pixel_sum_to_flux_density(sources, fwhm_pixels)
    if factor is None:
        flux_unit = (sources.unit or u.one) * u.pix
        table["flux"] = aperture_sum / correction * flux_unit
        table["flux_err"] = aperture_sum_err / correction * flux_unit
    else:
        table["flux"] = (aperture_sum / correction * sources.unit * factor).to(u.Jy)
        table["flux_err"] = (aperture_sum_err / correction * sources.unit * factor).to(u.Jy)
    return table
