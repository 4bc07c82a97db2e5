"""
Several bands of one field: remove the compact sources in each, measure
every source of a reference band in all bands, and return spectral energy
distributions as a table and as `specutils.Spectrum` objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import astropy.units as u
from astropy.nddata import StdDevUncertainty
from astropy.table import QTable

from .instruments import get_instrument, resolve_beam
from .io import ImageInput, read_image
from .photometry import _flux_density_factor, measure_sources
from .remover import CompactSourceRemover
from .results import RemovalResult

__all__ = ["MultiBandResult", "remove_bands"]


@dataclass
class MultiBandResult:
    """
    Removal results of several bands of one field, and their photometry.

    Attributes
    ----------
    results : dict of str to `~nemesis_bkg.results.RemovalResult`
        One removal per band, keyed by band preset name, ordered by wavelength.
    reference_band : str
        The band whose catalogue defines the sources.
    sed : `~astropy.table.QTable`
        One row per source detected in the reference band: ``id``,
        ``sky_centroid`` and, per band, ``flux_<band>`` and
        ``flux_err_<band>``.
    """

    results: dict[str, RemovalResult]
    reference_band: str
    sed: QTable

    @property
    def wavelengths(self) -> u.Quantity:
        """Reference wavelengths of the bands, increasing."""
        return u.Quantity([get_instrument(band).wavelength for band in self.results])

    def spectra(self) -> list:
        """
        One `specutils.Spectrum` per source: flux density against
        wavelength, with a `~astropy.nddata.StdDevUncertainty`; specutils
        masks the bands where the source could not be measured (NaN flux:
        off the map, no coverage).

        Returns
        -------
        list of `specutils.Spectrum`
            In the order of the rows of `sed`; ``meta`` holds the source's
            ``id`` and ``sky_centroid``.
        """
        from specutils import Spectrum

        bands = list(self.results)
        spectra = []
        for row in self.sed:
            flux = u.Quantity([row[f"flux_{band}"] for band in bands])
            error = u.Quantity([row[f"flux_err_{band}"] for band in bands])
            spectra.append(
                Spectrum(flux=flux, spectral_axis=self.wavelengths,
                         uncertainty=StdDevUncertainty(error.to_value(flux.unit)),
                         meta={"id": int(row["id"]), "sky_centroid": row["sky_centroid"]})
            )
        return spectra


def _check_band_map(image: ImageInput, band: str) -> None:
    """Refuse, before any removal, a map whose sources cannot enter an SED in Jy."""
    if image.wcs is None or not image.wcs.has_celestial:
        raise ValueError(f"the {band} map has no celestial WCS; SEDs need sky positions.")
    _, fwhm_pixels = resolve_beam(instrument=band, wcs=image.wcs)
    if _flux_density_factor(image.unit, image.wcs, fwhm_pixels) is None:
        raise ValueError(
            f"the {band} map's unit ({image.unit}) cannot be turned into a flux density; give "
            "it in Jy/beam, Jy/pixel or a surface brightness such as MJy/sr."
        )


def remove_bands(
    maps: Mapping[str, Any],
    *,
    reference_band: str | None = None,
    snr_threshold: float = 5.0,
    model: Any = None,
    device: str = "auto",
) -> MultiBandResult:
    """
    Remove compact sources from several bands of a field and build SEDs.

    Sources are those detected in the reference band (by default the band
    with the sharpest beam). Every other band gets a hole at each of their
    sky positions (besides its own detections), so each source is measured
    at the same sky position in every band on that band's compact-only map,
    with an aperture of one beam FWHM, a Gaussian aperture correction and
    the inpainting error counted as correlated within the aperture.

    Parameters
    ----------
    maps : mapping of str to NDData
        Band preset name (``"pacs70"`` ... ``"spire500"``) to the map of
        that band; every map needs a celestial WCS.
    reference_band : str, optional
        Band whose sources define the SED table.
    snr_threshold : float, optional
        Peak signal-to-noise ratio above which sources are masked (see
        `~nemesis_bkg.CompactSourceRemover`).
    model : `torch.nn.Module`, optional
        The inpainting network; the bundled one by default.
    device : str, optional
        ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    `MultiBandResult`

    Raises
    ------
    ValueError
        If no map is given, two keys name the same band, the reference band
        is not among them, or a map has no celestial WCS or a unit that
        cannot be turned into a flux density (checked before any removal).

    Examples
    --------
    >>> from nemesis_bkg.sed import remove_bands
    >>> from nemesis_bkg.simulate import simulate_map
    >>> maps = {band: simulate_map((96, 96), instrument=band, n_sources=3, seed=4).data
    ...         for band in ("spire250", "pacs160")}
    >>> multiband = remove_bands(maps)
    >>> list(multiband.results), multiband.reference_band
    (['pacs160', 'spire250'], 'pacs160')
    >>> multiband.sed["flux_spire250"].unit
    Unit("Jy")
    """
    if not maps:
        raise ValueError("give at least one band: maps={'pacs160': ccd, ...}")
    by_name: dict[str, Any] = {}
    key_of: dict[str, str] = {}
    for key, data in maps.items():
        band = get_instrument(key).name
        if band in by_name:
            raise ValueError(f"{key_of[band]!r} and {key!r} are both the band {band}; give one "
                             "map per band.")
        by_name[band], key_of[band] = data, key
    bands = sorted(by_name, key=lambda name: get_instrument(name).wavelength)
    if reference_band is None:
        reference_band = min(bands, key=lambda name: get_instrument(name).beam_fwhm)
    reference_band = get_instrument(reference_band).name
    if reference_band not in bands:
        raise ValueError(f"reference_band {reference_band!r} is not one of the bands {bands}.")
    images = {band: read_image(by_name[band]) for band in bands}
    for band, image in images.items():
        _check_band_map(image, band)

    def remover(band: str) -> CompactSourceRemover:
        return CompactSourceRemover(instrument=band, snr_threshold=snr_threshold, model=model,
                                    device=device)

    # Each band's validated copy is let go once its removal is done.
    results = {reference_band: remover(reference_band)._remove_image(images.pop(reference_band))}
    # Holes of the reference map's own mask (bad pixels, ...) are no sources: no SED rows and
    # no holes in the other bands for them.
    reference_catalog = results[reference_band].catalog
    reference = reference_catalog[reference_catalog["origin"] == "detected"]
    # Every reference source gets a hole in every band, so each band's compact-only map
    # holds its flux there even where that band's own detection missed it.
    for band in bands:
        if band != reference_band:
            results[band] = remover(band)._remove_image(images.pop(band),
                                                        catalog=reference["sky_centroid"])
    results = {band: results[band] for band in bands}

    sed = QTable()
    sed["id"] = reference["id"]
    sed["sky_centroid"] = reference["sky_centroid"]
    positions = QTable({"sky_centroid": reference["sky_centroid"]})
    for band, result in results.items():
        photometry = measure_sources(result.sources, positions, result.fwhm_pixels,
                                     background_error=result.background_error)
        sed[f"flux_{band}"] = photometry["flux"]
        sed[f"flux_err_{band}"] = photometry["flux_err"]
    return MultiBandResult(results=results, reference_band=reference_band, sed=sed)
