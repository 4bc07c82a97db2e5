"""
The user's own sources and regions: ``catalog=``, ``regions=`` and ``protect=``.

- ``catalog``: a `~astropy.table.Table`/`~astropy.table.QTable` with
  ``x``, ``y`` (0-based pixels, pixel centres at integers as in photutils;
  unitless or in ``u.pix``), or else ``sky_centroid`` (SkyCoord), or else
  ``ra``, ``dec`` columns (ICRS, degrees when unitless); optionally
  ``hole_radius`` (pixels, or an angle with a WCS; masked or NaN cells
  leave the radius to the hole rule); or a `~astropy.coordinates.SkyCoord`.
  NaN positions are an error; positions off the map are left out with a
  warning that lists them.
- ``regions``/``protect``: a `regions.Regions`, a single region, a list of
  regions, or the path of a DS9 or CRTF region file (lines that cannot be
  parsed are an error, never skipped). A region covers the pixels whose
  centre it contains; one that covers none is left out with a warning.
  Point regions in ``regions`` are positions whose hole follows the hole
  rule, like catalogue rows; in ``protect`` they are an error (a point
  protects no pixel).
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

__all__ = ["UserPositions", "catalog_positions", "read_regions", "region_pixels",
           "regions_to_mask", "to_pixel_region"]

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


def _unit_of(column) -> u.UnitBase | None:
    unit = getattr(column, "unit", None)
    return None if unit is None else u.Unit(unit)


def _filled(column) -> np.ndarray:
    """Values of a column as floats, masked (empty) cells as NaN rather than their fill."""
    return np.ma.filled(np.ma.asarray(getattr(column, "value", column), dtype=float), np.nan)


def _pixel_values(column, name: str) -> np.ndarray:
    unit = _unit_of(column)
    if unit not in (None, u.pix, u.dimensionless_unscaled):
        raise ValueError(
            f"catalog column {name!r} is in {unit}, but x/y columns are 0-based pixel "
            "positions; give them in pixels (no unit or u.pix), or give sky positions as "
            "'sky_centroid' or 'ra'/'dec' columns."
        )
    return _filled(column)


def _radius_pixels(column, wcs: WCS | None) -> np.ndarray:
    unit = _unit_of(column)
    if unit is not None and unit.physical_type == "angle":
        scale = _pixel_scale(_require_celestial(wcs, "hole_radius"))
        return (_filled(column) * unit / scale).to_value(u.dimensionless_unscaled)
    if unit not in (None, u.pix, u.dimensionless_unscaled):
        raise ValueError(
            f"catalog column 'hole_radius' is in {unit}; give it in pixels (no unit or u.pix) "
            "or as an angle (with a map that has a celestial WCS)."
        )
    return _filled(column)


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
        If it has no usable position columns, holds NaN positions, has x/y
        or hole_radius columns in a unit that is no length in pixels (or an
        angle, for the radius), or a hole_radius that is not positive and
        finite (NaN excepted).

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
            x, y = _pixel_values(x_col, x_col.info.name), _pixel_values(y_col, y_col.info.name)
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
            f"catalog must be an astropy Table/QTable or a SkyCoord, not {type(catalog).__name__}; "
            "e.g. Table({'x': x, 'y': y}) of pixel positions, or the to_table() of a photutils "
            "SourceCatalog."
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
    # Pixel centres are at integers: the map's pixels reach 0.5 beyond the first and last.
    off_map = (x < -0.5) | (x > shape[1] - 0.5) | (y < -0.5) | (y > shape[0] - 0.5)
    if off_map.any():
        warnings.warn(
            f"catalog rows {rows[off_map].tolist()} fall off the map (shape {shape}) and get "
            "no hole.",
            AstropyUserWarning,
            stacklevel=3,
        )
    keep = ~off_map
    # NaN asks for the hole rule; any other radius must be a usable size.
    bad_radius = keep & ~np.isnan(radius) & ~(np.isfinite(radius) & (radius > 0))
    if bad_radius.any():
        raise ValueError(
            f"catalog rows {rows[bad_radius].tolist()} have a hole_radius that is not positive "
            "and finite; give a radius > 0, or NaN (or a masked cell) to use the hole rule."
        )
    return UserPositions(x=x[keep], y=y[keep], hole_radius=np.array(radius[keep], dtype=float),
                         row=rows[keep])


def read_regions(regions: Regions | Region | str | os.PathLike, what: str) -> list[Region]:
    """
    Turn ``regions``/``protect`` input into a list of regions.

    Parameters
    ----------
    regions : `regions.Regions`, region, list of regions, str or path-like
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


