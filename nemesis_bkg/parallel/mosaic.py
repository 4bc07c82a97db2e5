"""
Mosaics larger than memory: the map is cut into chunks, every chunk is
processed by the in-memory pipeline together with a halo of its
neighbours, and only its interior is kept.

The pipeline is local: every output pixel depends only on the map within a
reach set by the beam (box statistics of a few beams, the detection
filters, the holes, the inpainting tiles). With a halo that covers that
reach (`mosaic_halo`) and box grids anchored at the mosaic's own pixel
(0, 0) (the ``origin`` of `~nemesis_bkg.masking.build_source_mask`), each
interior equals the whole-map result. Windows start at even pixels, so that
half-integer positions round as in the whole map. A source belongs to the
chunk that holds its peak, so the catalogue lists it once. The user's own
sources and regions are read once for the whole map and handed to every
window they reach (`~nemesis_bkg.parallel.mosaic_inputs`); the catalogue
row of a region carries the region's place in the whole map's list, so that
`MosaicResult.regions` gives the user's own region back for it.

The chunks and their halos are Dask tasks that each read their own window
of the input: ``dask.array.map_overlap`` needs a halo no larger than a
chunk and rechunks the map otherwise, while the halo rule is larger than
many useful chunks (317 pixels at 3 pixels per beam).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import warnings
from collections.abc import Iterator
from typing import Any

import dask
import dask.array as da
import numpy as np
from astropy.io import fits
from astropy.nddata import NDData
from astropy.table import QTable
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from regions import PixelRegion, Regions
from scipy import ndimage

from ..instruments import Instrument, resolve_beam
from ..io import read_image
from ..masking.detection import FWHM_TO_SIGMA
from ..masking.holes import hole_radius
from ..masking.result import hole_regions, make_catalog
from ..results import catalog_to_fits_table
from .mosaic_fits import MosaicFitsWriter
from .mosaic_inputs import MosaicUserInputs, WindowRegion

__all__ = ["MosaicResult", "mosaic_halo", "open_mosaic", "remove_mosaic"]

#: Brightest peak signal-to-noise ratio whose hole the default halo covers.
SNR_CEILING = 1e8

#: Default chunk side, pixels, for arrays and files that are not chunked yet. With the halo of
#: a 3-pixel beam an 8192x8192 float32 mosaic then needs under 3 times its size in memory
#: (``nemesis-bkg bench scale``); larger chunks are faster where memory allows.
CHUNK_SIZE = 768

#: Catalogue columns carried from the chunks to the mosaic's catalogue.
_CATALOG_COLUMNS = ("x", "y", "peak_snr", "hole_radius", "segment_area", "flags", "origin")

#: Column carried with them, not published: per row, the place of its user region in
#: `MosaicUserInputs.area_regions` (-1 for a row without one).
_REGION_INDEX = "region_index"


def _box_reach(box_size: int) -> float:
    """
    Reach of a smoothed box statistic: interpolation between box centres
    (1 box), the 3x3 median filter (1 box), the box's own half side and one
    box more for a box without enough valid pixels, filled from its nearest
    neighbour.
    """
    return 3.5 * box_size


def _default_max_hole_extent(fwhm_pixels: float) -> float:
    """Four hole reaches (disk and segment) of a source at `SNR_CEILING`: a few touching holes."""
    return 4 * _hole_reach(fwhm_pixels)


def _hole_reach(fwhm_pixels: float) -> float:
    """How far a hole reaches from its source: 1.5 hole radii (its segment) plus the dilation."""
    return 1.5 * float(hole_radius(SNR_CEILING, fwhm_pixels)) + 1


def mosaic_halo(
    fwhm_pixels: float,
    *,
    tile_size: int = 64,
    multiple: int = 16,
    max_hole_extent: float | None = None,
) -> int:
    """
    Halo (pixels) around a chunk that makes its interior equal the whole-map result.

    The reaches of the pipeline's steps, chained (see
    `~nemesis_bkg.masking.SourceMasker` and `~nemesis_bkg.engine.inpaint_map`):

    1. significance map: the larger of the pixel noise (boxes of
       ``max(10 FWHM, 32)``) and the background (boxes of ``3 FWHM``)
       followed by the Hessian filters (4 sigma) and the local scatter of
       the Laplacian (boxes of ``4 FWHM``), each box statistic reaching
       3.5 boxes;
    2. sources: companions searched within 2.5 FWHM (plus the filter's
       padding) of a first-pass source, blends within 2 FWHM;
    3. holes: twice the largest hole reach (the hole around a pixel, and
       the segment and peaks that decide it), for peaks up to `SNR_CEILING`;
    4. inpainting: from a pixel of the largest connected hole to the edge
       of the network's tile centred on it, the kriging context of the
       other holes in that tile, and their own extent.

    Parameters
    ----------
    fwhm_pixels : float
        Beam FWHM in pixels.
    tile_size : int, optional
        The model's smallest tile side.
    multiple : int, optional
        The model's downsampling factor (tile sides are its multiples).
    max_hole_extent : float, optional
        Largest side, in pixels, of a connected hole (touching holes of
        neighbouring sources form one); default four times the hole
        reach of a source at `SNR_CEILING`.

    Returns
    -------
    int

    Examples
    --------
    >>> from nemesis_bkg.parallel import mosaic_halo
    >>> mosaic_halo(1.75), mosaic_halo(3.0), mosaic_halo(4.3)
    (248, 315, 431)
    """
    if not (np.isfinite(fwhm_pixels) and fwhm_pixels > 0):
        raise ValueError(f"fwhm_pixels must be positive and finite, got {fwhm_pixels!r}.")
    fwhm = float(fwhm_pixels)
    sigma = FWHM_TO_SIGMA * fwhm
    gaussian_reach = int(4.0 * sigma + 0.5)
    background_reach = _box_reach(max(math.ceil(3 * fwhm), 5))
    significance_reach = max(
        _box_reach(max(math.ceil(10 * fwhm), 32)) + 1,
        background_reach + gaussian_reach + _box_reach(max(math.ceil(4 * fwhm), 8)),
    )
    source_reach = significance_reach + 4.5 * fwhm + 4 * sigma + 2
    mask_reach = source_reach + 2 * _hole_reach(fwhm)
    if max_hole_extent is None:
        max_hole_extent = _default_max_hole_extent(fwhm)
    margin = max(tile_size // 4, math.ceil(2 * fwhm))
    tile_side = max(tile_size, math.ceil((max_hole_extent + 2 * margin) / multiple) * multiple)
    kriging_context = math.ceil(2 * max(2.0 * fwhm, 3.0)) + 2
    engine_reach = (max_hole_extent + tile_side) / 2 + kriging_context + max_hole_extent
    return math.ceil(mask_reach + engine_reach)


class _MappedImage:
    """
    A FITS image read chunk by chunk, each through its own short-lived memory map.

    Only the pages of the chunk being read are mapped, and only while it is
    copied, so the process never holds the whole file mapped; the object
    pickles as a path and an offset, which lets cluster workers read their
    own chunks.
    """

    def __init__(self, path: str, offset: int, shape: tuple[int, int], dtype: np.dtype) -> None:
        self.path, self.offset, self.shape = path, offset, shape
        self.file_dtype = dtype  # big-endian, as in the file
        self.dtype = dtype.newbyteorder("=")
        self.ndim = len(shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        mapped = np.memmap(self.path, dtype=self.file_dtype, mode="r", offset=self.offset,
                           shape=self.shape)
        return np.array(mapped[index], dtype=self.dtype)


def open_mosaic(
    path: str | os.PathLike, *, chunk_size: int = CHUNK_SIZE, hdu: int | str | None = None
) -> tuple[da.Array, fits.Header]:
    """
    A FITS image as a dask array read through memory maps, and its header.

    Each chunk is read through its own memory map, opened and closed as the
    chunk is read, so that neither the map nor the whole file's pages stay
    in memory.

    Parameters
    ----------
    path : str or path-like
        FITS file with an uncompressed floating-point image.
    chunk_size : int, optional
        Chunk side in pixels.
    hdu : int or str, optional
        The image extension; by default the first one holding a 2-D image.

    Returns
    -------
    data : `dask.array.Array`
    header : `~astropy.io.fits.Header`

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from astropy.io import fits
    >>> from nemesis_bkg.parallel import open_mosaic
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "map.fits")
    ...     fits.writeto(path, np.arange(60000, dtype=np.float32).reshape(300, 200))
    ...     data, header = open_mosaic(path, chunk_size=128)
    ...     print(data.chunks, data[299, 199].compute())
    ((128, 128, 44), (128, 72)) 59999.0
    """
    with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdulist:
        if hdu is None:
            hdu = next((index for index, item in enumerate(hdulist)
                        if item.is_image and item.header.get("NAXIS") == 2), None)
            if hdu is None:
                raise ValueError(f"{path} holds no 2-D image.")
        header = hdulist[hdu].header.copy()
        offset = hdulist.fileinfo(hdulist.index_of(hdu))["datLoc"]
    scaled = header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0
    if header.get("BITPIX") not in (-32, -64) or scaled:
        raise ValueError(
            f"{path}: a mosaic is read through memory maps, which needs an unscaled "
            "floating-point image (BITPIX -32 or -64, no BSCALE); convert it first."
        )
    file_dtype = np.dtype(">f4" if header["BITPIX"] == -32 else ">f8")
    image = _MappedImage(os.fspath(path), offset, (header["NAXIS2"], header["NAXIS1"]),
                         file_dtype)
    data = da.from_array(image, chunks=(chunk_size, chunk_size), name=False,
                         meta=np.empty((0, 0), image.dtype))
    return data, header


@dataclasses.dataclass
class _Block:
    """The part of one chunk's result that the mosaic keeps (the chunk's interior)."""

    background: np.ndarray
    background_error: np.ndarray
    background_rms: np.ndarray
    source_mask: np.ndarray
    catalog: dict[str, np.ndarray]


def _check_hole_extents(holes: np.ndarray, interior: tuple[slice, slice],
                        max_hole_extent: float, window_origin: tuple[int, int]) -> None:
    """Warn when a connected hole reaching the chunk is larger than the halo was made for."""
    labels, _ = ndimage.label(holes, structure=np.ones((3, 3), bool))
    boxes = ndimage.find_objects(labels)
    inside = np.unique(labels[interior])
    extents = [max(span.stop - span.start for span in boxes[label - 1])
               for label in inside[inside > 0]]
    if extents and max(extents) > max_hole_extent:
        warnings.warn(
            f"a connected hole {max(extents)} pixels across (in the window starting at pixel "
            f"{window_origin}) is larger than the halo was made for ({max_hole_extent:.0f} "
            "pixels): the mosaic may differ from the whole-map result there. Give "
            "max_hole_extent (or a larger halo) for an exact result.",
            AstropyUserWarning, stacklevel=2)


def _remove_block(window: np.ndarray, window_mask: np.ndarray | None, *,
                  remover: Any, window_origin: tuple[int, int],
                  interior: tuple[slice, slice], map_shape: tuple[int, int], detect: bool,
                  user_inputs: dict[str, Any], max_hole_extent: float,
                  dtype: np.dtype) -> _Block:
    """Run the in-memory pipeline on a chunk and its halo; keep the chunk."""
    image = read_image(np.asarray(window), mask=window_mask)
    result = remover._remove_image(image, detect=detect, origin=window_origin, **user_inputs)
    holes = result.source_mask
    _check_hole_extents(holes, interior, max_hole_extent, window_origin)
    catalog = result.catalog
    row, col = interior
    # A source belongs to the chunk holding its peak; a user position off the map (a region's
    # centre), to the chunk holding the map's pixel nearest to it.
    peak_row = np.clip(np.round(np.asarray(catalog["y"])), -window_origin[0],
                       map_shape[0] - 1 - window_origin[0])
    peak_col = np.clip(np.round(np.asarray(catalog["x"])), -window_origin[1],
                       map_shape[1] - 1 - window_origin[1])
    owned = ((peak_row >= row.start) & (peak_row < row.stop)
             & (peak_col >= col.start) & (peak_col < col.stop))
    columns = {name: np.asarray(catalog[name])[owned] for name in _CATALOG_COLUMNS}
    # A window's regions() gives, for a row made by a user region with an area, the region
    # itself: here the window's part of it, which names the whole map's region.
    region_index = np.array([shape.region_index if isinstance(shape, WindowRegion) else -1
                             for shape in result.regions()], dtype=int)
    columns[_REGION_INDEX] = region_index[owned]
    columns["y"] = columns["y"] + window_origin[0]
    columns["x"] = columns["x"] + window_origin[1]
    return _Block(
        background=result.background.data[interior].astype(dtype),
        background_error=result.background_error[interior].astype(dtype),
        background_rms=np.asarray(result.background_rms)[interior].astype(dtype),
        source_mask=holes[interior],
        catalog=columns,
    )


def _windows(chunks: tuple[tuple[int, ...], tuple[int, ...]], halo: int
             ) -> Iterator[tuple[tuple[int, int], tuple[slice, slice], tuple[slice, slice]]]:
    """Per chunk: its index, its slices in the map, and those of its window (chunk + halo)."""
    starts = [np.concatenate([[0], np.cumsum(sides)]).astype(int) for sides in chunks]
    size = [int(edges[-1]) for edges in starts]
    for i in range(len(chunks[0])):
        for j in range(len(chunks[1])):
            chunk, window = [], []
            for edges, index, extent in ((starts[0], i, size[0]), (starts[1], j, size[1])):
                first, last = int(edges[index]), int(edges[index + 1])
                chunk.append(slice(first, last))
                # An even start: NumPy rounds half-integer positions (a peak refined by
                # half a pixel) to the even neighbour, which an odd shift would change.
                start = max(first - halo, 0)
                window.append(slice(start - start % 2, min(last + halo, extent)))
            yield (i, j), tuple(chunk), tuple(window)


@dataclasses.dataclass
class MosaicResult:
    """
    Products of `remove_mosaic`: lazy dask arrays, computed chunk by chunk.

    Computing one array runs the whole pipeline; compute the arrays you need
    together (``dask.compute(result.background.data, result.source_mask)``)
    or, for a mosaic larger than memory, `write` them to a FITS file in one
    pass.

    Attributes
    ----------
    data : `dask.array.Array`
        The input map (float, NaN without coverage).
    background : `~astropy.nddata.NDData`
        Source-free map: the input with compact sources inpainted (its
        ``data`` a dask array; the map's WCS).
    background_error : `dask.array.Array`
        1-sigma error of the inpainted background (0 outside the holes).
    background_rms : `dask.array.Array`
        1-sigma pixel noise of the input.
    source_mask : `dask.array.Array`
        The inpainted pixels.
    fwhm_pixels : float
        Beam FWHM in pixels.
    instrument : `~nemesis_bkg.instruments.Instrument`
    wcs : `~astropy.wcs.WCS` or None
    halo : int
        Pixels of neighbouring chunks each chunk was processed with.
    parameters : dict
        The parameters of the run, recorded in the FITS header by `write`.
    """

    data: da.Array
    background: NDData
    background_error: da.Array
    background_rms: da.Array
    source_mask: da.Array
    fwhm_pixels: float
    instrument: Instrument
    wcs: WCS | None
    halo: int
    parameters: dict[str, Any]
    _blocks: dict[tuple[int, int], tuple[tuple[slice, slice], Any]] = dataclasses.field(
        repr=False)
    _unit: str | None = dataclasses.field(default=None, repr=False)
    _user_regions: list[PixelRegion] = dataclasses.field(default_factory=list, repr=False)
    _catalog: QTable | None = dataclasses.field(default=None, repr=False)
    _region_index: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @property
    def sources(self) -> NDData:
        """Compact sources only: the input minus the background (a lazy NDData)."""
        return NDData(self.data - self.background.data, wcs=self.wcs)

    @property
    def coverage(self) -> da.Array:
        """Pixels with data."""
        return da.isfinite(self.data)

    def _computed_blocks(self, chunks_at_once: int | None, compute_kwargs: dict[str, Any]):
        """The blocks, computed ``chunks_at_once`` (default: a row of chunks) at a time."""
        indices = sorted(self._blocks)
        group = chunks_at_once or self.source_mask.numblocks[1]
        if group < 1:
            raise ValueError(f"chunks_at_once must be at least 1, got {chunks_at_once!r}.")
        for first in range(0, len(indices), group):
            batch = indices[first:first + group]
            computed = dask.compute(*[self._blocks[index][1] for index in batch],
                                    **compute_kwargs)
            for index, block in zip(batch, computed, strict=True):
                yield self._blocks[index][0], block

    def _assemble_catalog(self, columns: list[dict[str, np.ndarray]]) -> None:
        """Keep the chunks' rows, sorted, as `catalog` and the rows' user regions."""
        merged = {name: np.concatenate([part[name] for part in columns])
                  for name in (*_CATALOG_COLUMNS, _REGION_INDEX)}
        order = np.lexsort((merged["x"], merged["y"]))
        self._region_index = merged[_REGION_INDEX][order]
        self._catalog = make_catalog(**{name: merged[name][order] for name in _CATALOG_COLUMNS},
                                     wcs=self.wcs)

    @property
    def catalog(self) -> QTable:
        """
        The masked sources (each listed by the chunk holding its peak),
        sorted by row then column. The first access runs the pipeline over
        the whole mosaic unless `write` already did.
        """
        if self._catalog is None:
            self._assemble_catalog([block.catalog for _, block in self._computed_blocks(None, {})])
        return self._catalog

    def regions(self) -> Regions:
        """
        The holes as regions that DS9 can display, as
        `~nemesis_bkg.results.RemovalResult.regions` gives them for a map in
        memory.

        One region per row of `catalog`, in its order: a circle of radius
        ``hole_radius`` around each source, catalogue position and point
        region, and the user's own region (in the map's pixel frame) for a
        ``'region'`` row with an area; sky regions when the map has a
        celestial WCS, pixel regions otherwise. Like `catalog`, the first
        call runs the pipeline over the whole mosaic unless `write` (or
        `catalog`) already did. Write them with
        ``result.regions().write("holes.reg", format="ds9")``.

        Returns
        -------
        `regions.Regions`

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.table import Table
        >>> from regions import CirclePixelRegion, PixCoord
        >>> from nemesis_bkg import CompactSourceRemover
        >>> from nemesis_bkg.model import PConvUNet
        >>> from nemesis_bkg.parallel import remove_mosaic
        >>> remover = CompactSourceRemover(beam_fwhm=2.0, device="cpu",
        ...                                model=PConvUNet(channels=(8, 16)))
        >>> noise = np.random.default_rng(0).normal(size=(96, 96))
        >>> result = remove_mosaic(noise, remover=remover, chunk_size=48, detect=False,
        ...                        catalog=Table({"x": [20.0], "y": [30.0]}),
        ...                        regions=CirclePixelRegion(PixCoord(47.5, 60.0), 6.0))
        >>> [type(hole).__name__ for hole in result.regions()]
        ['CirclePixelRegion', 'CirclePixelRegion']
        >>> [(hole.center.xy, hole.radius) for hole in result.regions()][1]
        ((47.5, 60.0), 6.0)
        """
        catalog = self.catalog
        return hole_regions(catalog, [self._user_regions[index] if index >= 0 else None
                                      for index in self._region_index], self.wcs)

    def write(self, path: str | os.PathLike, *, overwrite: bool = False,
              chunks_at_once: int | None = None, **compute_kwargs: Any) -> None:
        """
        Write the products to one multi-extension FITS file, chunk by chunk.

        The file has the layout of `~nemesis_bkg.results.RemovalResult.write`
        (BACKGROUND, BACKGROUND_ERR, SOURCES, SOURCES_ERR, SOURCE_MASK,
        COVERAGE, CATALOG). The chunks are computed and written a few at a
        time; the file is written under a temporary name and renamed into
        place when complete, and an existing file is replaced only with
        ``overwrite=True``.

        Parameters
        ----------
        path : str or path-like
        overwrite : bool, optional
        chunks_at_once : int, optional
            Chunks computed together (in parallel by the scheduler) and held
            until written; default a row of chunks. With 1 and
            ``scheduler="synchronous"`` memory is that of one chunk.
        **compute_kwargs
            Passed to `dask.compute` (e.g. ``scheduler="synchronous"``).
        """
        from .. import __version__

        float_type = self.background.data.dtype
        pixel_header = self.wcs.to_header() if self.wcs is not None else fits.Header()
        header = pixel_header.copy()
        if self._unit:
            header["BUNIT"] = self._unit
        extensions = [("BACKGROUND", float_type, header), ("BACKGROUND_ERR", float_type, header),
                      ("SOURCES", float_type, header), ("SOURCES_ERR", float_type, header),
                      ("SOURCE_MASK", np.uint8, pixel_header),
                      ("COVERAGE", np.uint8, pixel_header)]
        primary = fits.Header()
        primary["CREATOR"] = (f"nemesis_bkg {__version__}", "software that made this file")
        primary["NEMVERS"] = (__version__, "nemesis_bkg version")
        primary["INSTRUME"] = (self.instrument.name, "instrument preset used for the beam")
        primary["BEAMPIX"] = (self.fwhm_pixels, "[pix] beam FWHM used for the holes")
        primary["HALO"] = (self.halo, "[pix] halo of each chunk of the mosaic")
        for key, (value, comment) in self.parameters.items():
            primary[key] = (value, comment)
        columns = []
        with MosaicFitsWriter(path, self.data.shape, extensions, primary,
                              overwrite=overwrite) as writer:
            for slices, block in self._computed_blocks(chunks_at_once, compute_kwargs):
                corner = (slices[0].start, slices[1].start)
                data = self.data[slices].compute(**compute_kwargs)
                holes = block.source_mask
                writer.write_block("BACKGROUND", corner, block.background)
                writer.write_block("BACKGROUND_ERR", corner,
                                   np.where(holes, block.background_error, block.background_rms))
                writer.write_block("SOURCES", corner, data - block.background)
                writer.write_block("SOURCES_ERR", corner,
                                   np.hypot(block.background_rms, block.background_error))
                writer.write_block("SOURCE_MASK", corner, holes)
                writer.write_block("COVERAGE", corner, np.isfinite(data))
                columns.append(block.catalog)
            self._assemble_catalog(columns)
            table = fits.BinTableHDU(catalog_to_fits_table(self._catalog), name="CATALOG")
            writer.finish(table, {"NHOLES": len(self._catalog)})


class MeshUnavailable:
    """
    Stands in for the photutils mesh of a `~nemesis_bkg.PConvBackground` built
    on a dask array: the mesh needs the whole map in memory.
    """

    def __getattr__(self, name: str) -> Any:
        raise TypeError(f"{name} is not available for a dask array: the photutils mesh needs "
                        "the whole map in memory; build PConvBackground on a numpy array.")


def remove_mosaic(
    data: Any,
    *,
    remover: Any = None,
    chunk_size: int | None = None,
    halo: int | None = None,
    max_hole_extent: float | None = None,
    wcs: WCS | None = None,
    header: fits.Header | None = None,
    mask: Any = None,
    detect: bool = True,
    catalog: Any = None,
    regions: Any = None,
    protect: Any = None,
) -> MosaicResult:
    """
    Remove the compact sources of a mosaic larger than memory, chunk by chunk.

    Each chunk is processed by the in-memory pipeline with a halo of
    `mosaic_halo` pixels of its neighbours, box statistics aligned on the
    mosaic's grid, and only its interior kept: the result equals
    ``CompactSourceRemover().remove(whole_map)`` (within float rounding)
    wherever every connected hole is smaller than ``max_hole_extent``.

    Parameters
    ----------
    data : `dask.array.Array`, ndarray (memory-mapped or not) or path
        The 2-D map; a FITS path is opened with a memory map (`open_mosaic`),
        its header giving the WCS, unit and instrument.
    remover : `~nemesis_bkg.CompactSourceRemover`, optional
        Its band, beam, threshold and model are used; a default one otherwise.
    chunk_size : int, optional
        Chunk side in pixels: by default a dask array's own chunks, else
        `CHUNK_SIZE`. Memory grows with ``(chunk_size + 2 * halo) ** 2``.
    halo : int, optional
        Pixels of neighbouring chunks each chunk is processed with; default
        `mosaic_halo` for the beam and the model. A smaller one is faster
        and no longer guaranteed exact.
    max_hole_extent : float, optional
        Largest connected hole the default halo is made for (see
        `mosaic_halo`); a larger one reaching a chunk is warned about. By
        default four hole reaches, plus the largest hole whose size the user
        sets (a region of ``regions``, a ``hole_radius`` of ``catalog``).
    wcs : `~astropy.wcs.WCS`, optional
        WCS of the map (for beams given as angles and sky positions).
    header : `~astropy.io.fits.Header`, optional
        FITS header of the map (instrument, unit, WCS when ``wcs`` is None).
    mask : array-like of bool, optional
        Extra pixels to inpaint (a dask array or an array of the map's shape).
    detect : bool, optional
        Find compact sources; with False only ``catalog``, ``regions`` and
        ``mask`` are inpainted.
    catalog : `~astropy.table.Table` or `~astropy.coordinates.SkyCoord`, optional
        Extra sources to mask: ``x``/``y`` (pixels) or ``ra``/``dec``
        columns, or sky positions, and optionally ``hole_radius`` (see
        `~nemesis_bkg.masking.user_inputs`).
    regions : `regions.Regions`, region or str, optional
        Extra regions to mask (or a DS9/CRTF region file); sky regions need
        the map's WCS.
    protect : `regions.Regions`, region or str, optional
        Regions never masked.

    Notes
    -----
    ``catalog``, ``regions`` and ``protect`` are read once, for the whole
    map (sky positions and regions through ``wcs``), and every window gets
    the entries that fall in it, halo included: a hole is drawn by every
    chunk it reaches, and its catalogue row comes from the chunk holding
    its position, flagged and with its ``origin`` as in memory.

    Returns
    -------
    `MosaicResult`

    Examples
    --------
    >>> import dask.array as da
    >>> from nemesis_bkg.model import PConvUNet
    >>> from nemesis_bkg import CompactSourceRemover
    >>> from nemesis_bkg.parallel import remove_mosaic
    >>> from nemesis_bkg.simulate import simulate_map
    >>> sim = simulate_map((160, 160), instrument="pacs70", n_sources=4, seed=1)
    >>> remover = CompactSourceRemover(beam_fwhm=sim.fwhm_pixels, device="cpu",
    ...                                model=PConvUNet(channels=(8, 16)))
    >>> result = remove_mosaic(da.from_array(sim.data.data, chunks=80), remover=remover)
    >>> result.source_mask.chunks
    ((80, 80), (80, 80))
    >>> result.background.data.compute().shape
    (160, 160)

    A user catalogue, here a position on a chunk border:

    >>> from astropy.table import Table
    >>> result = remove_mosaic(da.from_array(sim.data.data, chunks=80), remover=remover,
    ...                        catalog=Table({"x": [80.0], "y": [40.0]}), detect=False)
    >>> result.catalog["origin"].tolist(), bool(result.source_mask[40, 79:81].all().compute())
    (['catalog'], True)
    """
    from ..remover import CompactSourceRemover

    if isinstance(data, (str, os.PathLike)):
        data, file_header = open_mosaic(data, chunk_size=chunk_size or CHUNK_SIZE)
        header = file_header if header is None else header
    elif not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=chunk_size or CHUNK_SIZE, name=False)
    if data.ndim != 2:
        raise ValueError(f"a mosaic is a 2-D map, got shape {data.shape}.")
    if chunk_size is not None:
        data = data.rechunk((chunk_size, chunk_size))
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(float)
    if wcs is None and header is not None:
        header_wcs = WCS(header)
        wcs = header_wcs if header_wcs.has_celestial else None
    remover = CompactSourceRemover() if remover is None else remover
    instrument, fwhm_pixels = resolve_beam(instrument=remover.instrument,
                                           beam_fwhm=remover.beam_fwhm, wcs=wcs, header=header)
    user_inputs = MosaicUserInputs.read(data.shape, wcs, catalog=catalog, regions=regions,
                                        protect=protect)
    model = remover.model
    if max_hole_extent is None:
        max_hole_extent = _default_max_hole_extent(fwhm_pixels) + user_inputs.largest_extent
    if halo is None:
        tile_size = int(getattr(model, "metadata", {}).get("tile_size", 64))
        halo = mosaic_halo(fwhm_pixels, tile_size=tile_size, multiple=model.downsampling_factor,
                           max_hole_extent=max_hole_extent)
    elif user_inputs.largest_extent > halo:
        warnings.warn(
            f"the catalog/regions ask for holes up to {user_inputs.largest_extent:.0f} pixels "
            f"across, more than the halo ({halo} pixels): the mosaic may differ from the "
            "whole-map result and miss their catalogue rows. Give a larger halo, or leave "
            "halo out.", AstropyUserWarning, stacklevel=2)
    # The chunks get the beam in pixels (they carry no WCS of their own) and every other
    # setting of the remover, its loaded network included.
    chunk_remover = copy.copy(remover)
    chunk_remover.instrument, chunk_remover.beam_fwhm = instrument, fwhm_pixels
    chunk_remover.progress = False
    chunk_remover = dask.delayed(chunk_remover, pure=False)
    if mask is not None:
        mask = da.asarray(mask).astype(bool)
        if mask.shape != data.shape:
            raise ValueError(f"mask shape {mask.shape} differs from the map's {data.shape}.")
    float_type = np.dtype(data.dtype)
    blocks = {}
    for index, chunk, window in _windows(data.chunks, halo):
        interior = tuple(slice(c.start - w.start, c.stop - w.start)
                         for c, w in zip(chunk, window, strict=True))
        block = dask.delayed(_remove_block, pure=True)(
            data[window], None if mask is None else mask[window], remover=chunk_remover,
            window_origin=(window[0].start, window[1].start), interior=interior,
            map_shape=data.shape, detect=detect, user_inputs=user_inputs.for_window(window),
            max_hole_extent=max_hole_extent, dtype=float_type)
        blocks[index] = (chunk, block)

    def assemble(field: str, dtype: Any) -> da.Array:
        n_rows, n_cols = (len(sides) for sides in data.chunks)
        return da.block([
            [da.from_delayed(dask.delayed(getattr)(blocks[i, j][1], field),
                             shape=tuple(c.stop - c.start for c in blocks[i, j][0]), dtype=dtype)
             for j in range(n_cols)]
            for i in range(n_rows)])

    parameters = {
        "SNRTHR": (remover.snr_threshold, "peak SNR threshold of the masked sources"),
        "DETECT": (bool(detect), "compact sources found automatically"),
        "NHOLES": (0, "number of masked sources"),
        "MODELSHA": (getattr(model, "sha256", "unverified"), ""),
    }
    return MosaicResult(
        data=data, background=NDData(assemble("background", float_type), wcs=wcs),
        background_error=assemble("background_error", float_type),
        background_rms=assemble("background_rms", float_type),
        source_mask=assemble("source_mask", bool), fwhm_pixels=fwhm_pixels,
        instrument=instrument, wcs=wcs, halo=halo, parameters=parameters, _blocks=blocks,
        _unit=None if header is None else header.get("BUNIT"),
        _user_regions=user_inputs.area_regions,
    )
