"""
`SourceMasker` and `build_source_mask`: from an image and its beam to
SNR-adaptive holes around the compact sources.

The steps (each in its own module):

1. `~nemesis_bkg.masking.noise`: a smooth local background (boxes of three
   beams) and the pixel noise (the input's uncertainty, else the robust
   scatter of the second differences);
2. `~nemesis_bkg.masking.detection`: the beam-scale Laplacian of the
   background-subtracted map over its local fluctuation, segmented and
   deblended with photutils; candidates measured on cutouts; compact ones
   kept (curving down in every direction, no wider than
   ``max_size_ratio`` beams);
3. `~nemesis_bkg.masking.blends`: unresolved pairs kept as compact, blends
   measured again with their neighbours subtracted, and faint companions
   of bright sources searched for after subtracting the first detections;
4. `~nemesis_bkg.masking.holes`: per source a disk from the hole rule,
   united with its dilated segment; user catalogue positions, user regions
   and the input's own mask added; ``protect`` regions given back;
   only covered pixels kept;
5. `~nemesis_bkg.masking.result`: the `SourceMask`.
"""

from __future__ import annotations

import numbers
import os
import warnings
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from regions import CirclePixelRegion, PixCoord, Region, Regions
from scipy import ndimage
from scipy.spatial import cKDTree

from ..instruments import beam_fwhm_pixels
from ..io import ImageInput, read_image
from .blends import (
    find_companions,
    is_compact,
    joint_amplitudes,
    remeasure_blended,
    subtract_beams,
)
from .detection import (
    FWHM_TO_SIGMA,
    deblend_labels,
    filter_noise_gains,
    hessian,
    measure_at,
    minor_curvature,
    refine_peaks,
    segment_significance,
)
from .holes import _disk_box, beam_excess, draw_disks, hole_radius, psf_profile
from .noise import local_background, local_noise, second_difference_noise
from .result import (
    FLAG_EDGE,
    FLAG_MERGED,
    FLAG_PROTECTED,
    FLAG_TENTATIVE,
    SourceMask,
    empty_catalog,
    make_catalog,
)
from .user_inputs import catalog_positions, read_regions, region_pixels, regions_to_mask

__all__ = ["SourceMasker", "build_source_mask"]

RegionsInput = Regions | Region | list[Region] | str | os.PathLike

#: A detection whose fitted beam amplitude is below the pixel noise is no
#: beam-shaped excess (e.g. a kink of a coverage edge): it is dropped.
MIN_PEAK_SNR = 1.0


