"""
`CompactSourceRemover`: NDData in, source-free map, compact-only map,
masks and catalogue out.

It calls the boxes of the data flow in order: the input layer
(`nemesis_bkg.io`), the instrument table, the masks
(`nemesis_bkg.masking`), the inpainting engine (`nemesis_bkg.engine`) and
the result (`nemesis_bkg.results`).
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np

from .engine import PRECISIONS, inpaint_map
from .engine.inference import check_engine_settings
from .engine.normalize import SAFE_EXPONENT
from .instruments import Instrument, get_instrument, resolve_beam
from .io import ImageInput, read_image
from .masking import build_source_mask, psf_profile
from .model import load_model
from .parallel import is_dask_array
from .results import RemovalResult, make_nddata

if TYPE_CHECKING:
    import torch

__all__ = ["CompactSourceRemover"]


def _power_of_two_exponent(image: ImageInput) -> int:
    """
    Exponent of a power of two that brings the map's typical absolute value near 1.

    Dividing by a power of two is exact in floating point; it lets maps in
    any unit (values of 1e-37 or 1e300) through steps that would otherwise
    underflow or overflow. Maps of ordinary values get 0 (no scaling).
    """
    magnitudes = np.abs(image.data[image.coverage])
    typical = float(np.median(magnitudes))
    if not typical > 0:
        typical = float(np.max(magnitudes))
    exponent = int(np.frexp(typical)[1]) if typical > 0 else 0
    return exponent if abs(exponent) > SAFE_EXPONENT else 0


def _check_beam(beam_fwhm: Any) -> None:
    """Refuse a beam that no map could use, when the remover is made rather than at a map."""
    if beam_fwhm is None:
        return
    if isinstance(beam_fwhm, u.Quantity):
        if beam_fwhm.unit != u.pix and beam_fwhm.unit.physical_type != "angle":
            raise ValueError(
                f"beam_fwhm must be an angle or a number of pixels, not {beam_fwhm.unit}."
            )
        value = beam_fwhm.value
    elif isinstance(beam_fwhm, numbers.Real) and not isinstance(beam_fwhm, bool):
        value = beam_fwhm
    else:
        raise TypeError(
            f"beam_fwhm must be an angle Quantity (e.g. 18.1 * u.arcsec) or a number of "
            f"pixels, not {type(beam_fwhm).__name__} {beam_fwhm!r}."
        )
    if not (np.ndim(value) == 0 and np.isfinite(value) and value > 0):
        raise ValueError(f"beam_fwhm must be positive and finite, got {beam_fwhm!r}.")


class CompactSourceRemover:
    """
    Remove compact sources from a far-infrared map.

    Compact sources are found with photutils segmentation, masked with holes
    sized from their peak signal-to-noise ratio and the beam, and the holes
    are inpainted by the bundled partial-convolution U-Net.

    Parameters
    ----------
    instrument : str or `~nemesis_bkg.instruments.Instrument`, optional
        Preset band (``"pacs70"``, ``"pacs100"``, ``"pacs160"``,
        ``"spire250"``, ``"spire350"``, ``"spire500"``). When neither
        ``instrument`` nor ``beam_fwhm`` is given, the band is read from the
        FITS header of each map (INSTRUME, WAVELNTH, FILTER).
    beam_fwhm : `~astropy.units.Quantity` or float, optional
        Beam FWHM: an angle (the map needs a celestial WCS) or pixels. Takes
        precedence over ``instrument``.
    snr_threshold : float, optional
        Sources whose peak signal-to-noise ratio is below this are left in
        the background.
    psf : array-like, optional
        The beam as a 2-D image at the map's sampling (odd sides, peak in
        the middle): holes then reach as far as its measured profile,
        sidelobes included, rather than a Gaussian's (see
        `~nemesis_bkg.masking.hole_radius`).
    model : `torch.nn.Module`, optional
        The inpainting network; the bundled one by default
        (`nemesis_bkg.model.load_model`).
    device : str, optional
        ``"auto"`` (a CUDA GPU when present), ``"cpu"`` or ``"cuda"``.
    precision : {"float32", "bfloat16", "float16"}, optional
        The network's arithmetic; the 16-bit ones are mixed precision,
        faster on GPUs (see `~nemesis_bkg.engine.inpaint_map`).
    batch_size : int, optional
        Tiles per forward pass; by default sized to the device
        (`~nemesis_bkg.engine.default_batch_size`).
    n_threads : int, optional
        CPU threads for the network; torch's setting when None.
    progress : bool, optional
        Show a progress bar while the holes are inpainted.

    Examples
    --------
    >>> from nemesis_bkg import CompactSourceRemover
    >>> from nemesis_bkg.simulate import simulate_map
    >>> sim = simulate_map((128, 128), instrument="spire250", n_sources=5, seed=3)
    >>> result = CompactSourceRemover().remove(sim.data)
    >>> result.background.shape
    (128, 128)
    """

    def __init__(
        self,
        *,
        instrument: str | Instrument | None = None,
        beam_fwhm: u.Quantity | float | None = None,
        snr_threshold: float = 5.0,
        psf: Any = None,
        model: Any = None,
        device: str = "auto",
        precision: str = "float32",
        batch_size: int | None = None,
        n_threads: int | None = None,
        progress: bool = False,
    ) -> None:
        if not np.isfinite(snr_threshold) or snr_threshold <= 0:
            raise ValueError(f"snr_threshold must be positive, got {snr_threshold!r}.")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, not {precision!r}")
        # Here rather than at the first map.
        check_engine_settings(batch_size=batch_size, n_threads=n_threads)
        _check_beam(beam_fwhm)
        if instrument is not None:
            get_instrument(instrument)  # an unknown band fails here, not at the first map
        self.instrument = instrument
        self.beam_fwhm = beam_fwhm
        self.snr_threshold = float(snr_threshold)
        if psf is not None:
            psf_profile(psf)  # an unusable PSF fails here, not at the first map
        self.psf = None if psf is None else np.array(psf, dtype=float)
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.progress = progress
        self._model = model

    @property
    def model(self) -> torch.nn.Module:
        """The inpainting network (loaded on first use)."""
        if self._model is None:
            self._model = load_model(device=self.device)
        return self._model

    def remove(
        self,
        data: Any,
        *,
        catalog: Any = None,
        regions: Any = None,
        protect: Any = None,
        mask: Any = None,
        detect: bool = True,
    ) -> RemovalResult:
        """
        Remove the compact sources of one map.

        Parameters
        ----------
        data : `~astropy.nddata.NDData`, `~astropy.units.Quantity`, ndarray, path or dask array
            The map (CCDData included). NDData's WCS, unit, mask and uncertainty are used; a
            path is read as FITS; a `dask.array.Array` is processed chunk by chunk.
        catalog : `~astropy.table.Table` or `~astropy.coordinates.SkyCoord`, optional
            Extra sources to mask (x/y or ra/dec columns, or sky positions).
        regions : `regions.Regions` or str, optional
            Extra regions to mask (or a DS9/CRTF region file).
        protect : `regions.Regions` or str, optional
            Regions never masked (e.g. a filament you study).
        mask : array-like of bool, optional
            Extra pixels to inpaint, united with NDData's mask.
        detect : bool, optional
            Find compact sources automatically; with False only the given
            ``catalog``, ``regions`` and ``mask`` are inpainted.

        Returns
        -------
        `~nemesis_bkg.results.RemovalResult`
            Or, for a dask array, a lazy `~nemesis_bkg.parallel.MosaicResult`
            computed chunk by chunk (`~nemesis_bkg.parallel.remove_mosaic`).

        Raises
        ------
        ValueError
            If the map is not 2-D, has no valid pixel, is too small for the
            beam, or its beam cannot be told (give ``instrument=`` or
            ``beam_fwhm=``); if a mask or uncertainty does not match it.
        TypeError
            If the map does not hold real numbers.

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.nddata import CCDData
        >>> from nemesis_bkg import CompactSourceRemover
        >>> from nemesis_bkg.simulate import simulate_map
        >>> sim = simulate_map((128, 128), instrument="pacs160", n_sources=4, seed=1)
        >>> result = CompactSourceRemover().remove(sim.data)
        >>> isinstance(result.background, CCDData), result.background.unit == sim.data.unit
        (True, True)
        >>> total = result.background.data + result.sources.data
        >>> np.allclose(total, sim.data.data, equal_nan=True)
        True
        """
        if is_dask_array(data):
            from .parallel import remove_mosaic

            return remove_mosaic(data, remover=self, mask=mask, catalog=catalog,
                                 regions=regions, protect=protect, detect=detect)
        image = read_image(data, mask=mask)
        return self._remove_image(image, catalog=catalog, regions=regions, protect=protect,
                                  detect=detect)

    def _remove_image(self, image: ImageInput, *, catalog=None, regions=None, protect=None,
                      detect: bool = True, origin: tuple[int, int] = (0, 0)) -> RemovalResult:
        """
        `remove` on a validated image: the entry point of `PConvBackground`,
        `~nemesis_bkg.sed.remove_bands` and the mosaic chunks (whose
        ``origin`` places the chunk in the whole map).
        """
        instrument, fwhm_pixels = resolve_beam(
            instrument=self.instrument, beam_fwhm=self.beam_fwhm, wcs=image.wcs,
            header=image.header,
        )
        # The work is done on the map scaled by a power of two (exact), and scaled back.
        exponent = _power_of_two_exponent(image)
        scaled = dataclasses.replace(
            image, data=np.ldexp(image.data, -exponent),
            error=None if image.error is None else np.ldexp(image.error, -exponent),
        )
        source_mask = build_source_mask(
            scaled, fwhm_pixels, snr_threshold=self.snr_threshold, psf=self.psf, detect=detect,
            catalog=catalog, regions=regions, protect=protect, origin=origin,
        )
        source_mask = dataclasses.replace(
            source_mask, background=np.ldexp(source_mask.background, exponent),
            background_rms=np.ldexp(source_mask.background_rms, exponent),
        )
        scaled_background, scaled_error = inpaint_map(
            scaled.data, source_mask.mask, image.coverage, fwhm_pixels,
            model=self.model, device=self.device, precision=self.precision,
            batch_size=self.batch_size, n_threads=self.n_threads, progress=self.progress,
        )
        # Outside the holes the background is the input itself, bit for bit.
        background = np.where(source_mask.mask, np.ldexp(scaled_background, exponent),
                              image.data)
        background_error = np.ldexp(scaled_error, exponent)
        # Input noise: the given uncertainty, else the noise map the masks were built with.
        noise = image.error if image.error is not None else np.asarray(source_mask.background_rms)
        holes = source_mask.mask
        background_uncertainty = np.where(holes, background_error, noise)
        sources_uncertainty = np.hypot(noise, background_error)
        # The background is valid wherever it was inpainted; the data (hence the sources) are
        # not trusted where the user masked them, nor the background where such a pixel was
        # left as it is (a protect= region kept it out of the holes).
        no_coverage = ~image.coverage
        sources_mask = image.mask | no_coverage
        background_mask = no_coverage | (image.mask & ~holes)

        parameters = {
            "SNRTHR": (self.snr_threshold, "peak SNR threshold of the masked sources"),
            "DETECT": (bool(detect), "compact sources found automatically"),
            "NHOLES": (len(source_mask.catalog), "number of masked sources"),
            # A 64-character checksum leaves no room on the card for a comment.
            "MODELSHA": (getattr(self.model, "sha256", "unverified"), ""),
        }
        return RemovalResult(
            background=make_nddata(image, background, background_uncertainty, background_mask),
            sources=make_nddata(image, image.data - background, sources_uncertainty, sources_mask),
            source_mask=holes.copy(),
            catalog=source_mask.catalog,
            background_error=background_error,
            background_rms=noise,
            fwhm_pixels=fwhm_pixels,
            instrument=instrument,
            parameters=parameters,
            _source_mask_result=source_mask,
        )
