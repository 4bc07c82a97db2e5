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

from .instruments import get_instrument
from .photometry import measure_sources
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
        One row per source of the reference band: ``id``, ``sky_centroid``
        and, per band, ``flux_<band>`` and ``flux_err_<band>``.
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
        wavelength, with a `~astropy.nddata.StdDevUncertainty`.
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


def _require_celestial(result: RemovalResult, band: str) -> None:
    wcs = result.background.wcs
    if wcs is None or not wcs.has_celestial:
        raise ValueError(f"the {band} map has no celestial WCS; SEDs need sky positions.")


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

    Sources are those masked in the reference band (by default the band
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
    model : `torch.nn.Module`, optional
    device : str, optional

    Returns
    -------
    `MultiBandResult`
    """
    if not maps:
        raise ValueError("give at least one band: maps={'pacs160': ccd, ...}")
    bands = sorted((get_instrument(name).name for name in maps),
                   key=lambda name: get_instrument(name).wavelength)
    by_name = {get_instrument(name).name: data for name, data in maps.items()}
    if reference_band is None:
        reference_band = min(bands, key=lambda name: get_instrument(name).beam_fwhm)
    reference_band = get_instrument(reference_band).name
    if reference_band not in bands:
        raise ValueError(f"reference_band {reference_band!r} is not one of the bands {bands}.")

    def remover(band: str) -> CompactSourceRemover:
        return CompactSourceRemover(instrument=band, snr_threshold=snr_threshold, model=model,
                                    device=device)

    results = {reference_band: remover(reference_band).remove(by_name[reference_band])}
    _require_celestial(results[reference_band], reference_band)
    reference = results[reference_band].catalog
    # Every reference source gets a hole in every band, so each band's compact-only map
    # holds its flux there even where that band's own detection missed it.
    for band in bands:
        if band != reference_band:
            results[band] = remover(band).remove(by_name[band],
                                                 catalog=reference["sky_centroid"])
            _require_celestial(results[band], band)
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