def to_pixel_region(region: Region, wcs: WCS | None, what: str = "regions") -> PixelRegion:
    """
    A region in the map's pixel frame: sky regions through the WCS, pixel ones as they are.

    Parameters
    ----------
    region : `regions.Region`
    wcs : `~astropy.wcs.WCS` or None
        The map's WCS; needed for a sky region.
    what : str, optional
        The keyword the region came from, for error messages.

    Returns
    -------
    `regions.PixelRegion`

    Raises
    ------
    ValueError
        For a sky region on a map without a celestial WCS.

    Examples
    --------
    >>> from regions import CirclePixelRegion, PixCoord
    >>> to_pixel_region(CirclePixelRegion(PixCoord(3, 4), 2.0), None).center
    PixCoord(x=3, y=4)
    """
    if isinstance(region, SkyRegion):
        return region.to_pixel(_require_celestial(wcs, what))
    return region


def region_pixels(region: PixelRegion, shape: tuple[int, int],
                  what: str = "regions") -> tuple[np.ndarray, np.ndarray]:
    """
    Rows and columns of the map's pixels whose centre lies in a region.

    Pixel centres are at integer coordinates, as in photutils and regions
    (``to_mask(mode="center")``). Only the region's bounding box is
    rasterised.

    Parameters
    ----------
    region : `regions.PixelRegion`
        A region with an area, in the map's pixel coordinates.
    shape : tuple of int
        Shape of the map.
    what : str, optional
        Name of the argument the region came from, for error messages.

    Returns
    -------
    rows, cols : ndarray of int
        Empty when the region covers no pixel centre of the map.

    Raises
    ------
    ValueError
        If the region has no area (a point, a line, a text).

    Examples
    --------
    >>> from regions import RectanglePixelRegion, PixCoord
    >>> from nemesis_bkg.masking.user_inputs import region_pixels
    >>> rows, cols = region_pixels(RectanglePixelRegion(PixCoord(0.0, 1.0), 3.0, 1.0), (4, 4))
    >>> rows.tolist(), cols.tolist()
    ([1, 1], [0, 1])
    """
    try:
        region_mask = region.to_mask(mode="center")
    except (AttributeError, NotImplementedError, TypeError) as exc:
        raise ValueError(
            f"{what} holds a {type(region).__name__}, which has no area to mask; use "
            "circles, ellipses, polygons, rectangles or annuli (points in regions=)."
        ) from exc
    in_map, in_cutout = region_mask.get_overlap_slices(shape)
    if in_map is None:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    rows, cols = np.nonzero(region_mask.data[in_cutout])
    return rows + in_map[0].start, cols + in_map[1].start


def regions_to_mask(
    regions: list[Region],
    wcs: WCS | None,
    shape: tuple[int, int],
    what: str,
    *,
    allow_points: bool = True,
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
        Name of the argument, for error and warning messages.
    allow_points : bool, optional
        Whether point regions are accepted (as positions); with False
        (``protect=``, where a point would protect no pixel) they are an
        error. Default True.

    Returns
    -------
    mask : ndarray of bool
        Pixels inside any area region.
    area_regions : list of `regions.PixelRegion`
        The regions with an area that cover at least one pixel centre of
        the map, in pixel coordinates.
    points : list of `regions.PointPixelRegion`
        Point regions (no area), in pixel coordinates.

    Raises
    ------
    ValueError
        For a region without an area other than a point, for points when
        ``allow_points`` is False, and for sky regions without a celestial WCS.

    Warns
    -----
    `~astropy.utils.exceptions.AstropyUserWarning`
        For each area region that covers no pixel centre of the map.

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
        pixel_region = to_pixel_region(region, wcs, what)
        if isinstance(pixel_region, PointPixelRegion):
            if not allow_points:
                raise ValueError(
                    f"{what} holds a point region at {pixel_region.center}, which covers no "
                    "pixel and so protects nothing; give an area around it (e.g. a circle)."
                )
            points.append(pixel_region)
            continue
        rows, cols = region_pixels(pixel_region, shape, what)
        if not rows.size:
            warnings.warn(
                f"{what} region {pixel_region!r} covers no pixel centre of the map (it lies off "
                "the map, or between pixel centres) and is ignored.",
                AstropyUserWarning,
                stacklevel=4,
            )
            continue
        mask[rows, cols] = True
        area_regions.append(pixel_region)
    return mask, area_regions, points