class SourceMasker:
    """
    Find compact sources and cut SNR-adaptive holes around them.

    Parameters
    ----------
    snr_threshold : float, optional
        Detection threshold: the beam-scale Laplacian of the map must stand
        this many times above its local fluctuation (instrumental noise, or
        the background's own structure at the beam scale where larger).
        Default 5.
    k : float, optional
        Holes reach where the source's profile falls to ``k`` times the
        pixel noise (see `hole_radius`). Default 1.
    margin : float, optional
        Pixels (>= 0) added to every hole radius; default half the beam FWHM.
    dilate : int, optional
        Dilation, in pixels (>= 0), of each source's segment before it joins
        the hole. Default 1.
    max_size_ratio : float, optional
        Largest FWHM, in beams, of a source still called compact (> 1);
        wider clumps are left as background (blobs beam-like across and up
        to 2.5 beams long pass as unresolved pairs, see
        `~nemesis_bkg.masking.blends.is_compact`). Default 1.3.
    min_curvature_snr : float, optional
        Least significance (>= 0, in units of the local fluctuation) of the
        curvature along a source's flattest direction; filament crests,
        flat along their length, fall below it. Default 2.
    local_structure : bool, optional
        Raise the detection threshold where the background is structured at
        the beam scale (default True). With False only the instrumental
        noise counts, and every compact bump of a bright cloud gets a hole.
    structure_box : float, optional
        Side, in beams, of the boxes over which the background's structure
        is measured (the estimate is then median-filtered over 3x3 boxes).
        Default 4.
    deblend : bool, optional
        Deblend segments holding several peaks (photutils). Default True.
    segment_reach : float, optional
        A source's segment joins its hole only when it lies within this
        many hole radii of the centre (a segment reaching farther runs
        into extended structure, such as a filament's crest). Default 1.5.
    psf : array-like, optional
        Image of the beam on the maps' pixel grid (odd sides, centred on
        the middle pixel, any normalisation): holes then reach where the
        beam's own radial profile, sidelobes and elongation included, falls
        below ``k`` times the noise (see `hole_radius`), and what the beam
        puts above a Gaussian (sidelobes) is not taken for faint companions
        of bright sources (see `~nemesis_bkg.masking.blends`). Detection
        still uses a Gaussian of the given FWHM. Default: a Gaussian beam.

    Raises
    ------
    TypeError
        If a numerical option is not a number.
    ValueError
        If an option is out of its range (see above) or ``psf`` is unusable
        (see `~nemesis_bkg.masking.psf_profile`).

    Notes
    -----
    Background and noise: the local background is a clipped median in
    boxes of three beams, median-filtered over 3x3 boxes (the same as
    photutils' ``Background2D`` but vectorised); the pixel noise is the
    input's uncertainty, else the robust scatter of the second
    differences, which beam-smoothed sky hardly reaches. Detection uses
    the beam-scale Laplacian, blind to levels and gradients, against the
    larger of the noise and the local scatter of the Laplacian itself, in
    boxes of ``structure_box`` beams: on bright, structured clouds a faint
    source that does not stand out of the cloud's own beam-scale structure
    is left alone rather than every bump of the cloud masked.

    The defaults were set on the benchmark `nemesis_bkg.bench.masks`
    (``nemesis-bkg bench masks``): on noise-limited maps in the six
    Herschel bands they find 99 % of the sources of peak SNR >= 5; on
    bright clouds completeness is set by the cloud's structure, not the
    noise.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.masking import SourceMasker
    >>> y, x = np.mgrid[:96, :96]
    >>> data = 40 * np.exp(-((x - 40) ** 2 + (y - 50) ** 2) / (2 * 1.5**2))
    >>> data = data + np.random.default_rng(1).normal(size=data.shape)
    >>> holes = SourceMasker(snr_threshold=5)(data, 3.5)
    >>> len(holes.catalog), bool(holes.mask[50, 40])
    (1, True)
    """

    def __init__(
        self,
        *,
        snr_threshold: float = 5.0,
        k: float = 1.0,
        margin: float | None = None,
        dilate: int = 1,
        max_size_ratio: float = 1.3,
        min_curvature_snr: float = 2.0,
        local_structure: bool = True,
        structure_box: float = 4.0,
        deblend: bool = True,
        segment_reach: float = 1.5,
        psf: np.ndarray | None = None,
    ) -> None:
        self.snr_threshold = _checked_number("snr_threshold", snr_threshold)
        self.k = _checked_number("k", k)
        self.margin = None if margin is None else _checked_number("margin", margin,
                                                                  allow_zero=True)
        self.max_size_ratio = _checked_number("max_size_ratio", max_size_ratio)
        if self.max_size_ratio <= 1:
            raise ValueError(
                f"max_size_ratio must exceed 1 (a point source is one beam wide), got "
                f"{max_size_ratio!r}."
            )
        self.min_curvature_snr = _checked_number("min_curvature_snr", min_curvature_snr,
                                                 allow_zero=True)
        self.structure_box = _checked_number("structure_box", structure_box)
        self.segment_reach = _checked_number("segment_reach", segment_reach)
        dilation = _checked_number("dilate", dilate, allow_zero=True)
        if dilation != int(dilation):
            raise ValueError(f"dilate must be a whole number of pixels >= 0, got {dilate!r}.")
        self.dilate = int(dilation)
        self.local_structure = bool(local_structure)
        self.deblend = bool(deblend)
        if psf is not None:
            psf_profile(psf)  # fail here, not at the first image, on an unusable PSF
        self.psf = None if psf is None else np.array(psf, dtype=float)

    def __call__(
        self,
        image: ImageInput | Any,
        fwhm_pixels: float | u.Quantity,
        *,
        detect: bool = True,
        catalog: Table | SkyCoord | None = None,
        regions: RegionsInput | None = None,
        protect: RegionsInput | None = None,
        origin: tuple[int, int] = (0, 0),
    ) -> SourceMask:
        """
        Build the holes of one image.

        Parameters
        ----------
        image : `~nemesis_bkg.io.ImageInput` or anything `~nemesis_bkg.io.read_image` accepts
            The map. Its ``mask`` pixels become holes too.
        fwhm_pixels : float or `~astropy.units.Quantity`
            Beam FWHM: pixels, or an angle (needs the image's WCS).
        detect : bool, optional
            Find sources; with False only ``catalog``, ``regions`` and the
            image's mask make holes.
        catalog : `~astropy.table.Table` or `~astropy.coordinates.SkyCoord`, optional
            Extra source positions (see `~nemesis_bkg.masking.user_inputs`).
        regions : `regions.Regions`, region, list of regions or path, optional
            Extra areas to mask (DS9 or CRTF file or regions objects); point
            regions are positions, like catalogue rows.
        protect : `regions.Regions`, region, list of regions or path, optional
            Areas never masked (no point regions: they cover no pixel).
        origin : tuple of int, optional
            Position (row, column) of the image's pixel (0, 0) in a larger
            map of which it is a cutout: the boxes of the background and
            noise estimates then follow that map's box grid, so that the
            cutout's holes away from its edges are those of the whole map
            (`nemesis_bkg.parallel.remove_mosaic`).

        Returns
        -------
        `~nemesis_bkg.masking.SourceMask`
            The holes, their catalogue and the background and noise maps
            they were decided on. The input is not modified.

        Warns
        -----
        `~astropy.utils.exceptions.AstropyUserWarning`
            For catalogue rows off the map, regions that cover no pixel of
            it, and user holes clipped by ``protect``.
        """
        if not (len(origin) == 2 and all(isinstance(v, numbers.Integral) for v in origin)):
            raise TypeError(f"origin must be a (row, column) pair of whole pixels, got "
                            f"{origin!r}.")
        if not isinstance(image, ImageInput):
            image = read_image(image)
        fwhm = beam_fwhm_pixels(fwhm_pixels, image.wcs)
        shape = image.shape
        valid = image.coverage

        protect_mask = np.zeros(shape, dtype=bool)
        if protect is not None:
            protect_mask, _, _ = regions_to_mask(read_regions(protect, "protect"), image.wcs,
                                                 shape, "protect", allow_points=False)

        data = np.where(valid, image.data, np.nan)
        background = local_background(data, max(int(np.ceil(3 * fwhm)), 5), origin=origin)
        if image.error is not None:
            pixel_noise = _fill_invalid(image.error, valid)
        else:
            pixel_noise = second_difference_noise(data, max(int(np.ceil(10 * fwhm)), 32),
                                                  origin=origin)
        residual = _extend_into_gaps(data - background, valid)

        rows = _Rows()
        segmentation = None
        if detect:
            segmentation = self._detect(residual, valid, pixel_noise, fwhm, protect_mask, rows,
                                        origin)
        if catalog is not None:
            self._add_catalog(catalog, image, residual, valid, pixel_noise, fwhm, rows)
        user_regions = []
        region_mask = np.zeros(shape, dtype=bool)
        if regions is not None:
            region_mask, user_regions = self._add_regions(regions, image, residual, valid,
                                                          pixel_noise, fwhm, rows)

        drawn = rows.draw
        holes, enclosing = draw_disks(
            shape, rows.y[drawn], rows.x[drawn], rows.radius[drawn],
            segments=None if segmentation is None else segmentation.data,
            labels=rows.label[drawn], dilate=self.dilate, segment_reach=self.segment_reach,
        )
        rows.radius[drawn] = enclosing
        user_mask = image.mask & valid
        _add_mask_components(user_mask, rows)
        holes |= region_mask | user_mask
        holes &= valid
        clipped = holes & protect_mask
        holes &= ~protect_mask
        flags = _flags(rows, holes, valid, clipped)
        _warn_protected_user_holes(rows, flags)

        if rows.x.size:
            table = make_catalog(x=rows.x, y=rows.y, peak_snr=rows.snr, hole_radius=rows.radius,
                                 segment_area=rows.area, flags=flags, origin=rows.origin,
                                 wcs=image.wcs)
        else:
            table = empty_catalog(image.wcs)
        return SourceMask(mask=holes, catalog=table, background=background,
                          background_rms=pixel_noise, fwhm_pixels=fwhm, wcs=image.wcs,
                          segmentation=segmentation, user_regions=user_regions)

    def _significance(self, residual, valid, pixel_noise, sigma_beam, origin):
        """Hessian, Laplacian significance, and the fluctuation of the Laplacian."""
        hessian_maps = hessian(residual, sigma_beam)
        laplacian = -(hessian_maps[0] + hessian_maps[1])
        laplacian_gain, _ = filter_noise_gains(sigma_beam)
        fluctuation = pixel_noise * laplacian_gain
        if self.local_structure:
            box = max(int(np.ceil(self.structure_box * sigma_beam / FWHM_TO_SIGMA)), 8)
            fluctuation = np.maximum(
                fluctuation, local_noise(np.where(valid, laplacian, np.nan), box, origin=origin))
        significance = np.where(valid, laplacian / fluctuation, 0.0)
        return hessian_maps, laplacian, fluctuation, significance

    def _compact_peaks(self, residual, valid, peaks, sigma_beam, fwhm):
        """Measure the candidate peaks; keep the compact ones (blends measured again)."""
        y, x = peaks
        found = measure_at(residual, valid, y, x, sigma_beam=sigma_beam,
                           max_size_ratio=self.max_size_ratio)
        amplitude, compact = found.amplitude, is_compact(found, self.max_size_ratio)
        blend_reach = 2.0 * fwhm
        if (~compact).any() and y.size > 1:
            distance, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
            retry = np.nonzero(~compact & (distance[:, 1] < blend_reach))[0]
            if retry.size:
                joint = joint_amplitudes(y, x, np.maximum(amplitude, 0.0), sigma_beam)
                again = remeasure_blended(residual, valid, y, x, joint, retry,
                                          sigma_beam=sigma_beam,
                                          max_size_ratio=self.max_size_ratio,
                                          reach=blend_reach)
                amplitude[retry] = again.amplitude
                compact[retry] = is_compact(again, self.max_size_ratio)
        return compact, amplitude

    def _detect(self, residual, valid, pixel_noise, fwhm, protect_mask, rows, origin):
        sigma_beam = FWHM_TO_SIGMA * fwhm
        (h_xx, h_yy, h_xy), laplacian, fluctuation, significance = self._significance(
            residual, valid, pixel_noise, sigma_beam, origin)
        n_pixels = max(2, int(round(0.15 * 2 * np.pi * sigma_beam**2)))
        segmentation, peak_y, peak_x = segment_significance(
            significance, valid, threshold=self.snr_threshold, n_pixels=n_pixels)
        if segmentation is None:
            return None
        # Curvature along the flattest direction, in the same noise units: low on ridges.
        laplacian_gain, second_gain = filter_noise_gains(sigma_beam)
        to_second = second_gain / laplacian_gain
        minor_snr = minor_curvature(h_xx[peak_y, peak_x], h_yy[peak_y, peak_x],
                                    h_xy[peak_y, peak_x]) / (fluctuation[peak_y, peak_x]
                                                             * to_second)
        keep = (minor_snr >= self.min_curvature_snr) & ~protect_mask[peak_y, peak_x]
        peak_y, peak_x = peak_y[keep], peak_x[keep]
        y, x = refine_peaks(laplacian, peak_y, peak_x)
        compact, amplitude = self._compact_peaks(residual, valid, (y, x), sigma_beam, fwhm)
        y, x, amplitude = y[compact], x[compact], amplitude[compact]
        peak_labels = segmentation.data[peak_y[compact], peak_x[compact]]
        if self.deblend:
            segmentation = deblend_labels(significance, segmentation, peak_labels,
                                          n_pixels=n_pixels)
            peak_labels = segmentation.data[peak_y[compact], peak_x[compact]]

        companions = find_companions(
            subtract_beams(residual, y, x, amplitude, sigma_beam), valid, fluctuation, y, x,
            amplitude, sigma_beam=sigma_beam, threshold=self.snr_threshold,
            min_curvature_snr=self.min_curvature_snr, laplacian_to_second=to_second,
            max_size_ratio=self.max_size_ratio, search_radius=2.5 * fwhm,
            min_separation=0.75 * fwhm,
            beam_excess=None if self.psf is None else beam_excess(self.psf, fwhm),
        )
        free = ~protect_mask[_pixel_index(companions.y, companions.x, residual.shape)]
        y = np.concatenate([y, companions.y[free]])
        x = np.concatenate([x, companions.x[free]])
        amplitude = np.concatenate([amplitude, companions.amplitude[free]])
        labels = np.concatenate([peak_labels, np.zeros(int(free.sum()), dtype=int)])
        tentative = np.concatenate([np.zeros(peak_labels.size, dtype=bool),
                                    companions.tentative[free]])

        snr = amplitude / pixel_noise[_pixel_index(y, x, residual.shape)]
        significant = snr >= MIN_PEAK_SNR
        x, y, snr, labels = x[significant], y[significant], snr[significant], labels[significant]
        tentative = tentative[significant]
        areas = np.zeros(labels.size)
        if (labels > 0).any():
            areas[labels > 0] = segmentation.get_areas(labels[labels > 0])
        rows.add(x=x, y=y, snr=snr, radius=self._radius(snr, fwhm), label=labels, area=areas,
                 origin="detected", tentative=tentative)
        return segmentation

    def _radius(self, snr, fwhm):
        """Hole rule, never below the hole of a source at the detection threshold."""
        floor = hole_radius(self.snr_threshold, fwhm, k=self.k, margin=self.margin, psf=self.psf)
        return np.maximum(hole_radius(snr, fwhm, k=self.k, margin=self.margin, psf=self.psf),
                          floor)

    def _measured_radius(self, x, y, residual, valid, pixel_noise, fwhm):
        """Peak SNR measured at user positions, and the hole the rule gives them."""
        found = measure_at(residual, valid, y, x, sigma_beam=FWHM_TO_SIGMA * fwhm,
                           max_size_ratio=self.max_size_ratio)
        snr = found.amplitude / pixel_noise[_pixel_index(y, x, residual.shape)]
        return snr, self._radius(snr, fwhm)

    def _add_catalog(self, catalog, image, residual, valid, pixel_noise, fwhm, rows):
        positions = catalog_positions(catalog, image.wcs, image.shape)
        if positions.x.size:
            snr, rule = self._measured_radius(positions.x, positions.y, residual, valid,
                                              pixel_noise, fwhm)
            radius = np.where(np.isfinite(positions.hole_radius), positions.hole_radius, rule)
            rows.add(x=positions.x, y=positions.y, snr=snr, radius=radius,
                     label=np.zeros(snr.size, dtype=int), area=np.zeros(snr.size),
                     origin="catalog")

    def _add_regions(self, regions, image, residual, valid, pixel_noise, fwhm, rows):
        region_mask, areas, points = regions_to_mask(read_regions(regions, "regions"),
                                                     image.wcs, image.shape, "regions")
        user_regions = []
        if points:
            x = np.array([point.center.x for point in points], dtype=float)
            y = np.array([point.center.y for point in points], dtype=float)
            snr, radius = self._measured_radius(x, y, residual, valid, pixel_noise, fwhm)
            # A point off the map keeps its row only if its hole reaches a pixel of the map.
            nearest_y, nearest_x = _pixel_index(y, x, image.shape)
            reaches = np.hypot(y - nearest_y, x - nearest_x) <= radius
            for point in (point for point, kept in zip(points, reaches, strict=True) if not kept):
                warnings.warn(f"regions point {point!r} lies off the map, beyond the reach of its "
                              "hole, and is ignored.", AstropyUserWarning, stacklevel=4)
            x, y, snr, radius = x[reaches], y[reaches], snr[reaches], radius[reaches]
            rows.add(x=x, y=y, snr=snr, radius=radius, label=np.zeros(x.size, dtype=int),
                     area=np.zeros(x.size), origin="region")
            user_regions += [CirclePixelRegion(PixCoord(px, py), pr)
                             for px, py, pr in zip(x, y, radius, strict=True)]
        for region in areas:
            py, px = region_pixels(region, image.shape, "regions")
            centre = getattr(region, "center", None)
            if centre is not None:
                x, y = float(centre.x), float(centre.y)
            else:
                y, x = float(py.mean()), float(px.mean())
            radius = float(np.sqrt(((py - y) ** 2 + (px - x) ** 2).max())) + 0.5
            index = _pixel_index(np.array([y]), np.array([x]), image.shape)
            amplitude = measure_at(residual, valid, index[0].astype(float),
                                   index[1].astype(float), sigma_beam=FWHM_TO_SIGMA * fwhm,
                                   max_size_ratio=self.max_size_ratio).amplitude
            rows.add(x=np.array([x]), y=np.array([y]), snr=amplitude / pixel_noise[index],
                     radius=np.array([radius]), label=np.zeros(1, dtype=int),
                     area=np.array([float(py.size)]), origin="region", draw=False)
            user_regions.append(region)
        return region_mask, user_regions


