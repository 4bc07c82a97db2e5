"""
Detection of compact sources and their measurement on small cutouts.

Detection map
    The Laplacian of the map smoothed with the beam (``-(H_xx + H_yy)`` of
    the Hessian at the beam's sigma). It ignores constant levels and
    gradients, so a faint source on the flank of a bright cloud is a peak
    of it, and it rejects smooth structure better than the plain matched
    filter: on `nemesis_bkg.simulate` filamentary and confusion clouds the
    background's response is a third of that of the beam-matched filter
    minus a 4-beam smooth, for the same response to a source.

Significance
    Detection map over its local fluctuation: the larger of the
    instrumental noise propagated through the filter and the robust
    local scatter of the filtered map itself (see `nemesis_bkg.masking.noise`).
    Where the background is structured at the beam scale the threshold
    rises with it: a source is masked when it stands out above the
    noise *and* the local background structure, as with photutils'
    ``detect_threshold`` on a local background RMS.

Segmentation
    photutils `~photutils.segmentation.detect_sources` on the significance
    map. Every local maximum inside a segment is a candidate;
    `~photutils.segmentation.deblend_sources` then splits the segments that
    hold more than one compact source (deblending every segment costs
    seconds on a 4-megapixel map and achieves nothing for single sources).

Measurement (vectorised over all candidates, on cutouts)
    At each candidate's sub-pixel peak: the beam amplitude from a
    least-squares fit of the beam plus a quadratic background over the
    covered pixels (a faint source on a filament or on the flank of a clump
    is measured above that local structure), and the two principal
    curvatures at the beam scale and a larger one (the size test).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from photutils.segmentation import SegmentationImage, deblend_sources, detect_sources
from photutils.utils.exceptions import NoDetectionsWarning
from scipy import ndimage
from scipy.special import erf

__all__ = [
    "FWHM_TO_SIGMA",
    "CandidateMeasurements",
    "deblend_labels",
    "filter_noise_gains",
    "find_peaks_in_segments",
    "hessian",
    "measure_at",
    "minor_curvature",
    "refine_peaks",
    "segment_significance",
    "size_ratio_of",
]

FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))


def hessian(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Second derivatives of ``image`` smoothed with a Gaussian of ``sigma``.

    Parameters
    ----------
    image : ndarray
        Finite 2-D map.
    sigma : float
        Smoothing sigma in pixels.

    Returns
    -------
    h_xx, h_yy, h_xy : ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking.detection import hessian
    >>> y, x = np.mgrid[:33, :33]
    >>> h_xx, h_yy, h_xy = hessian(0.5 * (x - 16.0) ** 2, 2.0)
    >>> round(float(h_xx[16, 16]), 2), abs(round(float(h_yy[16, 16]), 2))
    (1.0, 0.0)
    """
    h_xx = ndimage.gaussian_filter(image, sigma, order=(0, 2), mode="nearest")
    h_yy = ndimage.gaussian_filter(image, sigma, order=(2, 0), mode="nearest")
    h_xy = ndimage.gaussian_filter(image, sigma, order=(1, 1), mode="nearest")
    return h_xx, h_yy, h_xy


def _principal_curvatures(h_xx, h_yy, h_xy):
    """Minus the two Hessian eigenvalues, (across, along) the flattest direction."""
    mean = 0.5 * (h_xx + h_yy)
    spread = np.sqrt((0.5 * (h_xx - h_yy)) ** 2 + h_xy**2)
    # Both eigenvalues are negative at a peak; the one closer to zero is mean + spread.
    return -(mean - spread), -(mean + spread)


def minor_curvature(
    h_xx: float | np.ndarray, h_yy: float | np.ndarray, h_xy: float | np.ndarray
) -> float | np.ndarray:
    """
    Curvature along the direction of least curvature, positive for a peak.

    Parameters
    ----------
    h_xx, h_yy, h_xy : float or ndarray
        Second derivatives.

    Returns
    -------
    float or ndarray
        Minus the Hessian eigenvalue closest to zero at a peak (the larger
        one): positive only where the map curves down in every direction.

    Examples
    --------
    >>> from nemesis_bkg.masking.detection import minor_curvature
    >>> float(minor_curvature(-2.0, -0.5, 0.0)), float(minor_curvature(-2.0, 0.5, 0.0))
    (0.5, -0.5)
    """
    return _principal_curvatures(h_xx, h_yy, h_xy)[1]


