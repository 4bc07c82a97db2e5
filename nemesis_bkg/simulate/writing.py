"""
Writing a `~nemesis_bkg.simulate.SimulatedMap` to one multi-extension FITS
file: the map (with its uncertainty) and the truth.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..io import write_fits_atomically
from .maps import SimulatedMap

__all__ = ["write_simulated_map"]


def write_simulated_map(
    sim: SimulatedMap, path: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """
    Write a simulated map and its truth to a FITS file.

    Extensions: the primary HDU holds ``sim.data`` (header with WCS,
    TELESCOP, INSTRUME, WAVELNTH, BUNIT), ``UNCERT`` its 1-sigma
    uncertainty, then ``BACKGROUND``, ``SOURCES``, ``NOISE`` (images with
    the same WCS and BUNIT as ``UNCERT``), ``FILMASK`` (uint8 filament mask
    with the WCS) and ``CATALOG`` (binary
    table; read it back with ``QTable.read(path, hdu="CATALOG")``). The file
    is written to a temporary name and renamed into place, so a failure
    never leaves half a file.

    Parameters
    ----------
    sim : `~nemesis_bkg.simulate.SimulatedMap`
    path : str or path-like
        Output FITS file.
    overwrite : bool, optional
        Replace an existing file.

    Returns
    -------
    `~pathlib.Path`
        The path written.

    Raises
    ------
    TypeError
        If ``sim`` is not a `~nemesis_bkg.simulate.SimulatedMap`.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the folder of ``path`` does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from nemesis_bkg.simulate import simulate_map, write_simulated_map
    >>> sim = simulate_map((64, 64), instrument="pacs100", n_sources=2, seed=0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     written = write_simulated_map(sim, pathlib.Path(folder) / "sim.fits")
    ...     written.name
    'sim.fits'
    """
    if not isinstance(sim, SimulatedMap):
        raise TypeError(
            f"sim must be a SimulatedMap (from simulate_map), got {type(sim).__name__}."
        )
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    hdul = sim.data.to_hdu(hdu_uncertainty="UNCERT", hdu_mask=None)
    wcs_header = sim.data.wcs.to_header()
    unit_header = fits.Header({"BUNIT": hdul[0].header.get("BUNIT", "")})
    # The uncertainty image is a map like the others: give it the WCS and unit too.
    hdul["UNCERT"].header.update(wcs_header)
    hdul["UNCERT"].header.update(unit_header)
    for name, image in (
        ("BACKGROUND", sim.background),
        ("SOURCES", sim.sources),
        ("NOISE", sim.noise),
    ):
        header = wcs_header.copy()
        header.update(unit_header)
        hdul.append(fits.ImageHDU(np.asarray(image, dtype=np.float64), header=header, name=name))
    hdul.append(
        fits.ImageHDU(sim.filament_mask.astype(np.uint8), header=wcs_header, name="FILMASK")
    )
    # Table.write serialises the SkyCoord column (table_to_hdu cannot), so go through memory.
    buffer = io.BytesIO()
    sim.catalog.write(buffer, format="fits")
    buffer.seek(0)
    with fits.open(buffer) as catalog_hdul:
        catalog_hdu = fits.BinTableHDU(
            data=catalog_hdul[1].data.copy(), header=catalog_hdul[1].header.copy(), name="CATALOG"
        )
    hdul.append(catalog_hdu)

    write_fits_atomically(hdul, path, overwrite=overwrite)
    return path
