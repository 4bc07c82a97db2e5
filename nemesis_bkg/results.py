"""
The result of a compact-source removal: NDData products, masks, the
catalogue, DS9 regions and a multi-extension FITS writer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.table import QTable, Table

from .instruments import Instrument
from .io import ImageInput, write_fits_atomically

__all__ = ["RemovalResult", "catalog_to_fits_table", "make_nddata"]


def catalog_to_fits_table(catalog: QTable) -> Table:
    """
    Flatten a catalogue for a FITS table: SkyCoord columns become RA/Dec in degrees.

    Used for the CATALOG extension of `RemovalResult.write` and of
    `~nemesis_bkg.parallel.MosaicResult.write`.

    Parameters
    ----------
    catalog : `~astropy.table.QTable`
        A catalogue of masked sources (`RemovalResult.catalog`).

    Returns
    -------
    `~astropy.table.Table`
        The same columns, a SkyCoord column ``name`` replaced by ``name_ra``
        and ``name_dec`` (degrees) and object columns by strings.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.table import QTable
    >>> from nemesis_bkg.results import catalog_to_fits_table
    >>> catalog = QTable({"x": [1.5], "sky_centroid": SkyCoord([10] * u.deg, [-5] * u.deg)})
    >>> catalog_to_fits_table(catalog).colnames
    ['x', 'sky_centroid_ra', 'sky_centroid_dec']
    """
    flat = Table()
    for name in catalog.colnames:
        column = catalog[name]
        if isinstance(column, SkyCoord):
            icrs = column.icrs
            flat[f"{name}_ra"] = icrs.ra.deg * u.deg
            flat[f"{name}_dec"] = icrs.dec.deg * u.deg
        elif isinstance(column, u.Quantity):
            flat[name] = column
        elif column.dtype.kind == "O":
            flat[name] = np.asarray([str(value) for value in column])
        else:
            flat[name] = column
    return flat


@dataclass
class RemovalResult:
    """
    Products of `~nemesis_bkg.CompactSourceRemover.remove`.

    Attributes
    ----------
    background : `~astropy.nddata.NDData`
        Source-free map, of the input's NDData class (CCDData in, CCDData
        out), with the input's WCS, unit and meta. ``uncertainty`` is the
        input noise outside the holes and the inpainting error inside them;
        ``mask`` marks the pixels without coverage and the masked input pixels
        that were not inpainted (kept out of the holes by ``protect=``).
    sources : `~astropy.nddata.NDData`
        Compact sources only (input minus background), same WCS and unit;
        ``mask`` is the background's united with the input mask (the data
        are not trusted there);
        ``uncertainty`` combines the input noise and the inpainting error in
        quadrature, ready for photutils photometry.
    source_mask : ndarray of bool
        The inpainted pixels (the holes).
    catalog : `~astropy.table.QTable`
        The masked sources: id, x, y, sky_centroid, peak_snr, hole_radius, ...
    background_error : ndarray
        1-sigma error of the inpainted background (0 outside the holes). It
        is smooth across a hole: treat it as fully correlated within an
        aperture (`~nemesis_bkg.photometry.measure_sources` does).
    background_rms : ndarray
        1-sigma pixel noise of the input: its uncertainty when given, else
        measured from the map.
    fwhm_pixels : float
        Beam FWHM in pixels used for the holes.
    instrument : `~nemesis_bkg.instruments.Instrument`
    parameters : dict
        The parameters of the run, recorded in the FITS header by `write`.
    """

    background: NDData
    sources: NDData
    source_mask: np.ndarray
    catalog: QTable
    background_error: np.ndarray
    background_rms: np.ndarray
    fwhm_pixels: float
    instrument: Instrument
    parameters: dict[str, Any] = field(default_factory=dict)
    _source_mask_result: Any = field(default=None, repr=False)

    def regions(self):
        """
        The holes as `regions.Regions`: sky circles when the map has a
        celestial WCS, pixel circles otherwise. Write them for DS9 with
        ``result.regions().write("holes.reg", format="ds9")``.
        """
        return self._source_mask_result.regions()

    def to_hdulist(self) -> fits.HDUList:
        """
        The result as one multi-extension FITS `~astropy.io.fits.HDUList`.

        Extensions: BACKGROUND, BACKGROUND_ERR, SOURCES, SOURCES_ERR,
        SOURCE_MASK (1 = inpainted), COVERAGE (1 = covered) and CATALOG (a
        binary table). The primary header records the package version, the
        model checksum and the parameters of the run.
        """
        from . import __version__

        wcs_header = (
            self.background.wcs.to_header() if self.background.wcs is not None else fits.Header()
        )
        unit = self.background.unit
        bunit = unit.to_string("fits") if unit not in (None, u.dimensionless_unscaled) else None
        if unit is None:
            # A BUNIT that astropy could not read is passed on verbatim, not dropped.
            bunit = self.background.meta.get("BUNIT")

        primary = fits.PrimaryHDU()
        primary.header["CREATOR"] = (f"nemesis_bkg {__version__}", "software that made this file")
        primary.header["NEMVERS"] = (__version__, "nemesis_bkg version")
        primary.header["INSTRUME"] = (self.instrument.name, "instrument preset used for the beam")
        primary.header["BEAMPIX"] = (self.fwhm_pixels, "[pix] beam FWHM used for the holes")
        for key, (value, comment) in self.parameters.items():
            primary.header[key] = (value, comment)

        def image(array, name, with_unit=True):
            header = wcs_header.copy()
            if with_unit and bunit:
                header["BUNIT"] = bunit
            return fits.ImageHDU(array, header=header, name=name)

        coverage = ~np.asarray(self.background.mask, dtype=bool)
        hdus = [
            primary,
            image(self.background.data, "BACKGROUND"),
            image(self.background.uncertainty.array, "BACKGROUND_ERR"),
            image(self.sources.data, "SOURCES"),
            image(self.sources.uncertainty.array, "SOURCES_ERR"),
            image(self.source_mask.astype(np.uint8), "SOURCE_MASK", with_unit=False),
            image(coverage.astype(np.uint8), "COVERAGE", with_unit=False),
            fits.BinTableHDU(catalog_to_fits_table(self.catalog), name="CATALOG"),
        ]
        return fits.HDUList(hdus)

    def write(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """
        Write the result to one multi-extension FITS file (see `to_hdulist`).

        The file is written to a temporary name and renamed into place, so
        it is never left half-written; an existing file is replaced only
        with ``overwrite=True``.

        Parameters
        ----------
        path : str or path-like
        overwrite : bool, optional
        """
        write_fits_atomically(self.to_hdulist(), path, overwrite=overwrite)


def make_nddata(image: ImageInput, array: np.ndarray, error: np.ndarray,
                mask: np.ndarray) -> NDData:
    """
    An NDData of the input's class carrying ``array`` with the input's WCS,
    unit and meta, a `~astropy.nddata.StdDevUncertainty` and ``mask``.
    """
    nddata_class = image.input_type if issubclass(image.input_type, NDData) else NDData
    unit = image.unit
    if issubclass(nddata_class, CCDData) and unit is None:
        unit = u.dimensionless_unscaled
    meta = image.header.copy() if len(image.header) else dict(image.meta)
    return nddata_class(
        array,
        uncertainty=StdDevUncertainty(error),
        mask=mask,
        wcs=image.wcs,
        unit=unit,
        meta=meta,
    )
