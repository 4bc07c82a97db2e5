"""
The user's own sources and regions: ``catalog=``, ``regions=`` and ``protect=``.

- ``catalog``: a `~astropy.table.Table`/`~astropy.table.QTable` with
  ``x``, ``y`` (0-based pixels) or ``sky_centroid`` (SkyCoord) or ``ra``,
  ``dec`` columns (degrees when unitless), optionally ``hole_radius``
  (pixels, or an angle with a WCS); or a `~astropy.coordinates.SkyCoord`.
  NaN positions are an error; positions off the map are left out with a
  warning that lists them.
- ``regions``/``protect``: a `regions.Regions`, a single region, or the
  path of a DS9 or CRTF region file (lines that cannot be parsed are an
  error, never skipped). Point regions in ``regions`` are positions whose
  hole follows the hole rule, like catalogue rows.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from regions import PixelRegion, PointPixelRegion, Region, Regions, SkyRegion

__all__ = ["UserPositions", "catalog_positions", "read_regions", "regions_to_mask"]

_X_NAMES = ("x", "x_centroid", "xcentroid", "x_0", "xcenter")
_Y_NAMES = ("y", "y_centroid", "ycentroid", "y_0", "ycenter")
_RA_NAMES = ("ra", "RA", "ra_deg", "RAJ2000")
_DEC_NAMES = ("dec", "DEC", "Dec", "dec_deg", "DEJ2000")


@dataclass
class UserPositions:
    """
    Source positions given by the user, in pixels.

    Attributes
    ----------
    x, y : ndarray
        0-based pixel coordinates.
    hole_radius : ndarray
        Requested hole radius in pixels, NaN where the hole rule decides.
    row : ndarray of int
        Index of each position in the user's input.
    """

    x: np.ndarray
    y: np.ndarray
    hole_radius: np.ndarray
    row: np.ndarray


def _pixel_scale(wcs: WCS) -> u.Quantity:
    scales = proj_plane_pixel_scales(wcs.celestial) * u.deg
    return np.sqrt(scales[0] * scales[1]).to(u.arcsec)


def _require_celestial(wcs: WCS | None, what: str) -> WCS:
    if wcs is None or not wcs.has_celestial:
        raise ValueError(
            f"{what} is given in sky coordinates but the map has no celestial WCS; give "
            "pixel positions (x, y columns or pixel regions) or a map with a WCS."
        )
    return wcs


def _column(table: Table, names: tuple[str, ...]):
    for name in names:
        if name in table.colnames:
            return table[name]
    return None


def _degrees(column) -> u.Quantity:
    if getattr(column, "unit", None) is not None:
        return u.Quantity(column)
    return np.asarray(column, dtype=float) * u.deg


def _radius_pixels(values, wcs: WCS | None) -> np.ndarray:
    if isinstance(values, u.Quantity) and values.unit.physical_type == "angle":
        scale = _pixel_scale(_require_celestial(wcs, "hole_radius"))
        return (values / scale).to_value(u.dimensionless_unscaled)
    if isinstance(values, u.Quantity):
        return values.to_value(u.pix)
    return np.asarray(values, dtype=float)


def catalog_positions(
    catalog: Table | SkyCoord,
    wcs: WCS | None,
    shape: tuple[int, int],
) -> UserPositions:
    """
    Pixel positions of a user catalogue, with off-map rows left out and listed.

    Parameters
    ----------
    catalog : `~astropy.table.Table` or `~astropy.coordinates.SkyCoord`
        See the module docstring for the accepted columns.
    wcs : `~astropy.wcs.WCS` or None
        WCS of the map (needed for sky positions or angular radii).
    shape : tuple of int
        Shape of the map.

    Returns
    -------
    `UserPositions`

    Raises
    ------
    TypeError
        If ``catalog`` is neither a table nor a SkyCoord.
    ValueError
        If it has no usable position columns or holds NaN positions.

    Warns
    -----
    `~astropy.utils.exceptions.AstropyUserWarning`
        Listing the rows that fall off the map.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from nemesis_bkg.masking.user_inputs import catalog_positions
    >>> catalog_positions(Table({"x": [3.0], "y": [4.0]}), None, (10, 10)).x
    array([3.])
    """
    radius = None
    if isinstance(catalog, SkyCoord):
        wcs = _require_celestial(wcs, "catalog")
        x, y = wcs.world_to_pixel(catalog.reshape(-1) if catalog.ndim else catalog.reshape(1))
    elif isinstance(catalog, Table):
        x_col, y_col = _column(catalog, _X_NAMES), _column(catalog, _Y_NAMES)
        ra_col, dec_col = _column(catalog, _RA_NAMES), _column(catalog, _DEC_NAMES)
        if x_col is not None and y_col is not None:
            # Masked (empty) cells become NaN, so they are refused rather than read as 0.
            x, y = (np.ma.filled(np.ma.asarray(getattr(col, "value", col), dtype=float), np.nan)
                    for col in (x_col, y_col))
        elif "sky_centroid" in catalog.colnames:
            wcs = _require_celestial(wcs, "catalog")
            x, y = wcs.world_to_pixel(catalog["sky_centroid"])
        elif ra_col is not None and dec_col is not None:
            wcs = _require_celestial(wcs, "catalog")
            ra, dec = _degrees(ra_col), _degrees(dec_col)
            x, y = wcs.world_to_pixel(SkyCoord(ra, dec, frame="icrs"))
        else:
            raise ValueError(
                "catalog needs position columns: 'x' and 'y' (pixels), 'sky_centroid' "
                f"(SkyCoord), or 'ra' and 'dec'; it has {catalog.colnames}."
            )
        if "hole_radius" in catalog.colnames:
            radius = _radius_pixels(catalog["hole_radius"], wcs)
    else:
        raise TypeError(
            f"catalog must be an astropy Table/QTable or a SkyCoord, not {type(catalog).__name__}."
        )
    x, y = np.atleast_1d(np.asarray(x, dtype=float)), np.atleast_1d(np.asarray(y, dtype=float))
    radius = np.full(x.shape, np.nan) if radius is None else np.broadcast_to(radius, x.shape)

    rows = np.arange(x.size)
    not_finite = ~(np.isfinite(x) & np.isfinite(y))
    if not_finite.any():
        raise ValueError(
            f"catalog rows {rows[not_finite].tolist()} have NaN or infinite positions (or lie "
            "where the WCS is undefined); remove them or give valid positions."
        )
    off_map = (x < -0.5) | (x > shape[1] - 0.5) | (y < -0.5) | (y > shape[0] - 0.5)
    if off_map.any():
        warnings.warn(
            f"catalog rows {rows[off_map].tolist()} fall off the map (shape {shape}) and get "
            "no hole.",
            AstropyUserWarning,
            stacklevel=3,
        )
    keep = ~off_map
    bad_radius = keep & np.isfinite(radius) & (radius <= 0)
    if bad_radius.any():
        raise ValueError(f"catalog rows {rows[bad_radius].tolist()} have hole_radius <= 0.")
    return UserPositions(x=x[keep], y=y[keep], hole_radius=np.array(radius[keep], dtype=float),
                         row=rows[keep])


def read_regions(regions: Regions | Region | str | os.PathLike, what: str) -> list[Region]:
    """
    Turn ``regions``/``protect`` input into a list of regions.

    Parameters
    ----------
    regions : `regions.Regions`, region, str or path-like
        Regions, or the path of a DS9 (``.reg``) or CRTF (``.crtf``) file.
    what : str
        Name of the argument, for error messages.

    Returns
    -------
    list of `regions.Region`

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file cannot be parsed, or parses to nothing.
    TypeError
        For any other kind of input.

    Examples
    --------
    >>> from regions import CirclePixelRegion, PixCoord
    >>> from nemesis_bkg.masking.user_inputs import read_regions
    >>> len(read_regions(CirclePixelRegion(PixCoord(3, 4), 2.0), "regions"))
    1
    """
    if isinstance(regions, Region):
        return [regions]
    if isinstance(regions, Regions):
        return list(regions)
    if isinstance(regions, list | tuple) and all(isinstance(r, Region) for r in regions):
        return list(regions)
    if not isinstance(regions, str | os.PathLike):
        raise TypeError(
            f"{what} must be a regions.Regions, a region, or the path of a DS9/CRTF file, "
            f"not {type(regions).__name__}."
        )
    path = os.fspath(regions)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} file {path!r} does not exist.")
    file_format = "crtf" if path.lower().endswith(".crtf") else "ds9"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parsed = Regions.read(path, format=file_format)
        except Exception as exc:  # the parsers raise many kinds of errors
            raise ValueError(
                f"cannot parse {what} file {path!r} as {file_format.upper()} ({exc})."
            ) from exc
    problems = [str(w.message) for w in caught if "unable to parse" in str(w.message)
                or "skipping" in str(w.message)]
    if problems:
        raise ValueError(
            f"{what} file {path!r} has lines that cannot be parsed as {file_format.upper()}: "
            + "; ".join(problems)
        )
    if len(parsed) == 0:
        raise ValueError(f"{what} file {path!r} holds no region.")
    return list(parsed)


def _to_pixel(region: Region, wcs: WCS | None, what: str) -> PixelRegion:
    if isinstance(region, SkyRegion):
        return region.to_pixel(_require_celestial(wcs, what))
    return region


def regions_to_mask(
    regions: list[Region], wcs: WCS | None, shape: tuple[int, int], what: str
) -> tuple[np.ndarray, list[PixelRegion], list[PointPixelRegion]]:
    """
    Rasterise regions (pixel centres inside) and pick out point regions.

    Parameters
    ----------
    regions : list of `regions.Region`
    wcs : `~astropy.wcs.WCS` or None
        Needed for sky regions.
    shape : tuple of int
        Shape of the map.
    what : str
        Name of the argument, for error messages.

    Returns
    -------
    mask : ndarray of bool
        Pixels inside any area region.
    area_regions : list of `regions.PixelRegion`
        The regions with an area, in pixel coordinates.
    points : list of `regions.PointPixelRegion`
        Point regions (no area), in pixel coordinates.

    Examples
    --------
    >>> from regions import CirclePixelRegion, PixCoord
    >>> from nemesis_bkg.masking.user_inputs import regions_to_mask
    >>> mask, _, _ = regions_to_mask([CirclePixelRegion(PixCoord(4, 4), 1.5)], None, (9, 9),
    ...                              "regions")
    >>> int(mask.sum())
    9
    """
    mask = np.zeros(shape, dtype=bool)
    area_regions, points = [], []
    for region in regions:
        pixel_region = _to_pixel(region, wcs, what)
        if isinstance(pixel_region, PointPixelRegion):
            points.append(pixel_region)
            continue
        try:
            region_mask = pixel_region.to_mask(mode="center")
        except (AttributeError, NotImplementedError, TypeError) as exc:
            raise ValueError(
                f"{what} holds a {type(region).__name__}, which has no area to mask; use "
                "circles, ellipses, polygons, rectangles or annuli (points in regions=)."
            ) from exc
        mask |= region_mask.to_image(shape, dtype=bool) if region_mask is not None else False
        area_regions.append(pixel_region)
    return mask, area_regions, points
