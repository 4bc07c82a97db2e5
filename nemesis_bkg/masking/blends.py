"""
Sources close to other sources: blends and hidden companions.

Blends
    Two sources about a beam apart look like one blob elongated along the
    pair: when it is beam-like across and no longer than `MAX_BLEND_LENGTH`
    beams it passes the size test (`is_compact`). Candidates that fail the
    test next to another candidate are measured again with their
    neighbours' beams subtracted (amplitudes fitted jointly), and kept when
    compact on their own.

Companions
    In the beam-scale Laplacian a bright source is ringed by a negative
    moat from about 0.85 beam FWHM outwards; a fainter companion 1 to 2.5
    FWHM away sits on the moat's slope and is often no local maximum of the
    first pass. Its flux would then spill out of the bright source's hole.
    So the beams fitted in the first pass are subtracted and the Laplacian
    is recomputed on a window around each detected source (never on the
    whole map). Peaks found there are measured on the source-subtracted map
    and kept when compact, exactly as in the first pass, and when brighter
    than what subtracting their neighbour may have left there
    (`companion_floor`): `MIN_CONTRAST` times the residual of
    a fitted Gaussian's small errors in amplitude, centre and width, which
    falls with distance as the beam does, plus `BEAM_EXCESS_FACTOR` times
    what the beam puts above a Gaussian there (its sidelobes, when its
    image is given). Without a beam image the beam is taken as Gaussian,
    as in the hole rule: the sidelobes of a bright source seen through a
    real beam may then come out as companions (they get holes, merged with
    the source's). Peaks that pass the detection threshold only without
    the allowance for their neighbour's fitting error (`AMPLITUDE_ERROR`:
    the moat an over-subtracted source leaves in the Laplacian lifts noise
    peaks around it) are kept as *tentative*: masked, since a companion
    left out spills its flux, but flagged as possibly no source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve
from scipy.spatial import cKDTree

from .detection import (
    CandidateMeasurements,
    hessian,
    measure_at,
    minor_curvature,
    refine_peaks,
    size_ratio_of,
)

__all__ = [
    "AMPLITUDE_ERROR",
    "BEAM_EXCESS_FACTOR",
    "MAX_BLEND_LENGTH",
    "MIN_CONTRAST",
    "Companions",
    "companion_floor",
    "find_companions",
    "is_compact",
    "joint_amplitudes",
    "remeasure_blended",
    "subtract_beams",
]

#: Least amplitude of a companion relative to the source it was found next to,
#: where that source's beam is at its peak (see `companion_floor`).
MIN_CONTRAST = 0.1

#: A companion must outshine the beam's own excess over a Gaussian (sidelobes)
#: at its distance by this factor.
BEAM_EXCESS_FACTOR = 2.0

#: Fractional error of a first-pass amplitude allowed for in the companions'
#: detection: isolated Gaussian sources of SNR 30 to 3000 come out up to 6 %
#: off (sub-pixel position, local background).
AMPLITUDE_ERROR = 0.05

#: Longest blob (FWHM along its flattest direction, in beams) still taken for an
#: unresolved pair when it is beam-like across.
MAX_BLEND_LENGTH = 2.5


def subtract_beams(
    residual: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    amplitude: np.ndarray,
    sigma_beam: float,
) -> np.ndarray:
    """
    A copy of ``residual`` with Gaussian beams of the given amplitudes removed.

    Parameters
    ----------
    residual : ndarray
    y, x : ndarray
        Beam centres (pixels).
    amplitude : ndarray
        Peak amplitudes.
    sigma_beam : float
        Beam sigma in pixels.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking.blends import subtract_beams
    >>> yy, xx = np.mgrid[:21, :21]
    >>> image = 5.0 * np.exp(-((xx - 10.2) ** 2 + (yy - 9.7) ** 2) / (2 * 1.5**2))
    >>> left = subtract_beams(image, np.array([9.7]), np.array([10.2]), np.array([5.0]), 1.5)
    >>> bool(np.abs(left).max() < 1e-4)
    True
    """
    result = residual.copy()
    half = int(np.ceil(5 * sigma_beam))
    for centre_y, centre_x, peak in zip(y, x, amplitude, strict=True):
        y0, x0 = max(int(centre_y) - half, 0), max(int(centre_x) - half, 0)
        rows = np.arange(y0, min(int(centre_y) + half + 1, result.shape[0]))
        cols = np.arange(x0, min(int(centre_x) + half + 1, result.shape[1]))
        result[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] -= peak * np.outer(
            np.exp(-0.5 * ((rows - centre_y) / sigma_beam) ** 2),
            np.exp(-0.5 * ((cols - centre_x) / sigma_beam) ** 2),
        )
    return result


def joint_amplitudes(
    y: np.ndarray, x: np.ndarray, amplitude: np.ndarray, sigma_beam: float
) -> np.ndarray:
    """
    Amplitudes of overlapping beams, corrected for each other's light.

    Each single-source amplitude is a beam-weighted average that also
    picks up the neighbours' beams, by ``exp(-d**2 / (4 sigma**2))`` times
    their amplitude at distance ``d``; this solves that (sparse) system.

    Parameters
    ----------
    y, x : ndarray
        Positions (pixels).
    amplitude : ndarray
        Single-source amplitudes.
    sigma_beam : float
        Beam sigma in pixels.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking.blends import joint_amplitudes
    >>> overlap = np.exp(-9.0 / 4.0)
    >>> joint_amplitudes(np.zeros(2), np.array([0.0, 3.0]), np.full(2, 1 + overlap),
    ...                  1.0).round(6)
    array([1., 1.])
    """
    amplitude = np.asarray(amplitude, dtype=float)
    if amplitude.size < 2:
        return amplitude.copy()
    points = np.column_stack([x, y])
    pairs = cKDTree(points).query_pairs(6.0 * sigma_beam, output_type="ndarray")
    if not pairs.size:
        return amplitude.copy()
    distance2 = np.sum((points[pairs[:, 0]] - points[pairs[:, 1]]) ** 2, axis=1)
    weight = np.exp(-distance2 / (4.0 * sigma_beam**2))
    n = amplitude.size
    overlaps = sparse.coo_matrix(
        (np.concatenate([np.ones(n), weight, weight]),
         (np.concatenate([np.arange(n), pairs[:, 0], pairs[:, 1]]),
          np.concatenate([np.arange(n), pairs[:, 1], pairs[:, 0]]))),
        shape=(n, n),
    ).tocsc()
    return spsolve(overlaps, amplitude)


def remeasure_blended(
    residual: np.ndarray,
    valid: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    amplitude: np.ndarray,
    which: np.ndarray,
    *,
    sigma_beam: float,
    max_size_ratio: float,
    reach: float,
) -> CandidateMeasurements:
    """
    Measure candidates again with their neighbours' beams subtracted.

    Parameters
    ----------
    residual : ndarray
        Background-subtracted map, finite.
    valid : ndarray of bool
    y, x : ndarray
        Positions of all candidates.
    amplitude : ndarray
        Their joint amplitudes (`joint_amplitudes`).
    which : ndarray of int
        Indices of the candidates to measure again.
    sigma_beam : float
        Beam sigma in pixels.
    max_size_ratio : float
        As for `~nemesis_bkg.masking.detection.measure_at`.
    reach : float
        Neighbours within this distance (pixels) are subtracted.

    Returns
    -------
    `~nemesis_bkg.masking.detection.CandidateMeasurements`
        For the candidates ``which``, in that order.

    Examples
    --------
    Two beams (peaks 10 and 6) four pixels apart, each measured first with
    the other's light in its fit, then with it subtracted:

    >>> import numpy as np
    >>> from nemesis_bkg.masking.blends import joint_amplitudes, remeasure_blended
    >>> from nemesis_bkg.masking.detection import measure_at
    >>> yy, xx = np.mgrid[:48, :48]
    >>> image = sum(peak * np.exp(-((xx - x0) ** 2 + (yy - 24.0) ** 2) / (2 * 1.5**2))
    ...             for x0, peak in ((20.0, 10.0), (24.0, 6.0)))
    >>> y, x, valid = np.array([24.0, 24.0]), np.array([20.0, 24.0]), image == image
    >>> single = measure_at(image, valid, y, x, sigma_beam=1.5, max_size_ratio=1.3)
    >>> again = remeasure_blended(image, valid, y, x,
    ...                           joint_amplitudes(y, x, single.amplitude, 1.5),
    ...                           np.array([0, 1]), sigma_beam=1.5, max_size_ratio=1.3,
    ...                           reach=7.0)
    >>> single.amplitude.round(1), again.amplitude.round(1)
    (array([8.9, 4.1]), array([9.4, 5.7]))
    """
    tree = cKDTree(np.column_stack([x, y]))
    half = int(np.ceil(4.0 * max_size_ratio**2 * sigma_beam + reach)) + 2
    amplitudes, size_ratios, width_ratios = [], [], []
    for index in which:
        centre_y, centre_x = int(round(y[index])), int(round(x[index]))
        box = (slice(max(centre_y - half, 0), min(centre_y + half + 1, residual.shape[0])),
               slice(max(centre_x - half, 0), min(centre_x + half + 1, residual.shape[1])))
        neighbours = [j for j in tree.query_ball_point([x[index], y[index]], reach)
                      if j != index]
        cutout = subtract_beams(residual[box], y[neighbours] - box[0].start,
                                x[neighbours] - box[1].start, amplitude[neighbours],
                                sigma_beam)
        measured = measure_at(cutout, valid[box], np.array([y[index] - box[0].start]),
                              np.array([x[index] - box[1].start]), sigma_beam=sigma_beam,
                              max_size_ratio=max_size_ratio)
        amplitudes.append(measured.amplitude[0])
        size_ratios.append(measured.size_ratio[0])
        width_ratios.append(measured.width_ratio[0])
    return CandidateMeasurements(amplitude=np.array(amplitudes),
                                 size_ratio=np.array(size_ratios),
                                 width_ratio=np.array(width_ratios))


def is_compact(measured: CandidateMeasurements, max_size_ratio: float) -> np.ndarray:
    """
    The size test: no wider than ``max_size_ratio`` beams, or an unresolved pair.

    A blob passes when its flattest direction is at most ``max_size_ratio``
    beams wide, or when it is beam-like across and at most
    `MAX_BLEND_LENGTH` beams long: two sources about a beam apart, which
    the Laplacian shows as one elongated peak.

    Parameters
    ----------
    measured : `~nemesis_bkg.masking.detection.CandidateMeasurements`
        Measurements made for ``max_size_ratio``.
    max_size_ratio : float
        Largest FWHM, in beams, of a single compact source.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    A compact blob, a pair (beam-like across, a little long), a clump:

    >>> import numpy as np
    >>> from nemesis_bkg.masking.blends import is_compact
    >>> from nemesis_bkg.masking.detection import CandidateMeasurements
    >>> measured = CandidateMeasurements(amplitude=np.ones(3),
    ...                                  size_ratio=np.array([0.8, 1.05, 3.0]),
    ...                                  width_ratio=np.array([0.8, 0.9, 0.9]))
    >>> is_compact(measured, 1.3).tolist()
    [True, True, False]
    """
    pair = (measured.width_ratio <= 1.0) & (
        measured.size_ratio <= size_ratio_of(MAX_BLEND_LENGTH, max_size_ratio))
    return (measured.size_ratio <= 1.0) | pair


def companion_floor(
    distance: np.ndarray,
    sigma_beam: float,
    *,
    beam_excess: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """
    Least amplitude of a companion, relative to its neighbour's, at ``distance``.

    A fitted Gaussian beam subtracted with small errors in amplitude, centre
    and width leaves residuals of the order of the beam and of its first
    and second derivatives in those parameters: at most about
    ``g (1 + u)``, with ``u = d**2 / sigma**2`` and ``g = exp(-u / 2)``
    the beam's profile, capped at 1; a companion must exceed `MIN_CONTRAST`
    times that. Where the beam is not Gaussian, what it puts above the
    Gaussian (``beam_excess``) is left too, and a companion must also
    exceed `BEAM_EXCESS_FACTOR` times that.

    Parameters
    ----------
    distance : ndarray
        Distance from the neighbour's centre, pixels.
    sigma_beam : float
        Beam sigma in pixels.
    beam_excess : tuple of ndarray, optional
        Radii and outer envelope of the beam's excess over its Gaussian
        (`~nemesis_bkg.masking.holes.beam_excess`); default none (a
        Gaussian beam).

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking.blends import companion_floor
    >>> companion_floor(np.array([0.0, 3.0, 6.0]), 1.5).round(5)
    array([0.1    , 0.06767, 0.00057])
    """
    scaled2 = (np.asarray(distance, dtype=float) / sigma_beam) ** 2
    floor = MIN_CONTRAST * np.minimum(np.exp(-0.5 * scaled2) * (1.0 + scaled2), 1.0)
    if beam_excess is not None and beam_excess[0].size:
        radius, excess = beam_excess
        floor = floor + BEAM_EXCESS_FACTOR * np.interp(distance, radius, excess, right=0.0)
    return floor


def _laplacian_of_beam(distance: np.ndarray, sigma_beam: float) -> np.ndarray:
    """
    Magnitude of the beam-scale Laplacian (as `hessian` gives it) of a unit Gaussian beam.

    The beam smoothed at its own scale is a Gaussian of variance
    ``2 sigma**2`` and half the peak; its Laplacian at distance ``d`` is
    ``(1 - v) exp(-v) / (2 sigma**2)`` with ``v = d**2 / (4 sigma**2)``:
    positive in the core, negative in the moat around it.
    """
    scaled2 = np.asarray(distance, dtype=float) ** 2 / (4.0 * sigma_beam**2)
    return np.abs(1.0 - scaled2) * np.exp(-scaled2) / (2.0 * sigma_beam**2)


@dataclass
class Companions:
    """
    Compact companions found by `find_companions`.

    Attributes
    ----------
    y, x : ndarray
        Sub-pixel positions.
    amplitude : ndarray
        Beam amplitude on the map with the first-pass sources subtracted.
    tentative : ndarray of bool
        Peaks that pass the detection threshold only without the allowance
        for the neighbour's fitting error (`AMPLITUDE_ERROR`): faint
        companions, or residuals of an over-subtracted neighbour. Masked
        all the same (a hole too many costs little next to a bright
        source's; a companion missed spills its flux), but flagged.
    """

    y: np.ndarray
    x: np.ndarray
    amplitude: np.ndarray
    tentative: np.ndarray


def find_companions(
    subtracted: np.ndarray,
    valid: np.ndarray,
    fluctuation: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    amplitude: np.ndarray,
    *,
    sigma_beam: float,
    threshold: float,
    min_curvature_snr: float,
    laplacian_to_second: float,
    max_size_ratio: float,
    search_radius: float,
    min_separation: float,
    beam_excess: tuple[np.ndarray, np.ndarray] | None = None,
) -> Companions:
    """
    Look for compact peaks around first-pass sources, on the source-subtracted map.

    Parameters
    ----------
    subtracted : ndarray
        Background-subtracted map with the first-pass beams removed
        (`subtract_beams`); finite.
    valid : ndarray of bool
        Pixels with a measurement.
    fluctuation : ndarray
        Local 1-sigma fluctuation of the Laplacian map (first pass).
    y, x : ndarray
        First-pass source positions.
    amplitude : ndarray
        First-pass amplitudes.
    sigma_beam : float
        Beam sigma in pixels.
    threshold, min_curvature_snr, max_size_ratio : float
        As for the first pass.
    laplacian_to_second : float
        Ratio of the white-noise gains of one second derivative and of the
        Laplacian (converts ``fluctuation`` to the curvature's noise).
    search_radius : float
        Half side, in pixels, of the window searched around each source.
    min_separation : float
        Peaks closer than this (pixels) to a first-pass source are its own
        subtraction residuals and are ignored.
    beam_excess : tuple of ndarray, optional
        The beam's excess over its Gaussian (see `companion_floor`).

    Returns
    -------
    `Companions`

    Examples
    --------
    A companion at 4 % of a bright neighbour, 5 pixels (1.4 FWHM) away, on a
    map with unit pixel noise:

    >>> import numpy as np
    >>> from nemesis_bkg.masking.blends import find_companions, subtract_beams
    >>> from nemesis_bkg.masking.detection import filter_noise_gains
    >>> yy, xx = np.mgrid[:48, :48]
    >>> image = sum(peak * np.exp(-((xx - x0) ** 2 + (yy - 24.0) ** 2) / (2 * 1.5**2))
    ...             for x0, peak in ((24.0, 200.0), (29.0, 8.0)))
    >>> y, x, amplitude = np.array([24.0]), np.array([24.0]), np.array([200.0])
    >>> laplacian_gain, second_gain = filter_noise_gains(1.5)
    >>> found = find_companions(
    ...     subtract_beams(image, y, x, amplitude, 1.5), image == image,
    ...     np.full(image.shape, laplacian_gain), y, x, amplitude, sigma_beam=1.5,
    ...     threshold=5.0, min_curvature_snr=2.0,
    ...     laplacian_to_second=second_gain / laplacian_gain, max_size_ratio=1.3,
    ...     search_radius=9.0, min_separation=2.6)
    >>> found.x.round(2), found.amplitude.round(2)
    (array([29.]), array([8.]))
    """
    half = int(np.ceil(search_radius))
    pad = int(np.ceil(4 * sigma_beam)) + 1
    found_y, found_x, found_minor_snr, found_significance, found_fluctuation = [], [], [], [], []
    seen = set()
    shape = subtracted.shape
    for centre_y, centre_x in zip(np.round(y).astype(int), np.round(x).astype(int), strict=True):
        outer = (slice(max(centre_y - half - pad, 0), min(centre_y + half + pad + 1, shape[0])),
                 slice(max(centre_x - half - pad, 0), min(centre_x + half + pad + 1, shape[1])))
        h_xx, h_yy, h_xy = hessian(subtracted[outer], sigma_beam)
        laplacian = -(h_xx + h_yy)
        significance = laplacian / fluctuation[outer]
        is_peak = (significance == ndimage.maximum_filter(significance, size=3)) & (
            significance >= threshold) & valid[outer]
        rows, cols = np.nonzero(is_peak)
        fine_rows, fine_cols = refine_peaks(laplacian, rows, cols)
        abs_rows, abs_cols = rows + outer[0].start, cols + outer[1].start
        inside = (np.abs(abs_rows - centre_y) <= half) & (np.abs(abs_cols - centre_x) <= half)
        for index in np.nonzero(inside)[0]:
            row, col = rows[index], cols[index]
            key = (abs_rows[index], abs_cols[index])
            if key in seen:
                continue
            seen.add(key)
            noise = fluctuation[key] * laplacian_to_second
            found_minor_snr.append(
                minor_curvature(h_xx[row, col], h_yy[row, col], h_xy[row, col]) / noise)
            found_significance.append(significance[row, col])
            # At the peak pixel: a refined position may round to a pixel off the map.
            found_fluctuation.append(fluctuation[key])
            found_y.append(fine_rows[index] + outer[0].start)
            found_x.append(fine_cols[index] + outer[1].start)
    peak_y = np.array(found_y, dtype=float)
    peak_x = np.array(found_x, dtype=float)
    if peak_y.size:
        distance, neighbour = cKDTree(np.column_stack([x, y])).query(
            np.column_stack([peak_x, peak_y]))
        keep = (distance >= min_separation) & (np.array(found_minor_snr) >= min_curvature_snr)
        peak_y, peak_x = peak_y[keep], peak_x[keep]
        neighbour, distance = neighbour[keep], distance[keep]
        peak_significance = np.array(found_significance)[keep]
        peak_fluctuation = np.array(found_fluctuation)[keep]
    if not peak_y.size:
        empty = np.zeros(0)
        return Companions(empty, empty, empty, np.zeros(0, dtype=bool))
    # Less what a neighbour fitted AMPLITUDE_ERROR off leaves in the Laplacian.
    moat = AMPLITUDE_ERROR * amplitude[neighbour] * _laplacian_of_beam(distance, sigma_beam)
    tentative = peak_significance - moat / peak_fluctuation < threshold
    measured = measure_at(subtracted, valid, peak_y, peak_x, sigma_beam=sigma_beam,
                          max_size_ratio=max_size_ratio)
    keep = is_compact(measured, max_size_ratio) & (
        measured.amplitude >= amplitude[neighbour]
        * companion_floor(distance, sigma_beam, beam_excess=beam_excess))
    return Companions(peak_y[keep], peak_x[keep], measured.amplitude[keep], tentative[keep])
