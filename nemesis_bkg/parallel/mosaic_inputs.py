"""
The user's own sources and regions on a mosaic: ``catalog=``, ``regions=``
and ``protect=`` of `~nemesis_bkg.parallel.remove_mosaic`.

They are read once, in the whole map's pixel frame (sky positions and sky
regions through the map's WCS, as `~nemesis_bkg.masking.build_source_mask`
reads them for the whole map), and every window (a chunk and its halo) gets
what falls in it, in its own pixel frame:

- catalogue positions and point regions are shifted by the window's origin,
  a whole number of pixels no larger than any position in the window: the
  subtraction is exact, so a window measures a source where the whole map
  does;
- regions with an area are rasterised once over their bounding boxes, as the
  whole map rasterises them, and a window gets its part of those pixels
  (`WindowRegion`): shifting a region's geometry instead could move a pixel
  centre lying on its edge across it, by a rounding. Each part names the
  region it was cut from (``region_index``, its place in
  `MosaicUserInputs.area_regions`), so that the catalogue row a window
  makes for it leads back to the user's own region.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from regions import (
    PixCoord,
    PixelRegion,
    PointPixelRegion,
    Region,
    RegionBoundingBox,
    RegionMask,
    RegionMeta,
    Regions,
    RegionVisual,
    SkyRegion,
)

from ..masking.user_inputs import (
    UserPositions,
    catalog_positions,
    read_regions,
    region_pixels,
    to_pixel_region,
)

__all__ = ["MosaicUserInputs", "WindowRegion"]

RegionsInput = Regions | Region | str | os.PathLike


class WindowRegion(PixelRegion):
    """
    The pixels of a user region that fall in one window of a mosaic, as the
    whole map's rasterisation gives them.

    The masking steps ask a region for its mask (``to_mask(mode="center")``)
    and its centre; this one answers with the whole map's pixels, so that a
    window masks exactly what the whole map masks.

    Parameters
    ----------
    pixels : ndarray of bool
        The region's pixels over a box of the window.
    corner : tuple of int
        Position (row, column) of ``pixels[0, 0]`` in the window.
    center : `regions.PixCoord`, optional
        The region's centre in the window's frame (its catalogue position).
    region_index : int, optional
        Place of the region it was cut from in
        `MosaicUserInputs.area_regions` (None for a ``protect`` region).

    Examples
    --------
    >>> import numpy as np
    >>> from regions import PixCoord
    >>> from nemesis_bkg.parallel.mosaic_inputs import WindowRegion
    >>> region = WindowRegion(np.ones((2, 3), bool), (4, 5))
    >>> int(region.to_mask().to_image((8, 8), dtype=bool).sum()), region.bounding_box.ixmin
    (6, 5)
    >>> region.contains(PixCoord([5.0, 4.0], [4.0, 4.0])).tolist()
    [True, False]
    """

    _params = ("center",)

    def __init__(self, pixels: np.ndarray, corner: tuple[int, int],
                 center: PixCoord | None = None, *, region_index: int | None = None) -> None:
        self.pixels = np.asarray(pixels, dtype=bool)
        self.corner = (int(corner[0]), int(corner[1]))
        self.center = center
        self.region_index = region_index
        self.meta = RegionMeta()
        self.visual = RegionVisual()

    @property
    def area(self) -> float:
        """Number of pixels of the region."""
        return float(np.count_nonzero(self.pixels))

    @property
    def bounding_box(self) -> RegionBoundingBox:
        """The box of ``pixels`` in the window."""
        row, col = self.corner
        return RegionBoundingBox(col, col + self.pixels.shape[1], row,
                                 row + self.pixels.shape[0])

    def contains(self, pixcoord: PixCoord) -> np.ndarray | bool:
        """Whether positions lie in one of the region's pixels."""
        rows = np.floor(np.asarray(pixcoord.y) + 0.5).astype(int) - self.corner[0]
        cols = np.floor(np.asarray(pixcoord.x) + 0.5).astype(int) - self.corner[1]
        inside = ((rows >= 0) & (rows < self.pixels.shape[0])
                  & (cols >= 0) & (cols < self.pixels.shape[1]))
        found = np.zeros(inside.shape, dtype=bool)
        found[inside] = self.pixels[rows[inside], cols[inside]]
        return bool(found) if pixcoord.isscalar else found

    def to_mask(self, mode: str = "center", subpixels: int = 1) -> RegionMask:
        """The region's pixels; whole pixels only (``mode="center"``)."""
        if mode != "center":
            raise ValueError(f"a {type(self).__name__} holds whole pixels: only mode='center' "
                             f"is defined, not {mode!r}.")
        return RegionMask(self.pixels, bbox=self.bounding_box)

    def to_sky(self, wcs: WCS) -> SkyRegion:
        """Refused: the pixels of one window have no sky form."""
        raise NotImplementedError(f"a {type(self).__name__} is a set of pixels of one window; "
                                  "it has no sky form (use the region it was cut from).")

    def to_spherical_sky(self, wcs: WCS, *, boundary_distortions: bool = False,
                         n_vertices: int | None = None) -> Any:
        """Refused, as `to_sky`."""
        return self.to_sky(wcs)

    def as_artist(self, origin: tuple[int, int] = (0, 0), **kwargs: Any) -> Any:
        """Refused: plot the region the pixels were cut from."""
        raise NotImplementedError(f"a {type(self).__name__} is a set of pixels of one window; "
                                  "plot the region it was cut from.")


