"""
Networks of filaments with Plummer-like radial profiles.

A filament is a spine (a curve in pixel coordinates) with a crest value
along it and a column-density profile across it

    Sigma(r) = crest * (1 + (r / R_flat)**2) ** (-(p - 1) / 2),

the projection of a Plummer cylinder of index ``p`` (Arzoumanian et al.
2011). It is rendered by depositing the spine as a line density and
convolving, in Fourier space, with the 2-D kernel
``(1 + (r / R_flat)**2) ** (-p / 2)``, whose integral along a line through
the axis is that profile. Like real filaments, the cylinder has an outer
radius (8 FWHM by default, tapered from 70 % of it), which trims the far
wings of the column profile, most for ``p`` near 2. Filaments sharing a
width share one FFT.

Spines either follow the ridges of a guide field (filaments sitting on the
crests of the cloud), run as gently curving lines that cross the cloud and
each other, or branch off an existing spine (hub-filament systems).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import ndimage

__all__ = [
    "Filament",
    "filament_mask",
    "filament_network",
    "plummer_kernel_transfer",
    "plummer_flat_radius",
    "render_filaments",
]

# Spines are traced with this step (pixels) and deposited at a quarter of it.
_TRACE_STEP = 2.0
_DEPOSIT_STEP = 0.5
# Heading changes per step (radians): ridge steering, random jitter, and the
# largest bend from the starting heading (filaments bend, they do not curl).
_MAX_TURN = 0.08
_HEADING_JITTER = 0.03
_MAX_BEND = 1.2


@dataclass(frozen=True)
class Filament:
    """
    One filament: its spine, crest values along it, and its radial profile.

    Attributes
    ----------
    spine : ndarray
        ``(n, 2)`` array of ``(x, y)`` pixel positions along the spine.
    crest : ndarray
        ``(n,)`` intrinsic (not beam-convolved) crest value at each spine point.
    fwhm : float
        FWHM of the intrinsic radial profile, in pixels.
    plummer_index : float
        Index ``p`` of the Plummer density profile (about 2 in real clouds).
    kind : str
        ``"ridge"``, ``"crossing"`` or ``"branch"``.
    """

    spine: np.ndarray
    crest: np.ndarray
    fwhm: float
    plummer_index: float
    kind: str


def plummer_flat_radius(fwhm: float, plummer_index: float) -> float:
    """
    Flat radius ``R_flat`` of a Plummer column profile of the given FWHM.

    Parameters
    ----------
    fwhm : float
        FWHM of the column-density profile across the filament.
    plummer_index : float
        Density index ``p`` (> 1).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``plummer_index`` is not above 1.

    Examples
    --------
    >>> from nemesis_bkg.simulate.filaments import plummer_flat_radius
    >>> round(plummer_flat_radius(2.0, 3.0), 6)  # (1 + x**2)**-1 has FWHM 2
    1.0
    """
    if plummer_index <= 1:
        raise ValueError(f"plummer_index must be > 1, got {plummer_index}.")
    half_width_in_radii = np.sqrt(2.0 ** (2.0 / (plummer_index - 1.0)) - 1.0)
    return float(0.5 * fwhm / half_width_in_radii)


def plummer_kernel_transfer(
    shape: tuple[int, int], *, fwhm: float, plummer_index: float, outer_fwhms: float = 8.0
) -> np.ndarray:
    """
    Fourier transform of the line-to-filament kernel on the real-FFT grid.

    The kernel is ``(1 + (r / R_flat)**2) ** (-p / 2)``, tapered to zero
    between 0.7 and 1 times ``outer_fwhms * fwhm`` (real filaments have an
    outer radius) and normalised so that a line of unit density becomes a
    filament of unit crest.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the image the lines are deposited on.
    fwhm : float
        FWHM of the filament profile, pixels.
    plummer_index : float
        Density index ``p``.
    outer_fwhms : float, optional
        Outer radius of the profile in units of ``fwhm``.

    Returns
    -------
    ndarray of complex
        Shape ``(ny, nx // 2 + 1)``.

    Examples
    --------
    >>> from nemesis_bkg.simulate.filaments import plummer_kernel_transfer
    >>> plummer_kernel_transfer((64, 64), fwhm=4.0, plummer_index=2.0).shape
    (64, 33)
    """
    flat_radius = plummer_flat_radius(fwhm, plummer_index)
    outer_radius = min(outer_fwhms * fwhm, (min(shape) - 1) / 2)
    half = int(np.ceil(outer_radius))
    offsets = np.arange(-half, half + 1, dtype=float)
    radius = np.hypot(offsets[:, np.newaxis], offsets[np.newaxis, :])
    kernel = (1.0 + (radius / flat_radius) ** 2) ** (-plummer_index / 2.0)
    taper_start = 0.7 * outer_radius
    ramp = np.clip((radius - taper_start) / (outer_radius - taper_start), 0.0, 1.0)
    kernel *= np.cos(0.5 * np.pi * ramp) ** 2
    # A line along y through the centre sums the central column: that is the crest.
    kernel /= kernel[:, half].sum()
    wrapped = np.zeros(shape)
    rows = np.mod(offsets.astype(int), shape[0])
    cols = np.mod(offsets.astype(int), shape[1])
    wrapped[np.ix_(rows, cols)] = kernel
    return scipy.fft.rfft2(wrapped)


def _ridge_geometry(guide: np.ndarray, block: int) -> np.ndarray:
    """Gradient and Hessian of the smoothed, block-averaged guide field (5, ny, nx)."""
    ny, nx = (guide.shape[0] // block) * block, (guide.shape[1] // block) * block
    coarse = guide[:ny, :nx].reshape(ny // block, block, nx // block, block).mean(axis=(1, 3))
    coarse = ndimage.gaussian_filter(coarse, sigma=2.5, mode="wrap")
    grad_y, grad_x = np.gradient(coarse)
    hess_yy, hess_yx = np.gradient(grad_y)
    _, hess_xx = np.gradient(grad_x)
    # Per fine pixel: first derivatives scale as 1/block, second ones as 1/block**2.
    return np.stack(
        [grad_x / block, grad_y / block, hess_xx / block**2, hess_yx / block**2, hess_yy / block**2]
    )


def _bilinear(stack: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of each plane of ``stack`` at coarse coordinates (x, y)."""
    ny, nx = stack.shape[1:]
    x = np.clip(x, 0.0, nx - 1.001)
    y = np.clip(y, 0.0, ny - 1.001)
    x0, y0 = x.astype(int), y.astype(int)
    fx, fy = x - x0, y - y0
    return (
        stack[:, y0, x0] * (1 - fx) * (1 - fy)
        + stack[:, y0, x0 + 1] * fx * (1 - fy)
        + stack[:, y0 + 1, x0] * (1 - fx) * fy
        + stack[:, y0 + 1, x0 + 1] * fx * fy
    )


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped into [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _trace_spines(
    start: np.ndarray,
    angle: np.ndarray,
    n_steps: np.ndarray,
    ridge_weight: np.ndarray,
    geometry: np.ndarray,
    block: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Walk all spines at once; ridge walkers turn along the guide field's ridges."""
    n_walkers = len(start)
    positions = np.empty((int(n_steps.max()) + 1, n_walkers, 2))
    positions[0] = start
    heading = np.asarray(angle, dtype=float).copy()
    initial_heading = heading
    for step in range(1, positions.shape[0]):
        x, y = positions[step - 1, :, 0], positions[step - 1, :, 1]
        grad_x, grad_y, hess_xx, hess_xy, hess_yy = _bilinear(
            geometry, (x + 0.5) / block - 0.5, (y + 0.5) / block - 0.5
        )
        # The ridge runs along the eigenvector of the larger Hessian eigenvalue;
        # it is an axis, so take the sense closer to the current heading.
        ridge_angle = 0.5 * np.arctan2(2.0 * hess_xy, hess_xx - hess_yy)
        turn = _wrap(2.0 * (ridge_angle - heading)) / 2.0
        if step == 1:
            heading = heading + ridge_weight * turn
            initial_heading = heading.copy()
        else:
            heading = heading + ridge_weight * np.clip(0.3 * turn, -_MAX_TURN, _MAX_TURN)
        heading = heading + rng.normal(0.0, _HEADING_JITTER, n_walkers)
        # Filaments bend but do not curl up: keep within _MAX_BEND of the start heading.
        heading = initial_heading + np.clip(_wrap(heading - initial_heading), -_MAX_BEND, _MAX_BEND)
        direction = np.stack([np.cos(heading), np.sin(heading)], axis=1)
        across = np.stack([-direction[:, 1], direction[:, 0]], axis=1)
        curvature_across = 0.5 * (hess_xx + hess_yy) - np.hypot(0.5 * (hess_xx - hess_yy), hess_xy)
        slope_across = grad_x * across[:, 0] + grad_y * across[:, 1]
        # Newton step towards the ridge centre, only where the field is concave across.
        to_ridge = np.where(
            curvature_across < 0, -slope_across / np.minimum(curvature_across, -1e-12), 0.0
        )
        to_ridge = ridge_weight * np.clip(0.2 * to_ridge, -_TRACE_STEP, _TRACE_STEP)
        positions[step] = (
            positions[step - 1] + _TRACE_STEP * direction + to_ridge[:, np.newaxis] * across
        )
    return [positions[: n_steps[walker] + 1, walker] for walker in range(n_walkers)]


def _crest_along(spine: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Crest values: smooth lognormal variation along the spine, tapered ends."""
    fraction = np.linspace(0.0, 1.0, len(spine))
    wiggle = sum(
        rng.normal(0.0, 0.25) * np.sin(2 * np.pi * fraction * cycles + rng.uniform(0, 2 * np.pi))
        for cycles in (0.7, 1.6, 3.3)
    )
    ends = np.clip(np.minimum(fraction, 1.0 - fraction) / 0.12, 0.0, 1.0)
    return amplitude * np.exp(wiggle) * np.sin(0.5 * np.pi * ends) ** 2


def filament_network(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    n_ridge: int,
    n_crossing: int,
    n_branch: int,
    widths: tuple[float, ...],
    amplitude_range: tuple[float, float],
    guide: np.ndarray | None = None,
    plummer_index_range: tuple[float, float] = (2.0, 3.0),
) -> list[Filament]:
    """
    Draw a network of filaments on ridges, crossing, and branching.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the grid the spines live on.
    rng : `numpy.random.Generator`
    n_ridge, n_crossing, n_branch : int
        Numbers of filaments that follow ridges of ``guide``, that run as
        gently curving lines, and that branch off the others.
    widths : tuple of float
        The FWHMs (pixels) the filaments draw from (one FFT per width when
        rendering, so keep it short).
    amplitude_range : tuple of float
        Range of the typical crest value, drawn log-uniformly.
    guide : ndarray, optional
        Field whose ridges the ridge filaments follow (same shape). Required
        when ``n_ridge > 0``.
    plummer_index_range : tuple of float, optional
        Range of the Plummer index ``p`` (one per width).

    Returns
    -------
    list of `Filament`

    Raises
    ------
    ValueError
        If ridge filaments lack a guide field of the grid's shape, branches
        have nothing to grow from, or ``widths`` is empty.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.filaments import filament_network
    >>> network = filament_network((128, 128), np.random.default_rng(0), n_ridge=0,
    ...                            n_crossing=3, n_branch=1, widths=(4.0,),
    ...                            amplitude_range=(1.0, 2.0))
    >>> [filament.kind for filament in network]
    ['crossing', 'crossing', 'crossing', 'branch']
    """
    if n_ridge > 0 and guide is None:
        raise ValueError("ridge filaments need a guide field: pass guide=<2-D array>.")
    if guide is not None and np.shape(guide) != tuple(shape):
        raise ValueError(f"guide has shape {np.shape(guide)}, expected {tuple(shape)}.")
    if n_branch > 0 and n_ridge + n_crossing == 0:
        raise ValueError("branches grow from other filaments: give n_ridge or n_crossing > 0.")
    if not widths:
        raise ValueError("widths must list at least one filament FWHM in pixels.")
    size = float(max(shape))
    ny, nx = shape
    width_indices = {width: rng.uniform(*plummer_index_range) for width in widths}
    block = max(1, int(round(min(shape) / 128)))

    n_walkers = n_ridge + n_crossing
    spines: list[np.ndarray] = []
    kinds = ["ridge"] * n_ridge + ["crossing"] * n_crossing
    if n_walkers:
        start = np.empty((n_walkers, 2))
        start[:, 0] = rng.uniform(0.1 * nx, 0.9 * nx, n_walkers)
        start[:, 1] = rng.uniform(0.1 * ny, 0.9 * ny, n_walkers)
        if n_ridge:
            # Ridge filaments start on the brightest parts of the guide.
            bright = np.flatnonzero(guide.ravel() > np.quantile(guide, 0.85))
            chosen = rng.choice(bright, n_ridge)
            start[:n_ridge, 0] = chosen % nx
            start[:n_ridge, 1] = chosen // nx
        geometry = _ridge_geometry(guide, block) if guide is not None else np.zeros((5, 2, 2))
        lengths = np.where(
            np.arange(n_walkers) < n_ridge,
            rng.uniform(0.15, 0.5, n_walkers) * size,
            rng.uniform(0.3, 0.9, n_walkers) * size,
        )
        spines = _trace_spines(
            start,
            rng.uniform(0.0, 2 * np.pi, n_walkers),
            np.maximum((lengths / _TRACE_STEP).astype(int), 2),
            (np.arange(n_walkers) < n_ridge).astype(float),
            geometry,
            block if guide is not None else 1,
            rng,
        )
    if n_branch:
        parents = rng.integers(0, len(spines), n_branch)
        start = np.array([spines[p][rng.integers(0, len(spines[p]))] for p in parents])
        parent_angles = np.array(
            [np.arctan2(*(spines[p][-1] - spines[p][0])[::-1]) for p in parents]
        )
        angle = parent_angles + rng.choice([-1.0, 1.0], n_branch) * rng.uniform(0.8, 1.6, n_branch)
        lengths = rng.uniform(0.08, 0.3, n_branch) * size
        spines += _trace_spines(
            start,
            angle,
            np.maximum((lengths / _TRACE_STEP).astype(int), 2),
            np.zeros(n_branch),
            np.zeros((5, 2, 2)),
            1,
            rng,
        )
        kinds += ["branch"] * n_branch

    network = []
    for spine, kind in zip(spines, kinds, strict=True):
        width = widths[rng.integers(0, len(widths))]
        amplitude = float(np.exp(rng.uniform(*np.log(amplitude_range))))
        network.append(
            Filament(
                spine=spine,
                crest=_crest_along(spine, amplitude, rng),
                fwhm=float(width),
                plummer_index=float(width_indices[width]),
                kind=kind,
            )
        )
    return network


def _line_samples(
    spine: np.ndarray, crest: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices and weights that deposit the spine as a line density, bilinearly."""
    segment = np.hypot(*np.diff(spine, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(segment)])
    n_points = max(int(arc[-1] / _DEPOSIT_STEP), 1)
    samples = (np.arange(n_points) + 0.5) * (arc[-1] / n_points)
    x = np.interp(samples, arc, spine[:, 0])
    y = np.interp(samples, arc, spine[:, 1])
    # Crest per unit length times the length each sample stands for.
    weight = np.interp(samples, arc, crest) * (arc[-1] / n_points)
    ny, nx = shape
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    indices, weights = [], []
    for dx, dy, share in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        col, row = x0 + dx, y0 + dy
        inside = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
        indices.append(row[inside] * nx + col[inside])
        weights.append((weight * share)[inside])
    return np.concatenate(indices), np.concatenate(weights)


def render_filaments(
    shape: tuple[int, int], filaments: list[Filament], *, transfer: np.ndarray | None = None
) -> np.ndarray:
    """
    Image of a filament network, optionally convolved with a beam.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the image (spines in its pixel coordinates).
    filaments : list of `Filament`
    transfer : ndarray, optional
        Extra Fourier-space transfer function applied to the whole network,
        e.g. `~nemesis_bkg.simulate.fields.gaussian_beam_transfer`. The
        rendering is periodic: pad the grid if that matters.

    Returns
    -------
    ndarray
        Float64 image; zeros when ``filaments`` is empty.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.filaments import Filament, render_filaments
    >>> spine = np.array([[32.0, 0.0], [32.0, 63.0]])
    >>> straight = Filament(spine, np.array([5.0, 5.0]), fwhm=4.0, plummer_index=2.5,
    ...                     kind="crossing")
    >>> image = render_filaments((64, 64), [straight])
    >>> round(float(image[32, 32]), 1)
    5.0
    """
    if not filaments:
        return np.zeros(shape)
    spectrum = np.zeros((shape[0], shape[1] // 2 + 1), dtype=complex)
    profiles = sorted({(f.fwhm, f.plummer_index) for f in filaments})
    for fwhm, plummer_index in profiles:
        samples = [
            _line_samples(filament.spine, filament.crest, shape)
            for filament in filaments
            if (filament.fwhm, filament.plummer_index) == (fwhm, plummer_index)
        ]
        lines = np.bincount(
            np.concatenate([indices for indices, _ in samples]),
            weights=np.concatenate([weights for _, weights in samples]),
            minlength=shape[0] * shape[1],
        ).reshape(shape)
        spectrum += scipy.fft.rfft2(lines) * plummer_kernel_transfer(
            shape, fwhm=fwhm, plummer_index=plummer_index
        )
    if transfer is not None:
        spectrum *= transfer
    return scipy.fft.irfft2(spectrum, s=shape)


def filament_mask(
    filaments: np.ndarray, cloud: np.ndarray, *, threshold: float, width: float
) -> np.ndarray:
    """
    Truth mask of filament pixels: where a filament is bright and dominant.

    A pixel is a filament pixel when all of these hold:

    - the filament component exceeds ``threshold`` (e.g. 3 noise sigmas);
    - it is within the half maximum of the nearest crest: at least half the
      largest filament value within ``width`` pixels (the core, not the wings);
    - it exceeds the rise of the rest of the background (``cloud``) above
      its minimum within ``2 * width`` pixels: the filament dominates the
      local cloud.

    Parameters
    ----------
    filaments : ndarray
        The filament component (beam-convolved).
    cloud : ndarray
        Everything else in the background.
    threshold : float
        Least filament value, map units.
    width : float
        Largest observed (beam-convolved) filament FWHM, pixels.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.filaments import filament_mask
    >>> ridge = np.exp(-0.5 * (np.arange(32) - 16.0) ** 2 / 4.0)[np.newaxis, :] * np.ones((8, 1))
    >>> mask = filament_mask(10 * ridge, np.zeros((8, 32)), threshold=3.0, width=5.0)
    >>> np.flatnonzero(mask[0]).tolist()
    [14, 15, 16, 17, 18]
    """
    window = 2 * int(np.ceil(width)) + 1
    core = filaments >= 0.5 * ndimage.maximum_filter(filaments, size=window, mode="nearest")
    cloud_rise = cloud - ndimage.minimum_filter(cloud, size=2 * window - 1, mode="nearest")
    return (filaments > threshold) & core & (filaments > cloud_rise)
