"""
Training samples made on the fly: a background view (simulated map or real
map crop), compact sources injected into it, holes cut around them by the
masking rule plus random extra holes, the classical fill of the holes, and
the normalised network inputs and target of the central tile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..engine.features import network_inputs
from ..engine.fill import biharmonic_fill, classical_fill
from ..engine.normalize import tile_scaling

__all__ = [
    "BackgroundView",
    "Sample",
    "hole_radius_pixels",
    "make_sample",
    "real_map_views",
    "simulated_views",
]


@dataclass
class BackgroundView:
    """
    A background to cut training canvases from.

    Attributes
    ----------
    truth : `~numpy.ndarray`
        The background the network must recover (NaN where no coverage).
    noise : `~numpy.ndarray` or None
        A noise realisation added to ``truth`` (same shape), or None for
        white noise of ``noise_std``.
    noise_std : float
        Per-pixel 1-sigma of the noise.
    fwhm_pixels : float or None
        Beam FWHM of the map in pixels; None to draw one per sample.
    kind : str
        Where it comes from (``"simulated"``, ``"real"``, ...), for reports.
    """

    truth: np.ndarray
    noise: np.ndarray | None
    noise_std: float
    fwhm_pixels: float | None
    kind: str


@dataclass
class Sample:
    """One training tile: network inputs, target and what validation needs."""

    inputs: np.ndarray  # (4, T, T) float32
    coverage: np.ndarray  # (1, T, T) float32
    target: np.ndarray  # (T, T) float32, normalised true background (0 where invalid)
    holes: np.ndarray  # (T, T) bool, holes with data
    valid: np.ndarray  # (T, T) bool, pixels with a true background
    fill: np.ndarray  # (T, T) float32, normalised classical fill
    biharmonic: np.ndarray  # (T, T) float32, normalised biharmonic fill
    noise_in_scale: float  # the noise 1-sigma in normalised units
    contrast: float  # background robust std / noise std
    kind: str


def hole_radius_pixels(peak_snr: float, fwhm_pixels: float) -> float:
    """
    Radius of the hole cut around a source: the package's masking rule.

    See `nemesis_bkg.masking.holes.hole_radius` (beam sigma times
    sqrt(2 ln SNR) plus half the FWHM, by default).

    Parameters
    ----------
    peak_snr : float
        Peak signal-to-noise ratio of the source.
    fwhm_pixels : float
        Beam FWHM in pixels.

    Returns
    -------
    float
        The hole radius in pixels.

    Examples
    --------
    >>> hole_radius_pixels(100.0, 3.0) > hole_radius_pixels(10.0, 3.0)
    True
    """
    from ..masking.holes import hole_radius

    return float(hole_radius(peak_snr, fwhm_pixels))


def _d4(array, rotation, flip):
    array = np.rot90(array, k=rotation)
    return array[:, ::-1] if flip else array


def _crop(view, canvas, rng):
    rows, cols = view.truth.shape
    for _ in range(20):
        row0 = int(rng.integers(0, rows - canvas + 1))
        col0 = int(rng.integers(0, cols - canvas + 1))
        truth = view.truth[row0 : row0 + canvas, col0 : col0 + canvas]
        if np.isfinite(truth[canvas // 4 : -canvas // 4, canvas // 4 : -canvas // 4]).mean() > 0.9:
            break
    noise = (rng.normal(scale=view.noise_std, size=truth.shape) if view.noise is None
             else view.noise[row0 : row0 + canvas, col0 : col0 + canvas])
    rotation, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
    return _d4(truth, rotation, flip), _d4(noise, rotation, flip)


def make_sample(
    view: BackgroundView,
    rng: np.random.Generator,
    *,
    tile_size: int = 64,
    context: int = 16,
    fwhm_range: tuple[float, float] = (1.5, 5.0),
    snr_range: tuple[float, float] = (3.0, 3000.0),
    max_extra_sources: int = 3,
    extra_hole_probability: float = 0.3,
    nan_edge_probability: float = 0.1,
) -> Sample | None:
    """
    Make one training tile from a background view.

    A canvas of ``tile_size + 2 * context`` pixels is cut from the view
    (random place, rotation and flip); Gaussian sources are injected (one
    near the centre, a few elsewhere), each masked by `hole_radius_pixels`;
    random extra holes and, sometimes, a straight no-coverage edge are
    added; the holes are filled classically (kriging and biharmonic) on the
    whole canvas, and the central tile is normalised as at inference.

    Parameters
    ----------
    view : `BackgroundView`
        The background.
    rng : `numpy.random.Generator`
        Random numbers.
    tile_size, context : int, optional
        Tile side, and the extra border used for the classical fill.
    fwhm_range : tuple of float, optional
        Beam FWHM range in pixels, used when the view has no beam.
    snr_range : tuple of float, optional
        Peak signal-to-noise range of the sources (log-uniform).
    max_extra_sources : int, optional
        Most sources besides the central one.
    extra_hole_probability, nan_edge_probability : float, optional
        Chances of a random extra hole and of a no-coverage edge.

    Returns
    -------
    `Sample` or None
        None when the tile has no usable hole or nothing to normalise by.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> view = BackgroundView(rng.normal(size=(128, 128)), None, 0.1, 3.0, "test")
    >>> sample = make_sample(view, rng)
    >>> sample.inputs.shape, bool(sample.holes.any())
    ((4, 64, 64), True)
    """
    canvas = tile_size + 2 * context
    truth, noise = _crop(view, canvas, rng)
    fwhm = view.fwhm_pixels or float(np.exp(rng.uniform(*np.log(fwhm_range))))
    sigma = fwhm / np.sqrt(8 * np.log(2))
    rows, cols = np.mgrid[:canvas, :canvas]
    sources = np.zeros((canvas, canvas))
    holes = np.zeros((canvas, canvas), bool)
    centre = canvas / 2 - 0.5
    positions = [centre + rng.uniform(-tile_size / 8, tile_size / 8, size=2)]
    positions += list(rng.uniform(0, canvas, size=(int(rng.integers(0, max_extra_sources + 1)), 2)))
    for row, col in positions:
        snr = float(np.exp(rng.uniform(*np.log(snr_range))))
        distance2 = (rows - row) ** 2 + (cols - col) ** 2
        sources += snr * view.noise_std * np.exp(-0.5 * distance2 / sigma**2)
        holes |= distance2 <= hole_radius_pixels(snr, fwhm) ** 2
    if rng.uniform() < extra_hole_probability:
        row, col = rng.uniform(context, canvas - context, size=2)
        radius = rng.uniform(1.0, 2.5) * fwhm
        holes |= (rows - row) ** 2 + (cols - col) ** 2 <= radius**2
    covered = np.isfinite(truth)
    if rng.uniform() < nan_edge_probability:
        # A straight scan edge at least a few beams from the central source.
        angle = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(tile_size / 4, tile_size / 2)
        covered &= ((rows - centre) * np.sin(angle) + (cols - centre) * np.cos(angle)) < offset
    data = np.where(covered, truth + noise + sources, np.nan)
    holes &= covered
    filled, fill_error = classical_fill(np.where(holes, np.nan, data), holes, fwhm_pixels=fwhm)
    tile = slice(context, context + tile_size)
    biharmonic = biharmonic_fill(np.where(holes, np.nan, data), holes)[tile, tile]
    tile_holes = holes[tile, tile] & np.isfinite(filled[tile, tile])
    trusted = covered[tile, tile] & ~holes[tile, tile]
    scaling = tile_scaling(filled[tile, tile], trusted)
    if scaling is None or not tile_holes.any():
        return None
    usable = trusted | tile_holes
    inputs, coverage = network_inputs(
        filled[tile, tile], tile_holes, fill_error[tile, tile], biharmonic, usable, scaling
    )
    valid = np.isfinite(truth[tile, tile]) & usable
    target = np.where(valid, scaling.normalise(np.where(valid, truth[tile, tile], 0.0)), 0.0)
    biharmonic = np.where(tile_holes, scaling.normalise(np.nan_to_num(biharmonic)), 0.0)
    finite_truth = truth[np.isfinite(truth)]
    contrast = float(np.std(finite_truth) / view.noise_std) if finite_truth.size else 0.0
    return Sample(
        inputs=inputs,
        coverage=coverage,
        target=target.astype(np.float32),
        holes=tile_holes,
        valid=valid,
        fill=np.where(tile_holes, inputs[0], 0.0).astype(np.float32),
        biharmonic=biharmonic.astype(np.float32),
        noise_in_scale=view.noise_std / scaling.scale,
        contrast=contrast,
        kind=view.kind,
    )


def simulated_views(
    count: int,
    *,
    size: int = 384,
    fwhm_range: tuple[float, float] = (1.5, 5.0),
    contrast_range: tuple[float, float] = (10.0, 500.0),
    seed: int = 0,
) -> list[BackgroundView]:
    """
    Background views from `nemesis_bkg.simulate.simulate_map` (no sources).

    Bands, regimes, beam sampling and background contrast are drawn at
    random; the truth is the simulated noiseless background and the noise
    the simulated noise (with its scan stripes).

    Parameters
    ----------
    count : int
        Maps to simulate.
    size : int, optional
        Side of each map in pixels.
    fwhm_range : tuple of float, optional
        Beam FWHM range in pixels (log-uniform).
    contrast_range : tuple of float, optional
        Range of background robust std over noise std (log-uniform).
    seed : int, optional
        Fixes every map.

    Returns
    -------
    list of `BackgroundView`

    Examples
    --------
    >>> views = simulated_views(1, size=128)  # doctest: +SKIP
    """
    from ..instruments import INSTRUMENTS
    from ..simulate import simulate_map

    rng = np.random.default_rng(seed)
    views = []
    for index in range(count):
        simulated = simulate_map(
            (size, size),
            instrument=str(rng.choice(sorted(INSTRUMENTS))),
            pixels_per_beam=float(np.exp(rng.uniform(*np.log(fwhm_range)))),
            regime=str(rng.choice(["cirrus", "filamentary", "confusion"])),
            background_contrast=float(np.exp(rng.uniform(*np.log(contrast_range)))),
            n_sources=0,
            noise_std=1.0,
            seed=seed * 1000 + index,
        )
        views.append(BackgroundView(
            truth=np.asarray(simulated.background, dtype=float),
            noise=np.asarray(simulated.noise, dtype=float),
            noise_std=float(simulated.noise_std),
            fwhm_pixels=float(simulated.fwhm_pixels),
            kind="simulated",
        ))
    return views


def real_map_views(
    *,
    zoom_range: tuple[float, float] = (0.7, 2.5),
    contrast_range: tuple[float, float] = (10.0, 500.0),
    views_per_map: int = 3,
    exclude: tuple[str, ...] = (),
    seed: int = 0,
) -> list[BackgroundView]:
    """
    Background views from the real maps in ``../shared/data/real_maps``.

    Each map is resampled by a random zoom and scaled to a random contrast
    (robust std over the white noise added to it); its own noise stays part
    of the truth, as in the method paper, and the added noise is never below
    it. Only the training half of each map is used (the benchmark scores on
    the other). Maps whose file name contains one of ``exclude`` are skipped (the
    default configuration skips the GLIMPSE map: its crowded stars are
    compact sources, not background). Empty when the maps are absent.

    Parameters
    ----------
    zoom_range : tuple of float, optional
        Range of the resampling factor (log-uniform).
    contrast_range : tuple of float, optional
        Range of background robust std over added noise std (log-uniform).
    views_per_map : int, optional
        Random zooms of each map (views smaller than 112 pixels or without
        structure are left out).
    exclude : tuple of str, optional
        Parts of file names of maps to skip.
    seed : int, optional
        Fixes the zooms and contrasts.

    Returns
    -------
    list of `BackgroundView`

    Examples
    --------
    >>> views = real_map_views(views_per_map=1)  # doctest: +SKIP
    """
    from ..simulate import load_real_map, real_map_paths
    from ..simulate.real_maps import real_map_noise

    rng = np.random.default_rng(seed)
    views = []
    for path in real_map_paths():
        if any(name in path.name for name in exclude):
            continue
        image = load_real_map(path, part="training")
        for _ in range(views_per_map):
            zoom = float(np.exp(rng.uniform(*np.log(zoom_range))))
            resampled = ndimage.zoom(np.nan_to_num(image, nan=0.0), zoom, order=1)
            finite = ndimage.zoom(np.isfinite(image).astype(float), zoom, order=1) > 0.99
            values = resampled[finite]
            spread = 1.4826 * np.median(np.abs(values - np.median(values)))
            if not spread > 0 or min(resampled.shape) < 112:
                continue
            contrast = float(np.exp(rng.uniform(*np.log(contrast_range))))
            factor = contrast / spread
            # The map's own pixel noise stays in the truth: the added noise is never
            # below it, so no tile asks for more than the noise allows.
            own_noise = real_map_noise(resampled, finite)
            views.append(BackgroundView(
                truth=np.where(finite, (resampled - np.median(values)) * factor, np.nan),
                noise=None,
                noise_std=max(1.0, own_noise * factor),
                fwhm_pixels=None,
                kind="real",
            ))
    return views
