"""
`PConvBackground`: a drop-in replacement for
`photutils.background.Background2D` whose background follows structured
extended emission under the compact sources.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.stats import SigmaClip
from astropy.table import QTable
from photutils.background import Background2D

from .instruments import Instrument
from .io import read_image
from .parallel import is_dask_array
from .remover import CompactSourceRemover

if TYPE_CHECKING:
    from .parallel import MosaicResult
    from .results import RemovalResult

__all__ = ["PConvBackground"]

#: photutils' own default, so that omitting sigma_clip means the same thing in both classes.
SIGMA_CLIP = SigmaClip(sigma=3.0, maxiters=10)


def _integer_pair(name: str, value: Any, *, odd: bool = False) -> np.ndarray:
    """One or two positive integers as a pair, refused as photutils refuses them."""
    pair = np.atleast_1d(value)
    positive_integers = pair.dtype.kind in "iu" and np.all(pair > 0)
    if pair.ndim != 1 or pair.size not in (1, 2) or not positive_integers:
        raise ValueError(f"{name} must be one or two positive integers, got {value!r}.")
    if odd and np.any(pair % 2 == 0):
        raise ValueError(f"{name} must be odd along both axes, got {value!r}.")
    return np.broadcast_to(pair, 2).astype(int)


class PConvBackground:
    """
    A 2-D background in which compact sources are inpainted by a
    partial-convolution U-Net.

    The signature is that of `photutils.background.Background2D`, so a
    photutils script keeps working after swapping the class name. The
    background is the input map with each compact source replaced by an
    inpainted estimate of what lies beneath it; `background_rms` is the
    pixel noise. The mesh keywords (``box_size``, ``sigma_clip``,
    ``bkg_estimator``, ``bkg_rms_estimator``, ``filter_size``, ...) are
    checked as photutils checks them, kept as attributes of the same names,
    and define the mesh attributes (`background_mesh`,
    `background_rms_mesh`, `n_pixels_mesh`, `n_pixels_map`, `plot_meshes`)
    exactly as in photutils, computed with the holes masked when one of them
    is first used. They do not change `background` or `background_rms`.

    Parameters
    ----------
    data : array-like, `~astropy.units.Quantity`, `~astropy.nddata.NDData` or dask array
        The 2-D image. Unlike photutils, NDData's ``mask`` and
        ``uncertainty`` are honoured (the uncertainty feeds the source
        signal-to-noise ratios). A `dask.array.Array` is processed chunk
        by chunk (`~nemesis_bkg.parallel.remove_mosaic`): `background`,
        `background_rms`, `background_error` and `source_mask` are then
        lazy dask arrays; the mesh attributes and the medians, which need
        the whole map in memory, are not available.
    box_size : int or tuple of int
        Box size of the photutils mesh, as in photutils (clipped to the
        map's shape).
    mask : array-like of bool, optional
        Pixels not to be trusted as background: here they are holes to
        inpaint, united with the holes found by detection unless
        ``detect=False``.
    coverage_mask : array-like of bool, optional
        Pixels without coverage (True = not covered); NaN and inf are
        treated the same way.
    fill_value : float, optional
        Value of `background` and `background_rms` where there is no
        coverage.
    exclude_percentile, filter_size, filter_threshold : optional
        As in `photutils.background.Background2D`: they shape the mesh
        attributes only.
    sigma_clip, bkg_estimator, bkg_rms_estimator, interpolator : optional
        As in `photutils.background.Background2D`: they shape the mesh
        attributes only.
    beam_fwhm : `~astropy.units.Quantity` or float, optional
        Beam FWHM, an angle (needs a WCS) or pixels.
    instrument : str or `~nemesis_bkg.instruments.Instrument`, optional
        Preset band, e.g. ``"spire250"``; read from the header when absent.
    wcs : `~astropy.wcs.WCS`, optional
        WCS of the map (needed for an angular ``beam_fwhm`` or a preset
        ``instrument`` on a plain array); overrides NDData's own.
    detect : bool, optional
        Find compact sources to inpaint; False inpaints exactly ``mask``.
    snr_threshold : float, optional
        Peak signal-to-noise ratio above which compact sources are masked.
    psf : array-like, optional
        The beam as a 2-D image at the map's sampling; holes then follow its
        measured profile (see `~nemesis_bkg.CompactSourceRemover`).
    model : `torch.nn.Module`, optional
        The inpainting network; the bundled one by default.
    device : str, optional
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    precision : {"float32", "bfloat16", "float16"}, optional
        The network's arithmetic (see `~nemesis_bkg.CompactSourceRemover`).
    n_threads : int, optional
        CPU threads for the network; torch's setting when None.

    Examples
    --------
    >>> from nemesis_bkg import PConvBackground
    >>> from nemesis_bkg.simulate import simulate_map
    >>> sim = simulate_map((128, 128), instrument="pacs160", n_sources=5, seed=2)
    >>> bkg = PConvBackground(sim.data, (16, 16))
    >>> bkg.background.shape
    (128, 128)
    """

    def __init__(
        self,
        data: Any,
        box_size: int | tuple[int, int],
        *,
        mask: Any = None,
        coverage_mask: Any = None,
        fill_value: float = 0.0,
        exclude_percentile: float = 10.0,
        filter_size: int | tuple[int, int] = (3, 3),
        filter_threshold: float | None = None,
        sigma_clip: SigmaClip | None = SIGMA_CLIP,
        bkg_estimator: Any = None,
        bkg_rms_estimator: Any = None,
        interpolator: Any = None,
        beam_fwhm: u.Quantity | float | None = None,
        instrument: str | Instrument | None = None,
        wcs: Any = None,
        detect: bool = True,
        snr_threshold: float = 5.0,
        psf: Any = None,
        model: Any = None,
        device: str = "auto",
        precision: str = "float32",
        n_threads: int | None = None,
    ) -> None:
        # The mesh keywords are checked before the removal, not after it.
        box_pair = _integer_pair("box_size", box_size)
        self.filter_size = _integer_pair("filter_size", filter_size, odd=True)
        if not 0 <= exclude_percentile <= 100:
            raise ValueError(
                f"exclude_percentile must be between 0 and 100, got {exclude_percentile!r}."
            )
        self.fill_value = fill_value
        self.exclude_percentile = exclude_percentile
        self.filter_threshold = filter_threshold
        self.sigma_clip = sigma_clip
        self.bkg_estimator = bkg_estimator
        self.bkg_rms_estimator = bkg_rms_estimator
        self.interpolator = interpolator
        self.coverage_mask = coverage_mask
        remover = CompactSourceRemover(
            instrument=instrument, beam_fwhm=beam_fwhm, snr_threshold=snr_threshold, psf=psf,
            model=model, device=device, precision=precision, n_threads=n_threads,
        )
        self._is_mosaic = is_dask_array(data)
        if self._is_mosaic:
            from .parallel.mosaic import remove_mosaic

            # A mosaic: lazy products computed chunk by chunk.
            if coverage_mask is not None:
                data = np.where(coverage_mask, np.nan, data)
            self._result = remove_mosaic(data, remover=remover, wcs=wcs, mask=mask,
                                         detect=detect)
            self._unit = None
            self._no_coverage = ~self._result.coverage
        else:
            image = read_image(data, mask=mask, coverage_mask=coverage_mask, wcs=wcs)
            if coverage_mask is not None:
                self.coverage_mask = np.asarray(coverage_mask, dtype=bool)
            self._result = remover._remove_image(image, detect=detect)
            self._unit = image.unit
            self._no_coverage = ~image.coverage
        # As photutils does, a box larger than the map is the whole map.
        self.box_size = np.minimum(box_pair, self._no_coverage.shape)
        self._noise = self._result.background_rms

    @cached_property
    def _mesh(self) -> Background2D:
        """
        photutils' own mesh, made on first use with the holes masked, so
        that sources do not inflate it (and the holes cannot make the
        background itself fail).
        """
        if self._is_mosaic:
            from .parallel.mosaic import MeshUnavailable

            return MeshUnavailable()
        # Outside the holes the background is the input, bit for bit; the holes are masked.
        covered_data = np.where(self._no_coverage, 0.0, self._result.background.data)
        # `interpolator` is deprecated in photutils 3, so it is passed on only when given.
        optional = {} if self.interpolator is None else {"interpolator": self.interpolator}
        return Background2D(
            covered_data,
            self.box_size,
            mask=self._result.source_mask,
            coverage_mask=self._no_coverage,
            fill_value=self.fill_value,
            exclude_percentile=self.exclude_percentile,
            filter_size=self.filter_size,
            filter_threshold=self.filter_threshold,
            sigma_clip=self.sigma_clip,
            bkg_estimator=self.bkg_estimator,
            bkg_rms_estimator=self.bkg_rms_estimator,
            **optional,
        )

    def _with_unit(self, array: np.ndarray) -> np.ndarray | u.Quantity:
        return array * self._unit if self._unit is not None else array

    def _filled(self, array: np.ndarray) -> np.ndarray:
        return np.where(self._no_coverage, self.fill_value, array)

    def _covered_median(self, array: np.ndarray) -> float | u.Quantity:
        if self._is_mosaic:
            raise TypeError("the medians are not available for a dask array: they need the "
                            "whole map in memory; build PConvBackground on a numpy array.")
        return self._with_unit(np.median(array[~self._no_coverage]))

    @property
    def background(self) -> np.ndarray | u.Quantity:
        """The background: the input with compact sources inpainted."""
        return self._with_unit(self._filled(self._result.background.data))

    @property
    def background_rms(self) -> np.ndarray | u.Quantity:
        """
        The 2-D 1-sigma noise map: the input uncertainty when given, else
        the pixel noise measured from the map's second differences.

        Unlike the mesh RMS of photutils, it does not grow with the extended
        emission: the cloud is in `background`, so what is left around a
        source is the noise, and thresholds such as ``2 * background_rms``
        keep their meaning on bright clouds.
        """
        return self._with_unit(self._filled(self._noise))

    @property
    def background_error(self) -> np.ndarray | u.Quantity:
        """1-sigma uncertainty of `background` itself (0 outside the holes)."""
        return self._with_unit(self._filled(self._result.background_error))

    @property
    def background_median(self) -> float | u.Quantity:
        """
        Median of `background` over the covered pixels (photutils takes
        that of its coarse mesh).
        """
        return self._covered_median(self._result.background.data)

    @property
    def background_rms_median(self) -> float | u.Quantity:
        """Median of `background_rms` over the covered pixels."""
        return self._covered_median(self._noise)

    @property
    def background_mesh(self) -> np.ndarray:
        """The low-resolution background mesh of photutils (holes masked)."""
        return self._mesh.background_mesh

    @property
    def background_rms_mesh(self) -> np.ndarray:
        """The low-resolution noise mesh of photutils (holes masked)."""
        return self._mesh.background_rms_mesh

    @property
    def n_pixels_mesh(self) -> np.ndarray:
        """Number of pixels used in each mesh box."""
        return self._mesh.n_pixels_mesh

    @property
    def n_pixels_map(self) -> np.ndarray:
        """Number of pixels used in each mesh box, resized to the image."""
        return self._mesh.n_pixels_map

    @property
    def source_mask(self) -> np.ndarray:
        """The pixels that were inpainted."""
        return self._result.source_mask

    @property
    def catalog(self) -> QTable:
        """`~astropy.table.QTable` of the masked compact sources."""
        return self._result.catalog

    @property
    def result(self) -> RemovalResult | MosaicResult:
        """
        The full `~nemesis_bkg.results.RemovalResult` (NDData products,
        regions, FITS); a `~nemesis_bkg.parallel.MosaicResult` for a dask array.
        """
        return self._result

    def plot_meshes(self, **kwargs: Any) -> None:
        """
        Plot the mesh boxes on a matplotlib axis, as in photutils.

        Parameters
        ----------
        **kwargs
            Keywords of `photutils.background.Background2D.plot_meshes`
            (``ax``, ``marker``, ``color``, ``outlines``, ...).
        """
        self._mesh.plot_meshes(**kwargs)
