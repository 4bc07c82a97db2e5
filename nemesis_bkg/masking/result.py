"""
`SourceMask`: the holes, the catalogue of what they cover, and the maps
used to decide them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import QTable
from astropy.wcs import WCS
from photutils.segmentation import SegmentationImage
from regions import CirclePixelRegion, PixCoord, PixelRegion, Regions

__all__ = [
    "FLAG_EDGE",
    "FLAG_MERGED",
    "FLAG_PROTECTED",
    "FLAG_TENTATIVE",
    "ORIGINS",
    "SourceMask",
    "empty_catalog",
    "hole_regions",
    "make_catalog",
]

#: Bit flags of the ``flags`` catalogue column.
FLAG_EDGE = 1  # the hole touches pixels without coverage, or is cut by the map's border
FLAG_MERGED = 2  # the hole overlaps another source's hole (they form one hole)
FLAG_PROTECTED = 4  # part of the hole was given back to a protect= region
FLAG_TENTATIVE = 8  # a faint companion that its bright neighbour's fitting error may explain

#: Values of the ``origin`` column.
ORIGINS = ("detected", "catalog", "region", "mask")


def _sky_column(wcs: WCS | None, x: np.ndarray, y: np.ndarray):
    if wcs is not None and wcs.has_celestial:
        if len(x):
            return wcs.pixel_to_world(x, y)
        return SkyCoord([], [], unit="deg", frame=wcs.pixel_to_world(0, 0).frame)
    # No celestial WCS: the column is kept (same columns for every map), holding None.
    column = np.empty(len(x), dtype=object)
    column[:] = None
    return column


def make_catalog(
    *,
    x: np.ndarray,
    y: np.ndarray,
    peak_snr: np.ndarray,
    hole_radius: np.ndarray,
    segment_area: np.ndarray,
    flags: np.ndarray,
    origin: np.ndarray,
    wcs: WCS | None,
) -> QTable:
    """
    Build the catalogue of holes (one row per source or user hole).

    Parameters
    ----------
    x, y : ndarray
        Centres (0-based pixels).
    peak_snr : ndarray
        Peak signal-to-noise ratio (NaN where not measured).
    hole_radius : ndarray
        Radius of the centred circle enclosing each hole, pixels.
    segment_area : ndarray
        Pixels in the source's segment (0 for user holes without one).
    flags : ndarray of int
        Bit flags (`FLAG_EDGE`, `FLAG_MERGED`, `FLAG_PROTECTED`, `FLAG_TENTATIVE`).
    origin : ndarray of str
        One of `ORIGINS`.
    wcs : `~astropy.wcs.WCS` or None

    Returns
    -------
    `~astropy.table.QTable`
        Columns id, x, y, sky_centroid, peak_snr, hole_radius (pix),
        segment_area (pix2), flags, origin.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking.result import make_catalog
    >>> one = np.ones(1)
    >>> make_catalog(x=one, y=one, peak_snr=one, hole_radius=one, segment_area=one,
    ...              flags=np.zeros(1, int), origin=np.array(["detected"]), wcs=None).colnames
    ['id', 'x', 'y', 'sky_centroid', 'peak_snr', 'hole_radius', 'segment_area', 'flags', 'origin']
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    catalog = QTable()
    catalog["id"] = np.arange(1, len(x) + 1, dtype=np.int64)
    catalog["x"] = x
    catalog["y"] = y
    catalog["sky_centroid"] = _sky_column(wcs, x, y)
    catalog["peak_snr"] = np.asarray(peak_snr, dtype=float)
    catalog["hole_radius"] = np.asarray(hole_radius, dtype=float) * u.pix
    catalog["segment_area"] = np.asarray(segment_area, dtype=float) * u.pix**2
    catalog["flags"] = np.asarray(flags, dtype=np.int32)
    catalog["origin"] = np.asarray(origin, dtype="U8")
    return catalog


def empty_catalog(wcs: WCS | None) -> QTable:
    """
    A catalogue with no rows and the same columns and types as a full one.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS` or None

    Returns
    -------
    `~astropy.table.QTable`

    Examples
    --------
    >>> from nemesis_bkg.masking.result import empty_catalog
    >>> len(empty_catalog(None)), empty_catalog(None)["hole_radius"].unit
    (0, Unit("pix"))
    """
    nothing = np.zeros(0)
    return make_catalog(x=nothing, y=nothing, peak_snr=nothing, hole_radius=nothing,
                        segment_area=nothing, flags=np.zeros(0, dtype=np.int32),
                        origin=np.zeros(0, dtype="U8"), wcs=wcs)


