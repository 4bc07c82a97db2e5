"""
The background methods the benchmark compares, behind one signature.

Every method is called as ``method(data, hole_mask, coverage, fwhm_pixels)``
and returns a `MethodResult`: a background map (and, when the method gives
one, the 1-sigma error of that background). ``data`` holds NaN outside
``coverage``; ``hole_mask`` marks the pixels to be replaced (the compact
sources), the same for every method.

The inpainters (``interpolate_replace_nans``, ``inpaint_biharmonic``,
``maskfill``) return the data outside the holes and their fill inside them,
as ours does. Each of them is applied hole by hole on a padded cutout: the
fill of a hole depends only on its surroundings, and whole-map calls of
biharmonic and maskfill are far too slow on maps with NaN borders.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "BOX_SIZE_BEAMS",
    "MESH_METHODS",
    "PEER_METHODS",
    "PEER_REQUIREMENTS",
    "MethodResult",
    "available_peers",
    "background2d",
    "background2d_masked",
    "fill_holes_per_cutout",
    "inpaint_biharmonic",
    "interpolate_replace_nans",
    "load_ours",
    "maskfill",
    "sep_background",
]

#: Mesh box of Background2D and sep, in beams (FWHM): "a few beams".
BOX_SIZE_BEAMS = 5.0

_GAUSSIAN_SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass
class MethodResult:
    """
    What one method returns for one map.

    Attributes
    ----------
    background : ndarray
        Background estimate, same shape as the data.
    error : ndarray or None
        1-sigma uncertainty of ``background`` (None when the method gives none).
    """

    background: np.ndarray
    error: np.ndarray | None = None


def _box_size(fwhm_pixels: float, shape: tuple[int, int]) -> int:
    box = max(int(round(BOX_SIZE_BEAMS * fwhm_pixels)), 4)
    return min(box, *shape)


def background2d(
    data: np.ndarray,
    hole_mask: np.ndarray,
    coverage: np.ndarray,
    fwhm_pixels: float,
    *,
    box_size: int | None = None,
) -> MethodResult:
    """
    photutils `~photutils.background.Background2D` without the source mask.

    Its own sigma clipping is what rejects the sources, as in the usual
    photutils recipe.

    Parameters
    ----------
    data : ndarray
        The map, NaN outside ``coverage``.
    hole_mask : ndarray of bool
        Pixels of the compact sources (ignored by this variant).
    coverage : ndarray of bool
        Covered pixels.
    fwhm_pixels : float
        Beam FWHM in pixels; the box is `BOX_SIZE_BEAMS` beams.
    box_size : int, optional
        Box in pixels, overriding the beam-scaled one.

    Returns
    -------
    `MethodResult`

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.methods import background2d
    >>> data = np.full((64, 64), 3.0)
    >>> holes = np.zeros((64, 64), dtype=bool)
    >>> result = background2d(data, holes, np.ones((64, 64), dtype=bool), 3.0)
    >>> float(result.background[10, 10])
    3.0
    """
    return _run_background2d(data, None, coverage, fwhm_pixels, box_size)


def background2d_masked(
    data: np.ndarray,
    hole_mask: np.ndarray,
    coverage: np.ndarray,
    fwhm_pixels: float,
    *,
    box_size: int | None = None,
) -> MethodResult:
    """
    photutils `~photutils.background.Background2D` given the holes as ``mask``.

    Parameters and returns are those of `background2d`; boxes with more
    than 10 % of masked pixels are excluded (photutils' default).

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.methods import background2d_masked
    >>> data = np.full((64, 64), 3.0)
    >>> holes = np.zeros((64, 64), dtype=bool)
    >>> holes[30:33, 30:33] = True
    >>> result = background2d_masked(data, holes, np.ones((64, 64), dtype=bool), 3.0)
    >>> float(result.background[31, 31])
    3.0
    """
    return _run_background2d(data, hole_mask, coverage, fwhm_pixels, box_size)


def _run_background2d(data, hole_mask, coverage, fwhm_pixels, box_size) -> MethodResult:
    from photutils.background import Background2D

    box = box_size if box_size is not None else _box_size(fwhm_pixels, data.shape)
    bkg = Background2D(
        data,
        box,
        mask=None if hole_mask is None else hole_mask & coverage,
        coverage_mask=~coverage,
        fill_value=np.nan,
        filter_size=(3, 3),
    )
    return MethodResult(np.asarray(bkg.background, dtype=float))


def sep_background(
    data: np.ndarray,
    hole_mask: np.ndarray,
    coverage: np.ndarray,
    fwhm_pixels: float,
    *,
    box_size: int | None = None,
) -> MethodResult:
    """
    SExtractor's mesh background (`sep.Background`), given the holes as mask.

    Parameters and returns are those of `background2d`.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.methods import sep_background
    >>> data = np.full((64, 64), 3.0)
    >>> holes = np.zeros((64, 64), dtype=bool)
    >>> result = sep_background(data, holes, np.ones((64, 64), dtype=bool), 3.0)
    >>> float(result.background[10, 10])
    3.0
    """
    import sep

    box = box_size if box_size is not None else _box_size(fwhm_pixels, data.shape)
    invalid = hole_mask | ~coverage
    # sep cannot take NaN even where masked.
    image = np.ascontiguousarray(np.where(coverage, data, 0.0), dtype=np.float64)
    bkg = sep.Background(image, mask=np.ascontiguousarray(invalid), bw=box, bh=box, fw=3, fh=3)
    background = np.asarray(bkg.back(), dtype=float)
    background[~coverage] = np.nan
    return MethodResult(background)


def fill_holes_per_cutout(
    data: np.ndarray,
    hole_mask: np.ndarray,
    coverage: np.ndarray,
    fill: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    pad: int,
) -> np.ndarray:
    """
    Fill every hole on its own padded cutout with ``fill``.

    Parameters
    ----------
    data : ndarray
        The map, NaN outside ``coverage``.
    hole_mask : ndarray of bool
        Pixels to fill.
    coverage : ndarray of bool
        Covered pixels.
    fill : callable
        ``fill(cutout, invalid) -> filled`` where ``invalid`` marks the
        cutout pixels not to be used (holes and no coverage) and ``filled``
        has values at least at the invalid pixels.
    pad : int
        Margin around each hole's bounding box, in pixels.

    Returns
    -------
    ndarray
        A copy of ``data`` whose hole pixels (within coverage) are filled.
        Connected holes (8-connectivity) are filled together.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.methods import fill_holes_per_cutout
    >>> data = np.arange(25.0).reshape(5, 5)
    >>> holes = np.zeros((5, 5), dtype=bool)
    >>> holes[2, 2] = True
    >>> def mean_fill(cutout, invalid):
    ...     return np.where(invalid, cutout[~invalid].mean(), cutout)
    >>> float(fill_holes_per_cutout(data, holes, np.ones((5, 5), bool), mean_fill, pad=1)[2, 2])
    12.0
    """
    filled = np.array(data, dtype=float, copy=True)
    invalid = hole_mask | ~coverage
    labels, _ = ndimage.label(hole_mask & coverage, structure=np.ones((3, 3), dtype=bool))
    for index, bounds in enumerate(ndimage.find_objects(labels), start=1):
        padded = tuple(
            slice(max(axis.start - pad, 0), min(axis.stop + pad, size))
            for axis, size in zip(bounds, data.shape, strict=True)
        )
        component = labels[padded] == index
        cutout_invalid = invalid[padded]
        if cutout_invalid.all():
            filled[padded][component] = np.nan
            continue
        result = fill(np.array(data[padded], copy=True), cutout_invalid)
        filled[padded][component] = result[component]
    return filled


def interpolate_replace_nans(
    data: np.ndarray, hole_mask: np.ndarray, coverage: np.ndarray, fwhm_pixels: float
) -> MethodResult:
    """
    astropy `~astropy.convolution.interpolate_replace_nans` with a beam-sized Gaussian.

    The kernel's sigma is the beam's; its footprint spans the whole cutout so
    that no hole pixel is left without support (astropy's default 8-sigma
    footprint is smaller than the largest holes).

    Parameters and returns are those of `background2d`.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.methods import interpolate_replace_nans
    >>> data = np.full((32, 32), 2.0)
    >>> holes = np.zeros((32, 32), dtype=bool)
    >>> holes[10:14, 10:14] = True
    >>> result = interpolate_replace_nans(data, holes, np.ones((32, 32), bool), 3.0)
    >>> round(float(result.background[12, 12]), 6)
    2.0
    """
    from astropy.convolution import Gaussian2DKernel, convolve_fft
    from astropy.convolution import interpolate_replace_nans as astropy_interpolate

    sigma = fwhm_pixels * _GAUSSIAN_SIGMA_PER_FWHM

    def fill(cutout: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        size = 2 * max(cutout.shape) + 1
        kernel = Gaussian2DKernel(x_stddev=sigma, x_size=size, y_size=size)
        cutout[invalid] = np.nan
        return astropy_interpolate(cutout, kernel, convolve=convolve_fft)

    pad = int(math.ceil(2.0 * fwhm_pixels))
    return MethodResult(fill_holes_per_cutout(data, hole_mask, coverage, fill, pad=pad))


def inpaint_biharmonic(
    data: np.ndarray, hole_mask: np.ndarray, coverage: np.ndarray, fwhm_pixels: float
) -> MethodResult:
    """
    scikit-image `~skimage.restoration.inpaint_biharmonic`, hole by hole.

    Parameters and returns are those of `background2d`.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.methods import inpaint_biharmonic
    >>> yy, xx = np.mgrid[:32, :32]
    >>> data = 0.5 * xx + 0.25 * yy
    >>> holes = (xx - 16) ** 2 + (yy - 16) ** 2 < 9
    >>> result = inpaint_biharmonic(data, holes, np.ones((32, 32), bool), 3.0)
    >>> bool(np.allclose(result.background, data, atol=1e-6))
    True
    """
    from skimage.restoration import inpaint_biharmonic as skimage_biharmonic

    def fill(cutout: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        cutout[invalid] = 0.0
        return skimage_biharmonic(cutout, invalid)

    pad = max(3, int(math.ceil(fwhm_pixels)))
    return MethodResult(fill_holes_per_cutout(data, hole_mask, coverage, fill, pad=pad))


def maskfill(
    data: np.ndarray, hole_mask: np.ndarray, coverage: np.ndarray, fwhm_pixels: float
) -> MethodResult:
    """
    maskfill (van Dokkum et al. 2023) with its defaults, hole by hole.

    Parameters and returns are those of `background2d`.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.methods import maskfill
    >>> data = np.full((16, 16), 5.0)
    >>> holes = np.zeros((16, 16), dtype=bool)
    >>> holes[6:9, 6:9] = True
    >>> float(maskfill(data, holes, np.ones((16, 16), bool), 2.0).background[7, 7])
    5.0
    """
    from maskfill import maskfill as maskfill_function

    def fill(cutout: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        cutout[invalid] = np.nan
        with warnings.catch_warnings():
            # Windows with no valid pixel yet are expected while filling inwards.
            warnings.simplefilter("ignore", RuntimeWarning)
            smoothed, _ = maskfill_function(cutout, invalid)
        return smoothed

    pad = max(3, int(math.ceil(fwhm_pixels)))
    return MethodResult(fill_holes_per_cutout(data, hole_mask, coverage, fill, pad=pad))


#: The peers, by the names used in every table of the benchmark.
PEER_METHODS: dict[str, Callable[..., MethodResult]] = {
    "background2d": background2d,
    "background2d_masked": background2d_masked,
    "sep": sep_background,
    "interpolate_replace_nans": interpolate_replace_nans,
    "inpaint_biharmonic": inpaint_biharmonic,
    "maskfill": maskfill,
}


#: The peers with a mesh box (they accept a ``box_size`` keyword).
MESH_METHODS = ("background2d", "background2d_masked", "sep")

#: The module each peer needs (optional dependencies of the benchmark).
PEER_REQUIREMENTS = {
    "background2d": "photutils.background",
    "background2d_masked": "photutils.background",
    "sep": "sep",
    "interpolate_replace_nans": "astropy.convolution",
    "inpaint_biharmonic": "skimage.restoration",
    "maskfill": "maskfill",
}


def available_peers() -> tuple[dict[str, Callable[..., MethodResult]], dict[str, str]]:
    """
    The peers whose packages import, and why the others are missing.

    Importing here also keeps import time out of the first timed call.

    Returns
    -------
    available : dict
        Name -> method.
    missing : dict
        Name -> reason (the import error and what to install).

    Examples
    --------
    >>> from nemesis_bkg.bench.methods import available_peers
    >>> available, missing = available_peers()
    >>> sorted(available) + sorted(missing) == sorted(PEER_METHODS)
    True
    """
    available, missing = {}, {}
    for name, method in PEER_METHODS.items():
        try:
            importlib.import_module(PEER_REQUIREMENTS[name])
        except ImportError as exc:
            missing[name] = f"{exc}; install the benchmark extras: pip install 'nemesis_bkg[bench]'"
        else:
            available[name] = method
    return available, missing


def load_ours() -> tuple[Callable[..., MethodResult] | None, str]:
    """
    Return our method if the engine imports and its bundled weights load.

    The bundled weights are loaded (and their checksum verified) once, here,
    like the peers' imports in `available_peers`: the timed calls then
    measure the inpainting, not the reading of the weights file. The engine
    is tried once on a small map with one hole: any failure (missing module,
    missing or corrupt weights) makes ours unavailable, with the reason.

    Returns
    -------
    method : callable or None
        ``method(data, hole_mask, coverage, fwhm_pixels) -> MethodResult``.
    reason : str
        Why ours is not available ("" when it is).

    Examples
    --------
    >>> from nemesis_bkg.bench.methods import load_ours
    >>> method, reason = load_ours()
    >>> (method is None) == bool(reason)
    True
    """
    try:
        from nemesis_bkg.engine import inpaint_map
        from nemesis_bkg.model import load_model
    except ImportError as exc:
        return None, f"nemesis_bkg.engine.inpaint_map cannot be imported ({exc})"
    try:
        model = load_model()
    except Exception as exc:  # missing, corrupt or unreadable bundled weights
        return None, f"the bundled weights cannot be loaded ({type(exc).__name__}: {exc})"

    def ours(
        data: np.ndarray, hole_mask: np.ndarray, coverage: np.ndarray, fwhm_pixels: float
    ) -> MethodResult:
        background, background_error = inpaint_map(
            data, hole_mask, coverage, fwhm_pixels, model=model
        )
        return MethodResult(np.asarray(background, dtype=float), np.asarray(background_error))

    yy, xx = np.mgrid[:64, :64]
    probe = np.sin(xx / 7.0) + np.cos(yy / 5.0)
    probe_holes = (xx - 32) ** 2 + (yy - 32) ** 2 < 36
    try:
        result = ours(probe, probe_holes, np.ones(probe.shape, dtype=bool), 3.0)
    except Exception as exc:  # any failure to load or run the bundled model
        return None, f"the engine failed on a probe map ({type(exc).__name__}: {exc})"
    if result.background.shape != probe.shape or not np.isfinite(result.background).all():
        return None, "the engine returned a background of the wrong shape or with NaN"
    return ours, ""
