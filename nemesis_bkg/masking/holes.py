"""
The hole rule and the drawing of holes.

A compact source of peak signal-to-noise ``SNR`` seen through a Gaussian
beam of sigma ``sigma_beam`` falls to ``k`` times the local noise at

    r = sigma_beam * sqrt(2 ln(SNR / k)),

so outside that radius what is left of it is lost in the noise. A margin
(by default half the beam FWHM) is added for the sub-pixel centroid
error, for non-Gaussian beam wings, and so that the flux left outside the
hole stays below the noise of a beam-sized aperture: for a Gaussian beam of
sigma ``s`` (pixels) that needs ``r >= s sqrt(2 ln(3 s SNR))``, which the
default rule meets from SNR 3 to 10^5 for beams of 1.5 to 6 pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .detection import FWHM_TO_SIGMA

__all__ = ["default_margin", "draw_disks", "hole_radius"]


def default_margin(fwhm_pixels: float) -> float:
    """
    Default hole margin: half the beam FWHM, in pixels.

    Parameters
    ----------
    fwhm_pixels : float
        Beam FWHM in pixels.

    Returns
    -------
    float

    Examples
    --------
    >>> from nemesis_bkg.masking.holes import default_margin
    >>> default_margin(3.0)
    1.5
    """
    return 0.5 * float(fwhm_pixels)


def hole_radius(
    peak_snr: float | np.ndarray,
    fwhm_pixels: float,
    *,
    k: float = 1.0,
    margin: float | None = None,
) -> np.ndarray:
    """
    Radius (pixels) at which a source's beam profile falls below ``k`` times the noise.

    ``sigma_beam * sqrt(2 ln(peak_snr / k)) + margin``; a source whose peak
    is not above ``k`` times the noise (including zero or negative SNR)
    gets the margin alone.

    Parameters
    ----------
    peak_snr : float or array-like
        Peak signal-to-noise ratio of each source (peak above the local
        background over the 1-sigma pixel noise).
    fwhm_pixels : float
        Beam FWHM in pixels.
    k : float, optional
        Level, in noise units, at which the profile is cut.
    margin : float, optional
        Pixels added to the radius; default `default_margin` (half the FWHM).

    Returns
    -------
    ndarray
        Radii in pixels, the shape of ``peak_snr``.

    Raises
    ------
    ValueError
        If ``peak_snr`` holds NaN or inf, or ``fwhm_pixels``, ``k`` or
        ``margin`` is not positive (``margin`` may be 0).

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking import hole_radius
    >>> hole_radius([0.5, 10.0, 1000.0], 3.0, margin=0.0).round(2)
    array([0.  , 2.73, 4.74])
    """
    snr = np.asarray(peak_snr, dtype=float)
    if not np.all(np.isfinite(snr)):
        raise ValueError("peak_snr must be finite; drop or fix the NaN/inf entries first.")
    if not (np.isfinite(fwhm_pixels) and fwhm_pixels > 0):
        raise ValueError(f"fwhm_pixels must be positive and finite, got {fwhm_pixels!r}.")
    if not (np.isfinite(k) and k > 0):
        raise ValueError(f"k must be positive and finite, got {k!r}.")
    margin = default_margin(fwhm_pixels) if margin is None else float(margin)
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be >= 0 pixels, got {margin!r}.")
    sigma_beam = FWHM_TO_SIGMA * float(fwhm_pixels)
    ratio = np.maximum(snr / k, 1.0)
    return sigma_beam * np.sqrt(2.0 * np.log(ratio)) + margin


def _disk(y: float, x: float, radius: float, shape: tuple[int, int]):
    """Slices of the disk's bounding box and the disk pixels inside it."""
    y0 = max(int(np.floor(y - radius)), 0)
    y1 = min(int(np.ceil(y + radius)) + 1, shape[0])
    x0 = max(int(np.floor(x - radius)), 0)
    x1 = min(int(np.ceil(x + radius)) + 1, shape[1])
    if y0 >= y1 or x0 >= x1:
        return None, None
    rows = np.arange(y0, y1)[:, None] - y
    cols = np.arange(x0, x1)[None, :] - x
    return (slice(y0, y1), slice(x0, x1)), rows**2 + cols**2 <= radius**2


def _box_within(box, centre_y: float, centre_x: float, reach: float) -> bool:
    """Whether a bounding box lies within ``reach`` of the centre along both axes."""
    return (box is not None
            and box[0].start >= centre_y - reach and box[0].stop - 1 <= centre_y + reach
            and box[1].start >= centre_x - reach and box[1].stop - 1 <= centre_x + reach)


def draw_disks(
    shape: tuple[int, int],
    y: np.ndarray,
    x: np.ndarray,
    radius: np.ndarray,
    *,
    segments: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    dilate: int = 1,
    segment_reach: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """
    Draw one hole per source: a disk, united with the source's dilated segment.

    Work is done on each source's bounding box only. A segment joins the
    hole only when it lies entirely within ``segment_reach * radius`` of the
    centre: a segment reaching farther belongs to extended structure too
    (a source on a filament whose crest was segmented with it), and
    uniting it would take the filament along.

    Parameters
    ----------
    shape : tuple of int
        Shape of the map.
    y, x : ndarray
        Centres in pixel coordinates.
    radius : ndarray
        Disk radii in pixels.
    segments : ndarray of int, optional
        Segmentation image (0 = no segment).
    labels : ndarray of int, optional
        Segment label of each source (0 = none); needed with ``segments``.
    dilate : int, optional
        Dilation of the segments, in pixels.
    segment_reach : float, optional
        Farthest reach of a segment, in units of the disk radius.

    Returns
    -------
    mask : ndarray of bool
        The union of all holes.
    enclosing_radius : ndarray
        Per source, the radius of the centred circle that encloses its hole.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking.holes import draw_disks
    >>> mask, radius = draw_disks((9, 9), np.array([4.0]), np.array([4.0]), np.array([2.0]))
    >>> int(mask.sum()), float(radius[0])
    (13, 2.0)
    """
    mask = np.zeros(shape, dtype=bool)
    enclosing = np.asarray(radius, dtype=float).copy()
    structure = ndimage.generate_binary_structure(2, 1)
    segment_boxes = ndimage.find_objects(segments) if segments is not None else []
    for index, (centre_y, centre_x, disk_radius) in enumerate(zip(y, x, radius, strict=True)):
        label = 0 if labels is None else int(labels[index])
        reach = disk_radius * segment_reach
        if label and not _box_within(segment_boxes[label - 1], centre_y, centre_x,
                                     reach - dilate):
            label = 0
        if not label:
            reach = disk_radius
        box, inside = _disk(centre_y, centre_x, reach, shape)
        if box is None:
            continue
        rows = np.arange(box[0].start, box[0].stop)[:, None] - centre_y
        cols = np.arange(box[1].start, box[1].stop)[None, :] - centre_x
        distance2 = rows**2 + cols**2
        hole = distance2 <= disk_radius**2
        if label:
            segment = segments[box] == label
            if dilate > 0:
                segment = ndimage.binary_dilation(segment, structure, iterations=dilate)
            extra = segment & inside & ~hole
            if extra.any():
                hole |= extra
                enclosing[index] = max(disk_radius, float(np.sqrt(distance2[extra].max())))
        mask[box] |= hole
    return mask, enclosing
