"""
Real maps as simulation backgrounds: finding the shared real maps, loading
them cleanly, and turning one into a background of a chosen size and
brightness (random 90-degree rotation, flip and crop, resampled up when it
is smaller than the requested map, rescaled to a chosen robust std).

Each map is split in two halves along its longer axis: training draws
only from the first (``part="training"``), the benchmark only from the
second (``part="evaluation"``), so that the benchmark's real skies are skies
the network has not seen.

The maps live outside the repository, in ``<repo>/../shared/data/real_maps``
(or the folder named by the ``NEMESIS_BKG_REAL_MAPS`` environment variable).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.stats import mad_std
from scipy import ndimage

__all__ = [
    "FLAG_THRESHOLD",
    "REAL_MAP_PARTS",
    "load_real_map",
    "real_background",
    "real_map_noise",
    "real_map_paths",
    "real_maps_folder",
]

#: Pixel values at or above this magnitude are flags (e.g. 1e25), not data.
FLAG_THRESHOLD = 1e24

#: The halves of a real map: the first along its longer axis for training, the second for
#: evaluation.
REAL_MAP_PARTS = ("training", "evaluation")


def real_maps_folder() -> Path:
    """
    The folder holding the shared real maps.

    Returns
    -------
    `~pathlib.Path`
        ``$NEMESIS_BKG_REAL_MAPS`` if set, else ``<repo>/../shared/data/real_maps``
        (it may not exist).

    Examples
    --------
    >>> from nemesis_bkg.simulate.real_maps import real_maps_folder
    >>> real_maps_folder().name
    'real_maps'
    """
    override = os.environ.get("NEMESIS_BKG_REAL_MAPS")
    if override:
        return Path(override)
    repository = Path(__file__).resolve().parents[2]
    return repository.parent / "shared" / "data" / "real_maps"


def real_map_paths() -> list[Path]:
    """
    The FITS files in `real_maps_folder`, sorted by name; empty if it is absent.

    Returns
    -------
    list of `~pathlib.Path`

    Examples
    --------
    >>> from nemesis_bkg.simulate import real_map_paths
    >>> isinstance(real_map_paths(), list)
    True
    """
    folder = real_maps_folder()
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in (".fits", ".fit"))


def load_real_map(path: str | os.PathLike, *, part: str | None = None) -> np.ndarray:
    """
    The first 2-D image of a FITS file as a clean float64 array.

    Non-finite values and flags (magnitude >= `FLAG_THRESHOLD`) become NaN;
    degenerate axes of 3-D/4-D images are squeezed away.

    Parameters
    ----------
    path : str or path-like
    part : {None, "training", "evaluation"}, optional
        The whole map (None), or one half of it along its longer axis: the
        first for training, the second for evaluation (`REAL_MAP_PARTS`).

    Returns
    -------
    ndarray
        Native-byte-order float64 image.

    Raises
    ------
    ValueError
        If the file holds no 2-D image or no finite pixel, or ``part`` is
        not one of `REAL_MAP_PARTS`.

    Examples
    --------
    >>> from nemesis_bkg.simulate import load_real_map, real_map_paths
    >>> paths = real_map_paths()
    >>> image = load_real_map(paths[0], part="evaluation") if paths else None
    """
    if part is not None and part not in REAL_MAP_PARTS:
        raise ValueError(f"part must be None or one of {REAL_MAP_PARTS}, not {part!r}")
    with fits.open(path, memmap=False) as hdul:
        image = next(
            (
                np.squeeze(hdu.data)
                for hdu in hdul
                if hdu.data is not None and hdu.is_image and np.squeeze(hdu.data).ndim == 2
            ),
            None,
        )
    if image is None:
        raise ValueError(f"{path} holds no 2-D image; give a FITS file with a 2-D image HDU.")
    image = np.array(image, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        image[~np.isfinite(image) | (np.abs(image) >= FLAG_THRESHOLD)] = np.nan
    if part is not None:
        axis = int(image.shape[1] > image.shape[0])
        middle = image.shape[axis] // 2
        halves = np.split(image, [middle], axis=axis)
        image = np.ascontiguousarray(halves[REAL_MAP_PARTS.index(part)])
    if not np.isfinite(image).any():
        raise ValueError(f"{path} has no finite, unflagged pixel" +
                         (f" in its {part} half." if part else "."))
    return image


def real_map_noise(image: np.ndarray, valid: np.ndarray | None = None) -> float:
    """
    The pixel noise a real map carries in itself.

    Estimated from the median absolute 5-point Laplacian over the valid
    pixels, which is sqrt(20) / 1.4826 times the noise for white noise and
    nearly blind to structure that is smooth on the pixel scale. Whatever
    the map holds at the pixel scale counts as noise: no inpainter can
    predict it in a hole, so a map used as a known background must not be
    given less added noise than this (training and the benchmark both use
    this estimate).

    Parameters
    ----------
    image : ndarray
        2-D map; non-finite pixels count as 0 in the Laplacian of their
        neighbours.
    valid : ndarray of bool, optional
        Pixels whose Laplacian counts; default the finite ones.

    Returns
    -------
    float
        The noise, in the map's units (0 without valid pixels).

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.real_maps import real_map_noise
    >>> white = np.random.default_rng(0).normal(scale=3.0, size=(200, 200))
    >>> round(real_map_noise(white), 1)
    3.0
    """
    image = np.asarray(image, dtype=np.float64)
    valid = np.isfinite(image) if valid is None else np.asarray(valid, dtype=bool)
    image = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
    laplacian = (4 * image[1:-1, 1:-1] - image[2:, 1:-1] - image[:-2, 1:-1]
                 - image[1:-1, 2:] - image[1:-1, :-2])[valid[1:-1, 1:-1]]
    if laplacian.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(laplacian)) / np.sqrt(20.0))


def _robust_std(values: np.ndarray) -> float:
    spread = float(mad_std(values))
    return spread if spread > 0 else float(np.std(values))


def real_background(
    image: np.ndarray,
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    target_std: float,
    min_covered: float = 0.5,
) -> np.ndarray:
    """
    A random view of a real map, of the given shape and robust std.

    The map is rotated by a random multiple of 90 degrees (among those that
    keep it at least as large as ``shape``, when there are such), flipped at random,
    resampled up (bilinear) when it is smaller than ``shape``, cropped at a
    random place holding at least ``min_covered`` finite pixels, and scaled
    (about zero, so a positive map stays positive) until its robust std
    (MAD-based) is ``target_std``. NaN pixels stay NaN.

    Parameters
    ----------
    image : ndarray
        2-D real map; NaN marks missing pixels.
    shape : tuple of int
        ``(ny, nx)`` wanted.
    rng : `numpy.random.Generator`
    target_std : float
        Robust std of the result.
    min_covered : float, optional
        Least fraction of finite pixels accepted in the crop.

    Returns
    -------
    ndarray
        Float64 background of ``shape``.

    Raises
    ------
    ValueError
        If the map is not 2-D, is flat, or no crop has enough finite pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.real_maps import real_background
    >>> rng = np.random.default_rng(0)
    >>> view = real_background(rng.normal(size=(80, 80)), (64, 64), rng, target_std=5.0)
    >>> view.shape
    (64, 64)
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"a real background must be a 2-D image, got shape {image.shape}.")
    if not target_std > 0:
        raise ValueError(f"target_std must be positive, got {target_std}.")
    # Prefer the quarter turns after which the map still covers the shape unresampled.
    fitting = [
        turns
        for turns in range(4)
        if np.all(np.array(image.shape[:: (-1) ** turns]) >= np.array(shape))
    ]
    view = np.rot90(image, k=int(rng.choice(fitting or range(4))))
    if rng.uniform() < 0.5:
        view = view[:, ::-1]
    zoom = max(shape[0] / view.shape[0], shape[1] / view.shape[1])
    if zoom > 1:
        warnings.warn(
            f"real background {image.shape} is smaller than the map {shape}; "
            f"resampling it {zoom:.2f}x, which also widens its structures.",
            stacklevel=2,
        )
        finite = np.isfinite(view)
        filled = np.where(finite, view, np.nanmedian(view))
        zoom_factors = (shape[0] / view.shape[0] * 1.0001, shape[1] / view.shape[1] * 1.0001)
        zoom_factors = (max(zoom_factors[0], zoom), max(zoom_factors[1], zoom))
        view = ndimage.zoom(filled, zoom_factors, order=1, grid_mode=True, mode="nearest")
        covered = ndimage.zoom(
            finite.astype(np.uint8), zoom_factors, order=0, grid_mode=True, mode="nearest"
        )
        view[covered == 0] = np.nan
    finite = np.isfinite(view)
    for _ in range(20):
        top = int(rng.integers(0, view.shape[0] - shape[0] + 1))
        left = int(rng.integers(0, view.shape[1] - shape[1] + 1))
        window = (slice(top, top + shape[0]), slice(left, left + shape[1]))
        if finite[window].mean() >= min_covered:
            break
    else:
        raise ValueError(
            f"no {shape} crop of this real map has {min_covered:.0%} finite pixels; "
            "use a smaller shape or another map."
        )
    crop = view[window].copy()
    spread = _robust_std(crop[finite[window]])
    if spread <= 0:
        raise ValueError("the real background is flat in the chosen crop; use another map.")
    return crop * (target_std / spread)