@dataclasses.dataclass(frozen=True)
class _Raster:
    """A region (in the map's pixel frame) rasterised, clipped to the map."""

    region: PixelRegion
    pixels: np.ndarray
    corner: tuple[int, int]
    center: tuple[float, float] | None

    def cut(self, window: tuple[slice, slice], region_index: int | None = None
            ) -> WindowRegion | None:
        """The region's part of a window (None when it has no pixel there)."""
        first = [max(self.corner[axis], window[axis].start) for axis in (0, 1)]
        last = [min(self.corner[axis] + self.pixels.shape[axis], window[axis].stop)
                for axis in (0, 1)]
        if first[0] >= last[0] or first[1] >= last[1]:
            return None
        pixels = self.pixels[first[0] - self.corner[0]:last[0] - self.corner[0],
                             first[1] - self.corner[1]:last[1] - self.corner[1]]
        if not pixels.any():
            return None
        center = None
        if self.center is not None:
            center = PixCoord(self.center[0] - window[1].start, self.center[1] - window[0].start)
        return WindowRegion(pixels, (first[0] - window[0].start, first[1] - window[1].start),
                            center, region_index=region_index)


def _rasterise(region: PixelRegion, shape: tuple[int, int], what: str) -> _Raster | None:
    """The region's pixels (centres inside) on the map; None, with a warning, without any."""
    rows, cols = region_pixels(region, shape, what)
    if not rows.size:
        warnings.warn(f"{what} region {region} covers no pixel centre of the map (it lies off "
                      "the map, or between pixel centres) and is ignored.", AstropyUserWarning,
                      stacklevel=4)
        return None
    corner = (int(rows.min()), int(cols.min()))
    pixels = np.zeros((int(rows.max()) + 1 - corner[0], int(cols.max()) + 1 - corner[1]),
                      dtype=bool)
    pixels[rows - corner[0], cols - corner[1]] = True
    centre = getattr(region, "center", None)
    if centre is None:
        # The mean position of its pixels on the map, computed as the whole map does.
        return _Raster(region, pixels, corner, (float(cols.mean()), float(rows.mean())))
    return _Raster(region, pixels, corner, (float(centre.x), float(centre.y)))