def _checked_number(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a float, refused unless finite and positive (or zero, if allowed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.ndarray):
        raise TypeError(f"{name} must be a number, not {type(value).__name__} ({value!r}).")
    number = float(value)
    if not (np.isfinite(number) and (number > 0 or (allow_zero and number == 0))):
        bound = ">= 0" if allow_zero else "positive"
        raise ValueError(f"{name} must be {bound} and finite, got {value!r}.")
    return number


def _pixel_index(y: np.ndarray, x: np.ndarray, shape: tuple[int, int]):
    """Index of the pixels holding sub-pixel positions (clipped to the map)."""
    return (np.clip(np.round(y).astype(int), 0, shape[0] - 1),
            np.clip(np.round(x).astype(int), 0, shape[1] - 1))


class _Rows:
    """Columns of the catalogue being built, appended origin by origin."""

    def __init__(self) -> None:
        self.x = np.zeros(0)
        self.y = np.zeros(0)
        self.snr = np.zeros(0)
        self.radius = np.zeros(0)
        self.label = np.zeros(0, dtype=int)
        self.area = np.zeros(0)
        self.origin = np.zeros(0, dtype="U8")
        self.draw = np.zeros(0, dtype=bool)
        self.tentative = np.zeros(0, dtype=bool)

    def add(self, *, x, y, snr, radius, label, area, origin, draw=True, tentative=False):
        n = len(x)
        self.x = np.concatenate([self.x, x])
        self.y = np.concatenate([self.y, y])
        self.snr = np.concatenate([self.snr, snr])
        self.radius = np.concatenate([self.radius, radius])
        self.label = np.concatenate([self.label, label]).astype(int)
        self.area = np.concatenate([self.area, area])
        self.origin = np.concatenate([self.origin, np.full(n, origin, dtype="U8")])
        self.draw = np.concatenate([self.draw, np.full(n, draw)])
        self.tentative = np.concatenate([self.tentative, np.broadcast_to(tentative, n)])


def _extend_into_gaps(residual: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """
    Give pixels without coverage the value of their nearest covered pixel.

    A step down to zero at a ragged coverage edge would curve like a row of
    compact sources; extending the map outwards leaves only ridges
    perpendicular to the edge, which the compactness test rejects.
    """
    if valid.all():
        return residual
    nearest = ndimage.distance_transform_cdt(~valid, metric="chessboard", return_distances=False,
                                             return_indices=True)
    return residual[tuple(nearest)]


def _fill_invalid(error: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The error map, with its median where there is no coverage and a floor above zero."""
    median = float(np.median(error[valid]))
    floor = 1e-6 * median if median > 0 else np.finfo(float).tiny
    return np.maximum(np.where(valid, error, median), floor)


def _add_mask_components(user_mask: np.ndarray, rows: _Rows) -> None:
    """One ``'mask'`` row per connected region of the input's own mask."""
    labels, n_components = ndimage.label(user_mask)
    if not n_components:
        return
    index = np.arange(1, n_components + 1)
    centres = np.array(ndimage.center_of_mass(user_mask, labels, index)).reshape(-1, 2)
    areas = ndimage.sum_labels(user_mask, labels, index)
    radius = np.zeros(n_components)
    for number, box in enumerate(ndimage.find_objects(labels)):
        py, px = np.nonzero(labels[box] == number + 1)
        distance2 = (py + box[0].start - centres[number, 0]) ** 2 + (
            px + box[1].start - centres[number, 1]) ** 2
        radius[number] = np.sqrt(distance2.max()) + 0.5
    rows.add(x=centres[:, 1], y=centres[:, 0], snr=np.full(n_components, np.nan),
             radius=radius, label=np.zeros(n_components, dtype=int), area=areas,
             origin="mask", draw=False)


def _reaches_beyond(y: float, x: float, radius: float, shape: tuple[int, int]) -> bool:
    """Whether a disk holds a pixel centre outside the map (the map's border cuts it)."""
    row, col = float(np.round(y)), float(np.round(x))
    # Nearest rows and columns of pixel centres outside the map, on either side.
    outside_rows = (min(row, -1.0), max(row, float(shape[0])))
    outside_cols = (min(col, -1.0), max(col, float(shape[1])))
    nearest2 = min(min((y - r) ** 2 for r in outside_rows) + (x - col) ** 2,
                   min((x - c) ** 2 for c in outside_cols) + (y - row) ** 2)
    return nearest2 <= radius**2


def _flags(rows: _Rows, holes: np.ndarray, valid: np.ndarray, clipped: np.ndarray) -> np.ndarray:
    """EDGE, MERGED and PROTECTED bits per row, from each hole's bounding box; TENTATIVE."""
    flags = np.zeros(rows.x.size, dtype=np.int32)
    if not rows.x.size:
        return flags
    groups, _ = ndimage.label(holes)
    shape = holes.shape
    group_of_row = np.zeros(rows.x.size, dtype=int)
    for index, (x, y, radius) in enumerate(zip(rows.x, rows.y, rows.radius, strict=True)):
        # Beyond the map's border there is no coverage either.
        if _reaches_beyond(y, x, radius, shape):
            flags[index] |= FLAG_EDGE
        box, distance2 = _disk_box(y, x, radius, shape)
        if box is None:
            continue
        disk = distance2 <= radius**2
        if (disk & ~valid[box]).any():
            flags[index] |= FLAG_EDGE
        if (disk & clipped[box]).any():
            flags[index] |= FLAG_PROTECTED
        inside = groups[box][disk & holes[box]]
        group_of_row[index] = np.bincount(inside).argmax() if inside.size else 0
    with_group = group_of_row > 0
    counts = np.bincount(group_of_row[with_group], minlength=groups.max() + 1)
    flags[with_group & (counts[group_of_row] > 1)] |= FLAG_MERGED
    flags[rows.tentative] |= FLAG_TENTATIVE
    return flags


def _warn_protected_user_holes(rows: _Rows, flags: np.ndarray) -> None:
    user = (rows.origin != "detected") & ((flags & FLAG_PROTECTED) > 0)
    if user.any():
        warnings.warn(
            f"{int(user.sum())} user-given holes overlap protect= regions; the protected "
            "pixels were left unmasked (rows flagged FLAG_PROTECTED).",
            AstropyUserWarning,
            stacklevel=3,
        )


def build_source_mask(
    image: ImageInput | Any,
    fwhm_pixels: float | u.Quantity,
    *,
    snr_threshold: float = 5.0,
    detect: bool = True,
    catalog: Table | SkyCoord | None = None,
    regions: RegionsInput | None = None,
    protect: RegionsInput | None = None,
    margin: float | None = None,
    dilate: int = 1,
    k: float = 1.0,
    max_size_ratio: float = 1.3,
    min_curvature_snr: float = 2.0,
    local_structure: bool = True,
    structure_box: float = 4.0,
    deblend: bool = True,
    segment_reach: float = 1.5,
    psf: np.ndarray | None = None,
    origin: tuple[int, int] = (0, 0),
) -> SourceMask:
    """
    Holes around the compact sources of an image (function form of `SourceMasker`).

    Parameters
    ----------
    image : `~nemesis_bkg.io.ImageInput` or anything `~nemesis_bkg.io.read_image` accepts
        The map; its ``mask`` pixels become holes too. Not modified.
    fwhm_pixels : float or `~astropy.units.Quantity`
        Beam FWHM: pixels, or an angle (needs the image's WCS).
    snr_threshold, margin, dilate, k, max_size_ratio, min_curvature_snr, local_structure, \
structure_box, deblend, segment_reach, psf
        See `SourceMasker`.
    detect, catalog, regions, protect, origin
        See `SourceMasker.__call__`.

    Returns
    -------
    `~nemesis_bkg.masking.SourceMask`

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.io import read_image
    >>> from nemesis_bkg.masking import build_source_mask
    >>> y, x = np.mgrid[:96, :96]
    >>> data = 30 * np.exp(-((x - 60) ** 2 + (y - 30) ** 2) / (2 * 1.3**2))
    >>> data = data + np.random.default_rng(3).normal(size=data.shape)
    >>> holes = build_source_mask(read_image(data), 3.0)
    >>> holes.catalog["origin"].tolist(), bool(holes.mask[30, 60])
    (['detected'], True)
    """
    masker = SourceMasker(snr_threshold=snr_threshold, k=k, margin=margin, dilate=dilate,
                          max_size_ratio=max_size_ratio, min_curvature_snr=min_curvature_snr,
                          local_structure=local_structure, structure_box=structure_box,
                          deblend=deblend, segment_reach=segment_reach, psf=psf)
    return masker(image, fwhm_pixels, detect=detect, catalog=catalog, regions=regions,
                  protect=protect, origin=origin)