@dataclass
class SourceMask:
    """
    Holes cut around compact sources, with their catalogue.

    Attributes
    ----------
    mask : ndarray of bool
        The holes: pixels to inpaint. Only covered pixels are ever True;
        includes the input's own mask (``image.mask``).
    catalog : `~astropy.table.QTable`
        One row per hole-making source: ``id``, ``x``, ``y`` (0-based
        pixels, pixel centres at integers as in photutils), ``sky_centroid``
        (SkyCoord with a celestial WCS, else None), ``peak_snr`` (NaN for
        ``'mask'`` rows), ``hole_radius`` (pix; radius of the centred
        circle that encloses the source's hole), ``segment_area`` (pix2;
        the pixels of a ``'region'`` or ``'mask'`` row's area, 0 without
        one), ``flags`` (bits `FLAG_EDGE`, `FLAG_MERGED`, `FLAG_PROTECTED`,
        `FLAG_TENTATIVE`), ``origin`` (``'detected'``, ``'catalog'``,
        ``'region'``, ``'mask'``).
    background : ndarray
        Smooth local background (clipped box medians over a few beams).
    background_rms : ndarray
        1-sigma pixel noise used for ``peak_snr`` and the hole radii.
    fwhm_pixels : float
        Beam FWHM in pixels.
    wcs : `~astropy.wcs.WCS` or None
    segmentation : `~photutils.segmentation.SegmentationImage` or None
        Segments of the significance map (None when nothing was detected).
    user_regions : list of `regions.PixelRegion`
        The ``regions=`` regions, in the order of the ``'region'`` rows (point
        regions as circles of their hole radius).

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking import FLAG_EDGE, build_source_mask
    >>> y, x = np.mgrid[:64, :64]
    >>> data = 50 * np.exp(-((x - 30) ** 2 + (y - 1) ** 2) / (2 * 1.5**2))
    >>> holes = build_source_mask(data + np.random.default_rng(0).normal(size=data.shape), 3.5)
    >>> row = holes.catalog[0]
    >>> round(float(row["x"])), round(float(row["y"])), bool(row["flags"] & FLAG_EDGE)
    (30, 1, True)
    >>> holes.mask.shape, holes.background_rms.shape
    ((64, 64), (64, 64))
    """

    mask: np.ndarray
    catalog: QTable
    background: np.ndarray
    background_rms: np.ndarray
    fwhm_pixels: float
    wcs: WCS | None = None
    segmentation: SegmentationImage | None = None
    user_regions: list[PixelRegion] = field(default_factory=list)

    def regions(self) -> Regions:
        """
        The holes as regions that DS9 can display.

        A circle of radius ``hole_radius`` per catalogue row (the user's own
        region for ``'region'`` rows with an area), as sky regions when the
        map has a celestial WCS, pixel regions otherwise. The rows are read
        from ``catalog``: keep its rows in their order.

        Returns
        -------
        `regions.Regions`

        Examples
        --------
        >>> import numpy as np
        >>> from nemesis_bkg.masking import build_source_mask
        >>> from nemesis_bkg.io import read_image
        >>> y, x = np.mgrid[:64, :64]
        >>> data = 50 * np.exp(-((x - 30) ** 2 + (y - 33) ** 2) / (2 * 1.5**2))
        >>> data = data + np.random.default_rng(0).normal(size=data.shape)
        >>> holes = build_source_mask(read_image(data), 3.5)
        >>> hole = holes.regions()[0]
        >>> type(hole).__name__, round(hole.center.x), round(hole.center.y)
        ('CirclePixelRegion', 30, 33)
        """
        user_regions = iter(self.user_regions)
        return hole_regions(self.catalog, [next(user_regions) if origin == "region" else None
                                           for origin in self.catalog["origin"]], self.wcs)


def hole_regions(catalog: QTable, user_regions: list[PixelRegion | None],
                 wcs: WCS | None) -> Regions:
    """
    The holes of a catalogue as regions that DS9 can display.

    Parameters
    ----------
    catalog : `~astropy.table.QTable`
        Rows with ``x``, ``y`` (pixels) and ``hole_radius``.
    user_regions : list
        Per row, the user's own region (in the map's pixel frame) that made
        the hole, or None for a circle of ``hole_radius`` around ``x, y``.
    wcs : `~astropy.wcs.WCS` or None
        Sky regions when it has celestial axes, pixel regions otherwise.

    Returns
    -------
    `regions.Regions`

    Examples
    --------
    >>> catalog = make_catalog(x=[3.0], y=[4.0], peak_snr=[9.0], hole_radius=[2.5],
    ...                        segment_area=[7], flags=[0], origin=["detected"], wcs=None)
    >>> hole = hole_regions(catalog, [None], None)[0]
    >>> type(hole).__name__, hole.center.xy, hole.radius
    ('CirclePixelRegion', (3.0, 4.0), 2.5)
    """
    celestial = wcs is not None and wcs.has_celestial
    radii = catalog["hole_radius"].to_value(u.pix)
    shapes = []
    for x, y, radius, region in zip(catalog["x"], catalog["y"], radii, user_regions,
                                    strict=True):
        if region is None:
            region = CirclePixelRegion(PixCoord(float(x), float(y)), float(radius))
        shapes.append(region.to_sky(wcs) if celestial else region)
    return Regions(shapes)