def filter_noise_gains(sigma: float) -> tuple[float, float]:
    """
    White-noise standard deviations of the curvature filters per unit pixel noise.

    Computed from the filters' own discrete impulse responses, so they are
    exact for the sampled kernels of `hessian`.

    Parameters
    ----------
    sigma : float
        Beam sigma in pixels.

    Returns
    -------
    laplacian_gain, second_derivative_gain : float
        For ``-(H_xx + H_yy)`` and for one second derivative ``H_xx``.

    Examples
    --------
    >>> from nemesis_bkg.masking.detection import filter_noise_gains
    >>> laplacian_gain, second_gain = filter_noise_gains(2.0)
    >>> round(laplacian_gain * 2.0**3, 2), round(second_gain * 2.0**3, 2)
    (0.4, 0.24)
    """
    half = int(np.ceil(6 * sigma)) + 2
    impulse = np.zeros((2 * half + 1, 2 * half + 1))
    impulse[half, half] = 1.0
    h_xx, h_yy, _ = hessian(impulse, sigma)
    return float(np.sqrt(np.sum((h_xx + h_yy) ** 2))), float(np.sqrt(np.sum(h_xx**2)))


def segment_significance(
    significance: np.ndarray,
    valid: np.ndarray,
    *,
    threshold: float,
    n_pixels: int,
    footprint_size: int = 3,
) -> tuple[SegmentationImage | None, np.ndarray, np.ndarray]:
    """
    Segment a significance map with photutils and list its peaks.

    Parameters
    ----------
    significance : ndarray
        Detection map divided by its local fluctuation; finite.
    valid : ndarray of bool
        Pixels that may belong to a source.
    threshold : float
        Detection threshold in units of the local fluctuation.
    n_pixels : int
        Minimum number of connected pixels above the threshold.
    footprint_size : int, optional
        Side of the square window a peak must dominate (odd).

    Returns
    -------
    segmentation : `~photutils.segmentation.SegmentationImage` or None
        None when nothing is above the threshold.
    y, x : ndarray of int
        Pixel indices of the peaks, most significant first.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking.detection import segment_significance
    >>> image = np.zeros((9, 9)); image[2:5, 2:5] = 6.0; image[3, 3] = 9.0
    >>> segmentation, y, x = segment_significance(image, image == image, threshold=5,
    ...                                           n_pixels=2)
    >>> segmentation.n_labels, y.tolist(), x.tolist()
    (1, [3], [3])
    """
    with warnings.catch_warnings():
        # An empty map is an expected outcome here, not a problem to warn about.
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segmentation = detect_sources(significance, threshold, n_pixels=n_pixels, mask=~valid)
    if segmentation is None:
        empty = np.zeros(0, dtype=np.intp)
        return None, empty, empty
    y, x = find_peaks_in_segments(significance, segmentation, footprint_size=footprint_size)
    return segmentation, y, x


def deblend_labels(
    significance: np.ndarray,
    segmentation: SegmentationImage,
    peak_labels: np.ndarray,
    *,
    n_pixels: int,
) -> SegmentationImage:
    """
    Deblend (photutils) only the segments that hold more than one source peak.

    Deblending every segment costs seconds on a 4-megapixel map of a
    bright cloud; segments with a single source gain nothing from it.

    Parameters
    ----------
    significance : ndarray
        The map the segments were found on.
    segmentation : `~photutils.segmentation.SegmentationImage`
    peak_labels : ndarray of int
        Segment label of each source peak.
    n_pixels : int
        Minimum number of connected pixels of a deblended segment.

    Returns
    -------
    `~photutils.segmentation.SegmentationImage`
        The input itself when nothing needs deblending.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking.detection import deblend_labels, segment_significance
    >>> yy, xx = np.mgrid[:48, :48]
    >>> image = sum(10 * np.exp(-((xx - x0) ** 2 + (yy - 24.0) ** 2) / (2 * 1.5**2))
    ...             for x0 in (20.0, 26.0))
    >>> segmentation, y, x = segment_significance(image, image == image, threshold=1.0,
    ...                                           n_pixels=5)
    >>> segmentation.n_labels, deblend_labels(image, segmentation,
    ...                                       segmentation.data[y, x], n_pixels=5).n_labels
    (1, 2)
    """
    labels, n_peaks = np.unique(peak_labels, return_counts=True)
    blended = labels[(n_peaks > 1) & (labels > 0)]
    if not blended.size:
        return segmentation
    return deblend_sources(significance, segmentation, n_pixels=n_pixels, labels=blended,
                           progress_bar=False)


