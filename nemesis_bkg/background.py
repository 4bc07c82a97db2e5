"""
`PConvBackground`: a drop-in replacement for
`photutils.background.Background2D` whose background follows structured
extended emission under the compact sources.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np
from astropy.stats import SigmaClip
from photutils.background import Background2D

from .instruments import Instrument
from .io import read_image
from .parallel import is_dask_array
from .remover import CompactSourceRemover

__all__ = ["PConvBackground"]

#: photutils' own default, so that omitting sigma_clip means the same thing in both classes.
SIGMA_CLIP = SigmaClip(sigma=3.0, maxiters=10)


class PConvBackground:
    """
    A 2-D background in which compact sources are inpainted by a
    partial-convolution U-Net.

    The signature is that of `photutils.background.Background2D`, so a
    photutils script keeps working after swapping the class name. The
    background is the input map with each compact source replaced by an
    inpainted estimate of what lies beneath it; `background_rms` is the
    pixel noise. The mesh keywords (``box_size``, ``sigma_clip``,
    ``bkg_estimator``, ``bkg_rms_estimator``, ``filter_size``, ...) define
    the mesh attributes (`background_mesh`, `background_rms_mesh`,
    `plot_meshes`) exactly as in photutils, computed with the holes masked.

    Parameters
    ----------
    data : array-like, `~astropy.units.Quantity`, `~astropy.nddata.NDData` or dask array
        The 2-D image. Unlike photutils, NDData's ``mask`` and
        ``uncertainty`` are honoured (the uncertainty feeds the source
        signal-to-noise ratios). A `dask.array.Array` is processed chunk
        by chunk (`~nemesis_bkg.parallel.remove_mosaic`): `background`,
        `background_rms`, `background_error` and `source_mask` are then
        lazy dask arrays and the mesh attributes are not available.
    box_size : int or tuple of int
        Mesh box size for the noise map, as in photutils.
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
        As in `photutils.background.Background2D`; with the keywords below
        they shape the noise map and the mesh.
    sigma_clip, bkg_estimator, bkg_rms_estimator, interpolator : optional
        As in `photutils.background.Background2D`.
    beam_fwhm : `~astropy.units.Quantity` or float, optional
        Beam FWHM, an angle (needs a WCS) or pixels.
    instrument : str or `~nemesis_bkg.instruments.Instrument`, optional
        Preset band, e.g. ``"spire250"``; read from the header when absent.
    wcs : `~astropy.wcs.WCS`, optional
        WCS of a plain array (NDData's own WCS is used otherwise).
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
        self.box_size = box_size
        self.fill_value = fill_value
        remover = CompactSourceRemover(
            instrument=instrument, beam_fwhm=beam_fwhm, snr_threshold=snr_threshold, psf=psf,
            model=model, device=device, precision=precision, n_threads=n_threads,
        )
        if is_dask_array(data):
            from .parallel.mosaic import MeshUnavailable, remove_mosaic

            # A mosaic: lazy products computed chunk by chunk; no photutils mesh.
            if coverage_mask is not None:
                data = np.where(coverage_mask, np.nan, data)
            self._result = remove_mosaic(data, remover=remover, wcs=wcs, mask=mask,
                                         detect=detect)
            self._unit, self._mesh = None, MeshUnavailable()
            self._no_coverage = ~self._result.coverage
            self._noise = self._result.background_rms
            return
        image = read_image(data, mask=mask, coverage_mask=coverage_mask, wcs=wcs)
        self._result = remover._remove_image(image, detect=detect)
        self._unit = image.unit
        self._no_coverage = ~image.coverage
        self._noise = self._result.background_rms

        # The mesh attributes are photutils' own, computed with the holes
        # masked so that sources do not inflate the noise. `interpolator` is deprecated in
        # photutils 3, so it is passed on only when given.
        optional = {} if interpolator is None else {"interpolator": interpolator}
        self._mesh = Background2D(
            np.where(image.coverage, image.data, 0.0),
            box_size,
            mask=self._result.source_mask,
            coverage_mask=self._no_coverage,
            fill_value=fill_value,
            exclude_percentile=exclude_percentile,
            filter_size=filter_size,
            filter_threshold=filter_threshold,
            sigma_clip=sigma_clip,
            bkg_estimator=bkg_estimator,
            bkg_rms_estimator=bkg_rms_estimator,
            **optional,
        )

    def _with_unit(self, array: np.ndarray) -> np.ndarray | u.Quantity:
        return array * self._unit if self._unit is not None else array

    def _filled(self, array: np.ndarray) -> np.ndarray:
        return np.where(self._no_coverage, self.fill_value, array)

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
        """Median of `background` over the covered pixels."""
        covered = self._result.background.data[~self._no_coverage]
        return self._with_unit(np.median(covered))

    @property
    def background_rms_median(self) -> float | u.Quantity:
        """Median of `background_rms` over the covered pixels."""
        return self._with_unit(np.median(self._noise[~self._no_coverage]))
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
    def catalog(self):
        """`~astropy.table.QTable` of the masked compact sources."""
        return self._result.catalog

    @property
    def result(self):
        """The full `~nemesis_bkg.results.RemovalResult` (NDData products, regions, FITS)."""
        return self._result

    def plot_meshes(self, **kwargs: Any) -> None:
        """Plot the mesh boxes on a matplotlib axis, as in photutils."""
        self._mesh.plot_meshes(**kwargs)