@dataclasses.dataclass(frozen=True)
class MosaicUserInputs:
    """
    The user's sources and regions in the map's pixel frame, handed out
    window by window.

    Attributes
    ----------
    shape : tuple of int
        Shape of the map.
    catalog : `~nemesis_bkg.masking.user_inputs.UserPositions` or None
        Catalogue positions on the map.
    points : ndarray
        ``(x, y)`` of the point regions in ``regions=``, one per row.
    regions : list
        The regions with an area, rasterised.
    protect : list
        The protect regions, rasterised.
    """

    shape: tuple[int, int]
    catalog: UserPositions | None
    points: np.ndarray
    regions: list[_Raster]
    protect: list[_Raster]

    @classmethod
    def read(cls, shape: tuple[int, int], wcs: WCS | None, *,
             catalog: Table | SkyCoord | None = None, regions: RegionsInput | None = None,
             protect: RegionsInput | None = None) -> MosaicUserInputs:
        """
        Read ``catalog``, ``regions`` and ``protect`` for a map of ``shape``.

        Parameters
        ----------
        shape : tuple of int
            Shape of the whole map.
        wcs : `~astropy.wcs.WCS` or None
            The map's WCS (for sky positions and sky regions).
        catalog, regions, protect : optional
            As for `~nemesis_bkg.CompactSourceRemover.remove`.

        Returns
        -------
        `MosaicUserInputs`

        Raises
        ------
        TypeError, ValueError, FileNotFoundError
            For inputs the in-memory path refuses, with the same messages.

        Warns
        -----
        `~astropy.utils.exceptions.AstropyUserWarning`
            For catalogue rows off the map and regions that cover no pixel
            of it, which get no hole.

        Examples
        --------
        >>> from astropy.table import Table
        >>> from nemesis_bkg.parallel.mosaic_inputs import MosaicUserInputs
        >>> inputs = MosaicUserInputs.read((100, 100), None, catalog=Table({"x": [60.0],
        ...                                                                  "y": [10.0]}))
        >>> inputs.for_window((slice(0, 50), slice(40, 100)))["catalog"]["x"].tolist()
        [20.0]
        """
        positions = None if catalog is None else catalog_positions(catalog, wcs, shape)
        points, areas, protected = [], [], []
        for what, given, rasters in (("regions", regions, areas),
                                     ("protect", protect, protected)):
            for region in [] if given is None else read_regions(given, what):
                pixel_region = to_pixel_region(region, wcs, what)
                if isinstance(pixel_region, PointPixelRegion):
                    if what == "protect":
                        raise ValueError(
                            f"protect holds a point region at {pixel_region.center}, which "
                            "covers no pixel and so protects nothing; give an area around it "
                            "(e.g. a circle)."
                        )
                    points.append((pixel_region.center.x, pixel_region.center.y))
                    continue
                raster = _rasterise(pixel_region, shape, what)
                if raster is not None:
                    rasters.append(raster)
        return cls(shape=tuple(shape), catalog=positions,
                   points=np.array(points, dtype=float).reshape(-1, 2), regions=areas,
                   protect=protected)

    @property
    def area_regions(self) -> list[PixelRegion]:
        """
        The ``regions=`` regions with an area that cover a pixel of the map,
        in the map's pixel frame, in the order of `regions` (the
        ``region_index`` of a `WindowRegion`).
        """
        return [raster.region for raster in self.regions]

    @property
    def largest_extent(self) -> float:
        """Largest side, in pixels, of a hole whose size the user set (0 without)."""
        extents = [max(raster.pixels.shape) for raster in self.regions]
        if self.catalog is not None:
            requested = self.catalog.hole_radius[np.isfinite(self.catalog.hole_radius)]
            extents += list(2 * np.ceil(requested) + 1)
        return float(max(extents, default=0))

    def _positions_in(self, x: np.ndarray, y: np.ndarray,
                      window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions in the window's frame, and which lie in it (beyond the map: nearest pixel)."""
        inside = np.ones(x.shape, dtype=bool)
        shifted = []
        for values, span, side in ((x, window[1], self.shape[1]), (y, window[0], self.shape[0])):
            # Whole-pixel shifts of positions within the window: exact.
            nearest = np.clip(values, -0.5, side - 0.5) - span.start
            inside &= (nearest >= -0.5) & (nearest <= span.stop - span.start - 0.5)
            shifted.append(values - span.start)
        return shifted[0], shifted[1], inside

    def for_window(self, window: tuple[slice, slice]) -> dict[str, Any]:
        """
        ``catalog``, ``regions`` and ``protect`` for one window, in its frame.

        Every entry that falls in the window is given, those in its halo
        included: a hole is drawn by every window it reaches. A position off
        the map goes to the windows at the map's edge next to it, as the whole
        map measures it at its nearest pixel.

        Parameters
        ----------
        window : tuple of slice
            The window's rows and columns in the map.

        Returns
        -------
        dict
            Keyword arguments of `~nemesis_bkg.masking.build_source_mask`
            (None for what the window does not hold).
        """
        catalog = None
        if self.catalog is not None:
            x, y, inside = self._positions_in(self.catalog.x, self.catalog.y, window)
            if inside.any():
                catalog = Table({"x": x[inside], "y": y[inside],
                                 "hole_radius": self.catalog.hole_radius[inside]})
        x, y, inside = self._positions_in(self.points[:, 0], self.points[:, 1], window)
        regions = [PointPixelRegion(PixCoord(px, py))
                   for px, py in zip(x[inside], y[inside], strict=True)]
        regions += [cut for cut in (raster.cut(window, index)
                                    for index, raster in enumerate(self.regions))
                    if cut is not None]
        protect = [cut for cut in (raster.cut(window) for raster in self.protect)
                   if cut is not None]
        return {"catalog": catalog, "regions": regions or None, "protect": protect or None}