def find_peaks_in_segments(
    significance: np.ndarray,
    segmentation: SegmentationImage,
    *,
    footprint_size: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """
    Local maxima of the significance map inside the segments.

    Parameters
    ----------
    significance : ndarray
        Significance map (NaN allowed).
    segmentation : `~photutils.segmentation.SegmentationImage`
        The segments; pixels with label 0 are ignored.
    footprint_size : int, optional
        Side of the square window a peak must dominate (odd).

    Returns
    -------
    y, x : ndarray of int
        Pixel indices of the peaks, most significant first.

    Examples
    --------
    >>> import numpy as np
    >>> from photutils.segmentation import SegmentationImage
    >>> from nemesis_bkg.masking.detection import find_peaks_in_segments
    >>> image = np.zeros((5, 7)); image[2, 1] = 3.0; image[2, 5] = 4.0
    >>> find_peaks_in_segments(image, SegmentationImage((image > 0).astype(int)))
    (array([2, 2]), array([5, 1]))
    """
    half = footprint_size // 2
    values = np.pad(
        np.where(np.isfinite(significance), significance, -np.inf), half, constant_values=-np.inf
    )
    # Only segment pixels can be peaks: compare them with their neighbours directly.
    y, x = np.nonzero(segmentation.data)
    centre = values[y + half, x + half]
    is_peak = np.ones(y.size, dtype=bool)
    for shift_y in range(-half, half + 1):
        for shift_x in range(-half, half + 1):
            if shift_y or shift_x:
                is_peak &= centre >= values[y + half + shift_y, x + half + shift_x]
    y, x = y[is_peak], x[is_peak]
    order = np.argsort(centre[is_peak], kind="stable")[::-1]
    return y[order], x[order]


def refine_peaks(
    image: np.ndarray, y: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """
    Sub-pixel peak positions from a parabola through the 3x3 neighbourhood.

    Along an axis where the peak is on the map's first or last pixel there
    is no neighbour beyond it, so no parabola: the position stays on the
    pixel centre along that axis (the shift is at most half a pixel).

    Parameters
    ----------
    image : ndarray
        Smooth map, finite.
    y, x : ndarray of int
        Integer peak positions (0-based pixel indices).

    Returns
    -------
    y, x : ndarray of float
        Positions in pixel coordinates (pixel centres at integers).

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking.detection import refine_peaks
    >>> x = np.arange(9.0)
    >>> image = -((x[None, :] - 4.3) ** 2) - (x[:, None] - 3.8) ** 2
    >>> [round(float(v[0]), 2) for v in refine_peaks(image, np.array([4]), np.array([4]))]
    [3.8, 4.3]
    >>> [float(v[0]) for v in refine_peaks(image, np.array([0]), np.array([8]))]
    [0.0, 8.0]
    """
    padded = np.pad(image, 1, mode="edge")
    py, px = y + 1, x + 1
    centre = padded[py, px]
    shifts = []
    for position, size, (before, after) in (
        (y, image.shape[0], (padded[py - 1, px], padded[py + 1, px])),
        (x, image.shape[1], (padded[py, px - 1], padded[py, px + 1])),
    ):
        curvature = before - 2 * centre + after
        # A replicated edge pixel would put every edge peak exactly on the map's border.
        inside = (position > 0) & (position < size - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(inside & (curvature < 0), 0.5 * (before - after) / curvature, 0.0)
        shifts.append(np.clip(np.nan_to_num(shift), -0.5, 0.5))
    return y + shifts[0], x + shifts[1]


def _pixel_integrals(offsets: np.ndarray, sigma: float) -> tuple[np.ndarray, ...]:
    """
    Pixel-integrated 1-D Gaussian and its first two derivatives.

    ``offsets`` are pixel-centre positions relative to the Gaussian centre.
    Returns the integral over each pixel of G, G' and G'' (G a unit-area
    Gaussian of ``sigma``), so that sums against pixel values give the
    smoothed map and its derivatives at the centre.
    """
    upper, lower = (offsets + 0.5) / sigma, (offsets - 0.5) / sigma
    density_upper = np.exp(-0.5 * upper**2) / (np.sqrt(2 * np.pi) * sigma)
    density_lower = np.exp(-0.5 * lower**2) / (np.sqrt(2 * np.pi) * sigma)
    value = 0.5 * (erf(upper / np.sqrt(2)) - erf(lower / np.sqrt(2)))
    first = density_upper - density_lower
    second = (-upper * density_upper + lower * density_lower) / sigma
    return value, first, second


def _cutouts(image: np.ndarray, y: np.ndarray, x: np.ndarray, half: int) -> np.ndarray:
    """Stack of (2*half+1)**2 cutouts centred on integer pixels (edges extended)."""
    padded = np.pad(image, half, mode="edge")
    offsets = np.arange(-half, half + 1)
    rows = (y + half)[:, None, None] + offsets[None, :, None]
    cols = (x + half)[:, None, None] + offsets[None, None, :]
    return padded[rows, cols]


def _scale_curvatures(cutouts, dy, dx, offsets, scale):
    """Both principal curvatures (sign flipped) at the cutout centres, smoothed at ``scale``."""
    value_y, first_y, second_y = _pixel_integrals(offsets[None, :] - dy[:, None], scale)
    value_x, first_x, second_x = _pixel_integrals(offsets[None, :] - dx[:, None], scale)
    h_xx = np.einsum("ny,nyx,nx->n", value_y, cutouts, second_x)
    h_yy = np.einsum("ny,nyx,nx->n", second_y, cutouts, value_x)
    h_xy = np.einsum("ny,nyx,nx->n", first_y, cutouts, first_x)
    return _principal_curvatures(h_xx, h_yy, h_xy)


@dataclass
class CandidateMeasurements:
    """
    Measurements at candidate positions (one entry per candidate).

    Attributes
    ----------
    amplitude : ndarray
        Peak amplitude of the beam above a local quadratic background.
    size_ratio : ndarray
        Scale-normalised curvature along the flattest direction at the
        larger scale over that at the beam scale. For a Gaussian blob of
        sigma ``b`` smoothed at scale ``f`` the scale-normalised curvature
        ``f**2 b**2 / (b**2 + f**2)**2`` peaks at ``f = b``, so the ratio is
        below 1 exactly when the blob's FWHM along that direction is below
        ``max_size_ratio`` beams (`size_ratio_of`). Negative where the map
        does not curve down at the larger scale (nothing that large there),
        ``inf`` where it does not at the beam scale.
    width_ratio : ndarray
        The same across the most curved direction: the blob's width.
    """

    amplitude: np.ndarray
    size_ratio: np.ndarray
    width_ratio: np.ndarray


def _beam_amplitude(cutouts, valid, dy, dx, offsets, sigma_beam, fit_radius):
    """Least-squares beam amplitude with a quadratic background, per cutout."""
    # Point-sampled unit-peak beam: "peak" means the Gaussian's amplitude.
    beam_y = np.exp(-0.5 * ((offsets[None, :] - dy[:, None]) / sigma_beam) ** 2)
    beam_x = np.exp(-0.5 * ((offsets[None, :] - dx[:, None]) / sigma_beam) ** 2)
    beam = beam_y[:, :, None] * beam_x[:, None, :]
    along_y, along_x = np.meshgrid(offsets, offsets, indexing="ij")
    disk = np.hypot(along_x, along_y) <= fit_radius
    # Scaled coordinates keep the normal equations well conditioned.
    scaled_x, scaled_y = (along_x[disk] / max(fit_radius, 1.0),
                          along_y[disk] / max(fit_radius, 1.0))
    quadratic = np.stack([np.ones_like(scaled_x), scaled_x, scaled_y, scaled_x**2,
                          scaled_x * scaled_y, scaled_y**2], axis=-1)
    design = np.concatenate(
        [beam[:, disk][:, :, None],
         np.broadcast_to(quadratic, (len(cutouts),) + quadratic.shape)],
        axis=-1,
    )
    weights = valid[:, disk].astype(float)
    values = cutouts[:, disk]
    normal = np.einsum("npi,np,npj->nij", design, weights, design)
    rhs = np.einsum("npi,np,np->ni", design, weights, values)
    # A tiny ridge keeps fits with few or no covered pixels (map edges) solvable.
    ridge = 1e-9 * np.trace(normal, axis1=1, axis2=2) + 1e-12
    normal += ridge[:, None, None] * np.eye(normal.shape[1])
    return np.linalg.solve(normal, rhs[..., None])[:, 0, 0]


def measure_at(
    residual: np.ndarray,
    valid: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    *,
    sigma_beam: float,
    max_size_ratio: float,
) -> CandidateMeasurements:
    """
    Measure amplitude and size at sub-pixel positions, on cutouts.

    Parameters
    ----------
    residual : ndarray
        Map minus its local background, finite everywhere (pixels without
        coverage filled, e.g. with their nearest covered neighbour).
    valid : ndarray of bool
        Pixels with a measurement: only they enter the amplitude fit.
    y, x : ndarray of float
        Positions (0-based pixel coordinates) inside the map.
    sigma_beam : float
        Beam sigma in pixels.
    max_size_ratio : float
        Largest FWHM, in beams, of a source still called compact.

    Returns
    -------
    `CandidateMeasurements`

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking.detection import measure_at
    >>> y, x = np.mgrid[:64, :64]
    >>> image = 7.0 * np.exp(-((x - 30.3) ** 2 + (y - 31.6) ** 2) / (2 * 1.5**2)) + 0.01 * x
    >>> found = measure_at(image, np.ones(image.shape, bool), np.array([31.6]),
    ...                    np.array([30.3]), sigma_beam=1.5, max_size_ratio=1.5)
    >>> round(float(found.amplitude[0]), 1), bool(found.size_ratio[0] < 1)
    (7.0, True)
    """
    y = np.atleast_1d(np.asarray(y, dtype=float))
    x = np.atleast_1d(np.asarray(x, dtype=float))
    large_scale = max_size_ratio**2 * sigma_beam
    iy = np.clip(np.round(y).astype(np.intp), 0, residual.shape[0] - 1)
    ix = np.clip(np.round(x).astype(np.intp), 0, residual.shape[1] - 1)
    dy, dx = y - iy, x - ix
    half = int(np.ceil(4.0 * large_scale)) + 1
    offsets = np.arange(-half, half + 1, dtype=float)
    cutouts = _cutouts(residual, iy, ix, half)
    # Pixels beyond the map edge count as invalid in the fit.
    valid_cutouts = _cutouts(np.pad(valid, 1), iy + 1, ix + 1, half)

    # Out to 1.5 FWHM: enough wing to tell the beam from the quadratic background.
    fit_radius = 1.5 * sigma_beam / FWHM_TO_SIGMA
    amplitude = _beam_amplitude(cutouts, valid_cutouts, dy, dx, offsets, sigma_beam, fit_radius)
    major_small, minor_small = _scale_curvatures(cutouts, dy, dx, offsets, sigma_beam)
    major_large, minor_large = _scale_curvatures(cutouts, dy, dx, offsets, large_scale)
    scale2 = (large_scale / sigma_beam) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        size_ratio = np.where(minor_small > 0, scale2 * minor_large / minor_small, np.inf)
        width_ratio = np.where(major_small > 0, scale2 * major_large / major_small, np.inf)
    return CandidateMeasurements(amplitude=amplitude, size_ratio=size_ratio,
                                 width_ratio=width_ratio)


def size_ratio_of(fwhm_beams: float, max_size_ratio: float) -> float:
    """
    `CandidateMeasurements.size_ratio` of a Gaussian blob of the given FWHM (in beams).

    Parameters
    ----------
    fwhm_beams : float
        FWHM of the blob as seen (beam included), in beams.
    max_size_ratio : float
        The size limit the measurement was made for.

    Returns
    -------
    float

    Examples
    --------
    >>> from nemesis_bkg.masking.detection import size_ratio_of
    >>> round(size_ratio_of(1.3, 1.3), 6), round(size_ratio_of(1.0, 1.3), 3)
    (1.0, 0.768)
    """
    scale2 = max_size_ratio**4
    width2 = fwhm_beams**2
    return scale2 * ((width2 + 1) / (width2 + scale2)) ** 2
