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

Real beams are not Gaussian: Herschel beams are slightly elongated and have
sidelobes at a few per cent of the peak, which a bright source lifts above
the noise far outside the Gaussian radius. Given the beam as a pixel-sampled
image (``psf``), the rule reads the radius off the beam's own profile
instead (`psf_profile`): the outermost radius at which
``peak_snr * profile(r) >= k``, plus the margin; and, since such a beam
can hold much of its flux where its profile is below the noise (a ring),
at least the radius outside which the source's flux is below half the
noise of a beam-sized aperture.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .detection import FWHM_TO_SIGMA

__all__ = [
    "BEAM_AREA_PER_FWHM2",
    "LEFTOVER_TOLERANCE",
    "beam_excess",
    "default_margin",
    "draw_disks",
    "hole_radius",
    "psf_profile",
]

#: Area of a Gaussian beam in units of its FWHM squared, ``pi / (4 ln 2)``.
BEAM_AREA_PER_FWHM2 = np.pi / (4.0 * np.log(2.0))

#: With a PSF, the flux a hole may leave outside, in units of the 1-sigma noise
#: of a beam-sized aperture: half, for the error of the measured SNR and centre
#: (what the margin does for the profile rule).
LEFTOVER_TOLERANCE = 0.5


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


def psf_profile(psf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Outer envelope of a beam's radial profile, from a pixel-sampled PSF image.

    The PSF is normalised to 1 at its brightest pixel; each radius ``r``
    gets the largest value of the PSF at any pixel at distance ``r`` or
    more from the centre: the azimuthal maximum (so the major axis of an
    elongated beam and the lobes of a sidelobe pattern set it), made
    non-increasing outwards so that a sidelobe ring is counted at every
    radius inside it. Only pixels within the largest centred circle that
    fits in the image count (farther out only the corners are sampled), and
    only where the envelope is positive.

    Parameters
    ----------
    psf : array-like
        2-D image of the beam on the map's pixel grid, any normalisation,
        with odd sides and the beam centred on the middle pixel (as
        `astropy.convolution.Kernel2D` and
        `photutils.segmentation.make_2dgaussian_kernel` make them); the
        brightest pixel must be within one pixel of the middle.

    Returns
    -------
    radius : ndarray
        Distances from the centre (pixels), increasing, starting at 0.
    envelope : ndarray
        Envelope at those distances, non-increasing, 1 at the centre.

    Raises
    ------
    ValueError
        If ``psf`` is not 2-D, has an even side, holds NaN or inf, has no
        positive pixel, or its brightest pixel is off the middle.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking.holes import psf_profile
    >>> y, x = np.mgrid[-3:4, -3:4]
    >>> radius, envelope = psf_profile(np.exp(-(x**2 + y**2) / 2.0))
    >>> radius[:3].round(3), envelope[:3].round(3)
    (array([0.   , 1.   , 1.414]), array([1.   , 0.607, 0.368]))
    """
    distance, value, inscribed = _psf_pixels(psf)
    inside = distance <= inscribed
    return _outer_envelope(distance[inside], value[inside])


def beam_excess(psf: np.ndarray, fwhm_pixels: float) -> tuple[np.ndarray, np.ndarray]:
    """
    Outer envelope of what a beam puts above the circular Gaussian of its FWHM.

    Sidelobes and the long axis of an elongated core are what subtracting
    a Gaussian leaves of a bright source; this says how much, at most, at
    each distance or beyond (relative to the beam's peak).

    Parameters
    ----------
    psf : array-like
        Image of the beam, as for `psf_profile`.
    fwhm_pixels : float
        FWHM of the Gaussian compared with, pixels.

    Returns
    -------
    radius : ndarray
        Distances from the centre (pixels), increasing.
    excess : ndarray
        Largest excess of the PSF (peak 1) over the Gaussian (peak 1) at
        that distance or beyond, where positive.

    Raises
    ------
    ValueError
        If ``psf`` is unusable (see `psf_profile`).

    Examples
    --------
    >>> from nemesis_bkg.masking.holes import beam_excess
    >>> from nemesis_bkg.simulate.beams import Beam
    >>> ringed = Beam(fwhm=3.0, sidelobe_level=0.03, sidelobe_radius=1.6)
    >>> radius, excess = beam_excess(ringed.stamp(0.0, 0.0), 3.0)
    >>> round(float(excess[0]), 2), bool(excess[radius > 6].max() < 0.01)
    (0.03, True)
    """
    distance, value, inscribed = _psf_pixels(psf)
    sigma_beam = FWHM_TO_SIGMA * float(fwhm_pixels)
    inside = distance <= inscribed
    gaussian = np.exp(-0.5 * (distance[inside] / sigma_beam) ** 2)
    return _outer_envelope(distance[inside], value[inside] - gaussian)


def _psf_pixels(psf: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """
    Distance from the middle and value (peak 1) of every pixel of a checked PSF image.

    Also returns the radius of the largest centred circle within the image.
    """
    psf = np.asarray(psf, dtype=float)
    if psf.ndim != 2:
        raise ValueError(f"psf must be a 2-D image of the beam, got {psf.ndim} dimension(s).")
    if psf.shape[0] % 2 == 0 or psf.shape[1] % 2 == 0:
        raise ValueError(
            f"psf must have odd sides with the beam centred on the middle pixel, got shape "
            f"{psf.shape}; pad or crop it by one row/column."
        )
    if not np.all(np.isfinite(psf)):
        raise ValueError("psf holds NaN or inf; replace them (e.g. by 0) first.")
    peak = psf.max()
    if not peak > 0:
        raise ValueError("psf has no positive pixel; give the beam's image, peak positive.")
    centre = np.array(psf.shape) // 2
    brightest = np.array(np.unravel_index(np.argmax(psf), psf.shape))
    if np.abs(brightest - centre).max() > 1:
        raise ValueError(
            f"the brightest pixel of psf is at {tuple(brightest.tolist())}, not at the middle "
            f"{tuple(centre.tolist())}; centre the beam on the middle pixel."
        )
    rows, cols = np.indices(psf.shape)
    distance = np.hypot(rows - centre[0], cols - centre[1]).ravel()
    return distance, psf.ravel() / peak, float(centre.min())


def _outer_envelope(distance: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Distinct distances (increasing) and the largest value at each or beyond it.

    Only where that envelope is positive.
    """
    order = np.argsort(distance)[::-1]
    # Running maximum from the outside in.
    envelope = np.maximum.accumulate(value[order])[::-1]
    radius, first = np.unique(distance[order][::-1], return_index=True)
    envelope = envelope[first]
    positive = envelope > 0
    return radius[positive], envelope[positive]


def _leftover_radius(ratio: np.ndarray, distance: np.ndarray, value: np.ndarray,
                     fwhm_pixels: float) -> np.ndarray:
    """
    Least PSF pixel distance outside which ``ratio`` times the PSF's flux is below
    `LEFTOVER_TOLERANCE` times the noise of a beam-sized aperture (pixel-noise units).

    ``distance`` and ``value`` are every pixel of the PSF (peak 1). The flux
    strictly outside each distinct distance is made non-increasing outwards
    (negative pixels cannot let a hole shrink).
    """
    order = np.argsort(distance)
    radius, first = np.unique(distance[order], return_index=True)
    inside = np.cumsum(value[order])
    # Flux beyond each distinct distance: total minus all pixels up to its last occurrence.
    last = np.append(first[1:], distance.size) - 1
    outside = np.maximum.accumulate((inside[-1] - inside[last])[::-1])[::-1]
    allowed = LEFTOVER_TOLERANCE * np.sqrt(BEAM_AREA_PER_FWHM2) * fwhm_pixels / ratio
    # The last distance has nothing outside it, so some distance always qualifies.
    return radius[np.searchsorted(-outside, -allowed, side="left")]


def _radius_from_profile(level: np.ndarray, radius: np.ndarray, envelope: np.ndarray,
                         sigma_beam: float) -> np.ndarray:
    """
    Outermost radius where the envelope reaches ``level`` (0 where ``level >= 1``).

    Interpolated linearly in ``(r**2, ln envelope)``, exact for a Gaussian;
    beyond the last sampled radius the envelope falls as the Gaussian of
    ``sigma_beam``.
    """
    level = np.minimum(level, 1.0)
    # Index of the last sampled radius whose envelope still reaches the level.
    last = np.searchsorted(-envelope, -level, side="right") - 1
    following = np.minimum(last + 1, radius.size - 1)
    sampled = last < radius.size - 1
    # Squared radius gained per e-fold of the envelope: the sampled segment's (its
    # envelope drops, by the choice of ``last``), or the Gaussian's beyond the samples.
    with np.errstate(divide="ignore", invalid="ignore"):
        segment_slope = (radius[following] ** 2 - radius[last] ** 2) / np.log(
            envelope[last] / envelope[following])
    slope = np.where(sampled, segment_slope, 2.0 * sigma_beam**2)
    reach = np.sqrt(radius[last] ** 2 + slope * np.log(envelope[last] / level))
    return np.where(level < 1.0, reach, 0.0)


def hole_radius(
    peak_snr: float | np.ndarray,
    fwhm_pixels: float,
    *,
    k: float = 1.0,
    margin: float | None = None,
    psf: np.ndarray | None = None,
) -> np.ndarray:
    """
    Radius (pixels) at which a source's beam profile falls below ``k`` times the noise.

    ``sigma_beam * sqrt(2 ln(peak_snr / k)) + margin`` for a Gaussian beam;
    with ``psf``, the outermost radius at which ``peak_snr`` times the
    beam's radial profile (`psf_profile`, normalised to 1 at the centre)
    reaches ``k``, plus the margin. A source whose peak is not above ``k``
    times the noise (including zero or negative SNR) gets the margin alone.

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
    psf : array-like, optional
        Image of the beam, pixel-sampled on the map's grid, odd sides,
        centred on the middle pixel, any normalisation (see `psf_profile`).
        Beyond the largest circle the image holds, the profile is continued
        as the Gaussian of ``fwhm_pixels``. Its wings count in full: set
        the noise floor of an empirical PSF to 0 first, or bright sources
        get holes as wide as the image. Default: a Gaussian beam of
        ``fwhm_pixels``.

    Returns
    -------
    ndarray
        Radii in pixels, the shape of ``peak_snr``.

    Raises
    ------
    ValueError
        If ``peak_snr`` holds NaN or inf, or ``fwhm_pixels``, ``k`` or
        ``margin`` is not positive (``margin`` may be 0), or ``psf`` is
        unusable (see `psf_profile`).

    Notes
    -----
    For a Gaussian beam the default margin also keeps the flux left outside
    the hole below the noise of a beam-sized aperture (see the module
    notes). Other beams can carry much of their flux where their profile
    is below the noise (a sidelobe ring holding 8 % of the flux does, for a
    source of SNR 5); so with ``psf`` the radius is at least the PSF pixel
    distance outside which ``peak_snr / k`` times the PSF's flux (peak 1)
    is below `LEFTOVER_TOLERANCE` times ``sqrt(1.133) * fwhm_pixels``, the
    1-sigma white noise of a beam-sized aperture in pixel-noise units. For
    a Gaussian PSF this never exceeds the profile rule with the default
    margin from SNR 5 up (beams of 1.5 to 8 pixels; from SNR 3 for beams up
    to 3.25 pixels), so there the Gaussian result is unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking import hole_radius
    >>> hole_radius([0.5, 10.0, 1000.0], 3.0, margin=0.0).round(2)
    array([0.  , 2.73, 4.74])

    A beam with a sidelobe ring at 3 % of the peak, 5 pixels out, holding
    15 % of the flux, needs larger holes: to take in the ring's flux for
    the fainter source, and where the ring itself stands above the noise
    for the brighter one:

    >>> y, x = np.mgrid[-9:10, -9:10]
    >>> ring = 0.03 * np.exp(-0.5 * ((np.hypot(x, y) - 5.0) / 0.75) ** 2)
    >>> psf = np.exp(-(x**2 + y**2) / (2 * 1.274**2)) + ring
    >>> hole_radius([10.0, 1000.0], 3.0).round(2)
    array([4.23, 6.24])
    >>> hole_radius([10.0, 1000.0], 3.0, psf=psf).round(2)
    array([6.08, 8.45])
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
    if psf is None:
        return sigma_beam * np.sqrt(2.0 * np.log(ratio)) + margin
    distance, value, inscribed = _psf_pixels(psf)
    inside = distance <= inscribed
    radius, envelope = _outer_envelope(distance[inside], value[inside])
    profile_radius = _radius_from_profile(1.0 / ratio, radius, envelope, sigma_beam) + margin
    leftover_radius = np.where(ratio > 1.0,
                               _leftover_radius(ratio, distance, value, fwhm_pixels), 0.0)
    return np.maximum(profile_radius, leftover_radius)


def _disk_box(y: float, x: float, radius: float, shape: tuple[int, int]):
    """
    Slices of a disk's bounding box within the map, and the squared distance
    from the centre of every pixel of that box (None, None when the box is
    off the map).
    """
    y0 = max(int(np.floor(y - radius)), 0)
    y1 = min(int(np.ceil(y + radius)) + 1, shape[0])
    x0 = max(int(np.floor(x - radius)), 0)
    x1 = min(int(np.ceil(x + radius)) + 1, shape[1])
    if y0 >= y1 or x0 >= x1:
        return None, None
    rows = np.arange(y0, y1)[:, None] - y
    cols = np.arange(x0, x1)[None, :] - x
    return (slice(y0, y1), slice(x0, x1)), rows**2 + cols**2


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
        box, distance2 = _disk_box(centre_y, centre_x, reach, shape)
        if box is None:
            continue
        hole = distance2 <= disk_radius**2
        if label:
            segment = segments[box] == label
            if dilate > 0:
                segment = ndimage.binary_dilation(segment, structure, iterations=dilate)
            extra = segment & (distance2 <= reach**2) & ~hole
            if extra.any():
                hole |= extra
                enclosing[index] = max(disk_radius, float(np.sqrt(distance2[extra].max())))
        mask[box] |= hole
    return mask, enclosing
