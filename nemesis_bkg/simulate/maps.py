"""
`simulate_map`: a synthetic Herschel-like map with known truth.

The map is background + compact sources + noise:

- background: a lognormal cloud with a power-law spectrum, a filament
  network, a faint cirrus layer and a large-scale gradient (or the band of
  a Galactic plane), all convolved with the beam, or a real map given as
  ``background``;
- sources: beam stamps at drawn positions with peak SNRs in ``snr_range``;
- noise: white plus scan-direction stripes;
- coverage: a rotated, ragged rectangle; NaN outside it.

Truth comes with it: the background, the source-only map, the noise, the
filament mask and a catalogue.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass

import astropy.units as u
import numpy as np
import scipy.fft
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.table import QTable
from astropy.wcs import WCS

from ..instruments import Instrument, beam_fwhm_pixels, get_instrument
from .beams import Beam, gaussian_beam, herschel_like_beam
from .coverage import scan_coverage
from .fields import gaussian_beam_transfer, linear_gradient, power_law_field, power_law_spectrum
from .filaments import filament_mask, filament_network, render_filaments
from .noise import map_noise
from .real_maps import load_real_map, real_background
from .sources import SourceDraw, draw_sources, inject_sources

__all__ = ["REGIMES", "Regime", "SimulatedMap", "simulate_map"]

#: A filament pixel is in the truth mask when the filament component exceeds
#: this many noise sigmas (and the cloud around it, see `simulate_map`).
FILAMENT_MASK_SNR = 3.0


@dataclass(frozen=True)
class Regime:
    """
    Settings of one kind of simulated sky.

    Attributes
    ----------
    contrast : float
        Default std of the background over the noise std.
    slope_range : tuple of float
        Range of the power-spectrum slope of the cloud.
    log_sigma : float
        Std of the log of the lognormal cloud.
    filaments : tuple of int
        Numbers of ridge, crossing and branch filaments for a 512-pixel map
        (scaled with the map size).
    filament_amplitude : tuple of float
        Range of the filament crests relative to the cloud's std.
    cirrus_level : float
        Std of the extra cirrus layer relative to the cloud's std.
    gradient : float
        Amplitude of the large-scale gradient relative to the cloud's std.
    on_filament_fraction : float
        Default share of the sources placed on filament pixels.
    galactic_plane : bool
        Whether the cloud is concentrated in the band of a Galactic plane.
    """

    contrast: float
    slope_range: tuple[float, float]
    log_sigma: float
    filaments: tuple[int, int, int]
    filament_amplitude: tuple[float, float]
    cirrus_level: float
    gradient: float
    on_filament_fraction: float
    galactic_plane: bool = False


#: The regimes `simulate_map` knows.
REGIMES: dict[str, Regime] = {
    # Faint, smooth high-latitude cirrus with a few striations.
    "cirrus": Regime(
        contrast=20.0,
        slope_range=(-3.0, -2.6),
        log_sigma=0.35,
        filaments=(0, 2, 0),
        filament_amplitude=(0.3, 1.0),
        cirrus_level=0.0,
        gradient=0.5,
        on_filament_fraction=0.0,
    ),
    # A bright molecular cloud with a filament network (Gould Belt-like).
    "filamentary": Regime(
        contrast=200.0,
        slope_range=(-3.4, -2.8),
        log_sigma=0.8,
        filaments=(8, 4, 4),
        filament_amplitude=(0.8, 4.0),
        cirrus_level=0.15,
        gradient=0.3,
        on_filament_fraction=0.25,
    ),
    # A bright, crowded stretch of the Galactic plane (Hi-GAL-like).
    "confusion": Regime(
        contrast=300.0,
        slope_range=(-3.0, -2.5),
        log_sigma=1.0,
        filaments=(12, 6, 6),
        filament_amplitude=(0.8, 4.0),
        cirrus_level=0.15,
        gradient=0.3,
        on_filament_fraction=0.3,
        galactic_plane=True,
    ),
}


@dataclass
class SimulatedMap:
    """
    A simulated map and its truth.

    Attributes
    ----------
    data : `~astropy.nddata.CCDData`
        Background + sources + noise, NaN outside coverage, with WCS, unit,
        uncertainty (``noise_std`` everywhere) and a Herschel FITS header.
    background : ndarray
        True background without the added noise, NaN outside coverage (a
        real map given as background keeps its own pixel noise in it).
    sources : ndarray
        Beam-convolved sources only (finite everywhere).
    noise : ndarray
        The noise realisation, NaN outside coverage.
    noise_std : float
        Per-pixel 1-sigma of the added noise.
    filament_mask : ndarray of bool
        Pixels where the filament component dominates (see `simulate_map`).
    coverage : ndarray of bool
        Covered pixels.
    catalog : `~astropy.table.QTable`
        Injected sources: ``id``, ``x``, ``y`` (0-based pixels),
        ``sky_centroid``, ``flux`` (sum of the source's pixels, map unit
        times pixel: Jy for a Jy/pixel map; for a Jy/beam map divide by the
        beam area in pixels to get Jy), ``peak`` (the beam profile's value
        at the centre, map unit), ``peak_snr`` (``peak / noise_std``),
        ``fwhm`` (pixels), ``on_filament``, ``close_pair``.
    fwhm_pixels : float
        Beam FWHM in pixels.
    instrument : `~nemesis_bkg.instruments.Instrument`
    beam : `~nemesis_bkg.simulate.beams.Beam`
        The beam the sources were injected with.
    filaments : ndarray
        The filament component of the background (zeros without filaments);
        finite everywhere, like ``sources``.
    regime : str
    seed : int or None
    """

    data: CCDData
    background: np.ndarray
    sources: np.ndarray
    noise: np.ndarray
    noise_std: float
    filament_mask: np.ndarray
    coverage: np.ndarray
    catalog: QTable
    fwhm_pixels: float
    instrument: Instrument
    beam: Beam
    filaments: np.ndarray
    regime: str
    seed: int | None


def _map_wcs(shape: tuple[int, int], pixel_scale: u.Quantity, rng: np.random.Generator) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    scale = pixel_scale.to_value(u.deg)
    wcs.wcs.cdelt = [-scale, scale]
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    wcs.wcs.crval = [rng.uniform(0.0, 360.0), rng.uniform(-60.0, 60.0)]
    wcs.wcs.radesys = "ICRS"
    return wcs


def _map_header(
    wcs: WCS,
    instrument: Instrument,
    unit: u.UnitBase,
    beam: Beam,
    pixel_scale: u.Quantity,
    noise_std: float,
    regime: str,
    seed: int | None,
) -> fits.Header:
    header = wcs.to_header()
    if instrument.telescope:
        header["TELESCOP"] = (instrument.telescope, "simulated observation")
    if instrument.instrument:
        header["INSTRUME"] = instrument.instrument
    if instrument.wavelength is not None:
        header["WAVELNTH"] = (instrument.wavelength.to_value(u.um), "[um] reference wavelength")
    header["BUNIT"] = unit.to_string()
    # The standard beam keywords (degrees; BPA east of north), read by radio-beam and
    # other astropy-affiliated tools: the injected beam's core.
    major, minor = beam.fwhm * np.sqrt(beam.axis_ratio), beam.fwhm / np.sqrt(beam.axis_ratio)
    header["BMAJ"] = (major * pixel_scale.to_value(u.deg), "[deg] beam major axis FWHM")
    header["BMIN"] = (minor * pixel_scale.to_value(u.deg), "[deg] beam minor axis FWHM")
    # North is +y and east -x (CDELT1 < 0): a pixel angle of 90 deg is PA 0.
    position_angle = (
        (np.degrees(beam.position_angle) - 90.0) % 180.0 if beam.axis_ratio != 1 else 0.0
    )
    header["BPA"] = (position_angle, "[deg] beam position angle, east of north")
    header["BEAMFWHM"] = (beam.fwhm, "[pix] beam FWHM")
    header["NOISESTD"] = (noise_std, "1-sigma per-pixel noise, map unit")
    header["SIMREGIM"] = (regime, "nemesis_bkg.simulate regime")
    if seed is not None:
        header["SIMSEED"] = (seed, "nemesis_bkg.simulate seed")
    return header


def _padded_shape(shape: tuple[int, int], fwhm_pixels: float) -> tuple[int, int]:
    # Pad so the periodic FFT fields and filament wings do not wrap into the map.
    pad = int(max(16, max(shape) / 16, 4 * fwhm_pixels))
    return tuple(scipy.fft.next_fast_len(side + 2 * pad, real=True) for side in shape)


def _simulated_background(
    shape: tuple[int, int],
    rng: np.random.Generator,
    regime: Regime,
    *,
    fwhm_pixels: float,
    slope: float | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Unscaled cloud (+cirrus, gradient), filaments (beam-convolved), widest filament FWHM."""
    padded = _padded_shape(shape, fwhm_pixels)
    top, left = ((p - s) // 2 for p, s in zip(padded, shape, strict=True))
    crop = (slice(top, top + shape[0]), slice(left, left + shape[1]))
    slope = rng.uniform(*regime.slope_range) if slope is None else slope

    guide = power_law_field(padded, slope, rng)
    cloud = np.exp(regime.log_sigma * guide)
    if regime.galactic_plane:
        # Emission concentrated in a Gaussian band (sigma 0.2 map heights) near the x axis.
        angle = rng.normal(0.0, 0.15)
        y, x = np.indices(padded, dtype=float)
        height = (y - padded[0] / 2 + rng.normal(0, 0.1) * shape[0]) * np.cos(angle) - (
            x - padded[1] / 2
        ) * np.sin(angle)
        cloud *= 0.25 + np.exp(-0.5 * (height / (0.2 * shape[0])) ** 2)
    cloud_std = float(cloud.std())
    transfer = gaussian_beam_transfer(padded, fwhm_pixels)
    cloud_spectrum = scipy.fft.rfft2(cloud)
    if regime.cirrus_level:
        cirrus_slope = rng.uniform(-3.0, -2.6)
        cloud_spectrum += (
            regime.cirrus_level * cloud_std * power_law_spectrum(padded, cirrus_slope, rng)
        )
    cloud = scipy.fft.irfft2(cloud_spectrum * transfer, s=padded)[crop]

    size_factor = float(np.clip(max(shape) / 512.0, 0.5, 3.0))
    n_ridge, n_crossing, n_branch = (int(round(n * size_factor)) for n in regime.filaments)
    widths = tuple(fwhm_pixels * np.exp(rng.uniform(0.0, np.log(4.0), 3)))
    network = filament_network(
        padded,
        rng,
        n_ridge=n_ridge,
        n_crossing=n_crossing,
        n_branch=n_branch,
        widths=widths,
        amplitude_range=tuple(cloud_std * a for a in regime.filament_amplitude),
        guide=guide,
    )
    filaments = render_filaments(padded, network, transfer=transfer)[crop]
    gradient = linear_gradient(
        shape, angle=rng.uniform(0.0, 2 * np.pi), amplitude=regime.gradient * cloud_std
    )
    observed_width = float(np.hypot(max(widths), fwhm_pixels))
    return cloud + gradient, filaments, observed_width


def _catalog(
    draw: SourceDraw,
    peak: np.ndarray,
    flux: np.ndarray,
    unit: u.UnitBase,
    fwhm_pixels: float,
    noise_std: float,
    wcs: WCS,
    filament_truth: np.ndarray,
) -> QTable:
    rows = np.clip(np.round(draw.y).astype(int), 0, filament_truth.shape[0] - 1)
    cols = np.clip(np.round(draw.x).astype(int), 0, filament_truth.shape[1] - 1)
    catalog = QTable()
    catalog["id"] = np.arange(1, len(draw.x) + 1)
    catalog["x"] = draw.x
    catalog["y"] = draw.y
    catalog["sky_centroid"] = (
        wcs.pixel_to_world(draw.x, draw.y) if len(draw.x) else SkyCoord([], [], unit="deg")
    )
    catalog["flux"] = flux * unit * u.pix
    catalog["peak"] = peak * unit
    catalog["peak_snr"] = peak / noise_std
    catalog["fwhm"] = np.full(len(draw.x), fwhm_pixels) * u.pix
    catalog["on_filament"] = filament_truth[rows, cols]
    catalog["close_pair"] = draw.close_pair
    return catalog


def _validate_shape(shape) -> tuple[int, int]:
    try:
        ny, nx = (int(side) for side in shape)
        integral = all(side == int(side) for side in shape)
    except (TypeError, ValueError):
        raise TypeError(f"shape must be (ny, nx), two integers, got {shape!r}.") from None
    if not integral:
        raise ValueError(f"shape must be (ny, nx), two whole numbers, got {shape!r}.")
    if ny < 16 or nx < 16:
        raise ValueError(f"shape must be at least (16, 16), got {shape!r}.")
    return ny, nx


def _background_image(background) -> np.ndarray:
    """The pixels of a real background as float64, NaN where missing or masked."""
    if isinstance(background, str | os.PathLike):
        return load_real_map(background)
    if isinstance(background, NDData):
        image = np.array(background.data, dtype=float)
        if background.mask is not None:
            image[np.broadcast_to(np.asarray(background.mask, dtype=bool), image.shape)] = np.nan
        return image
    if isinstance(background, np.ma.MaskedArray):
        return background.astype(float).filled(np.nan)
    return np.asarray(getattr(background, "value", background), dtype=float)


def _validate_options(
    *,
    n_sources,
    seed,
    slope,
    on_filament_fraction,
    background,
) -> None:
    if isinstance(n_sources, bool) or not isinstance(n_sources, numbers.Real):
        raise TypeError(f"n_sources must be a non-negative integer, got {n_sources!r}.")
    if not (np.isfinite(n_sources) and n_sources >= 0 and int(n_sources) == n_sources):
        raise ValueError(f"n_sources must be a non-negative integer, got {n_sources}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(
            f"seed must be an integer or None, got {type(seed).__name__}; "
            "the seed is recorded in the header (SIMSEED)."
        )
    if slope is not None and not (np.isfinite(slope) and slope < 0):
        raise ValueError(f"slope must be negative and finite (e.g. -3.0), got {slope}.")
    if on_filament_fraction is not None and not 0.0 <= on_filament_fraction <= 1.0:
        raise ValueError(
            f"on_filament_fraction must be between 0 and 1, got {on_filament_fraction}."
        )
    if background is not None:
        for name, value in (("slope", slope), ("on_filament_fraction", on_filament_fraction)):
            if value is not None:
                raise ValueError(
                    f"{name} shapes simulated backgrounds only and a real background was "
                    f"given; leave {name} unset."
                )


def simulate_map(
    shape: tuple[int, int] = (512, 512),
    *,
    instrument: str | Instrument = "spire250",
    pixels_per_beam: float | None = None,
    regime: str = "filamentary",
    background: np.ndarray | NDData | str | os.PathLike | None = None,
    background_contrast: float | None = None,
    n_sources: int = 100,
    snr_range: tuple[float, float] = (3.0, 3000.0),
    noise_std: float | u.Quantity = 1.0,
    correlated_noise: float = 0.3,
    nan_border: bool = True,
    realistic_beam: bool = False,
    close_pair_fraction: float = 0.1,
    seed: int | None = 0,
    slope: float | None = None,
    on_filament_fraction: float | None = None,
) -> SimulatedMap:
    """
    Simulate a Herschel-like map with known background, sources and noise.

    Deterministic for a given ``seed``. The beam and pixel scale come from
    `nemesis_bkg.instruments`.

    Parameters
    ----------
    shape : tuple of int, optional
        ``(ny, nx)`` of the map.
    instrument : str or `~nemesis_bkg.instruments.Instrument`, optional
        Band: ``"pacs70"``, ``"pacs100"``, ``"pacs160"``, ``"spire250"``,
        ``"spire350"``, ``"spire500"``, or an `Instrument` with an angular beam.
    pixels_per_beam : float, optional
        Beam FWHM in pixels; the pixel scale becomes ``beam_fwhm / pixels_per_beam``.
        Default: the instrument's typical pixel scale.
    regime : {"cirrus", "filamentary", "confusion"}, optional
        Kind of sky, see `REGIMES`.
    background : ndarray, `~astropy.nddata.NDData`, str or path-like, optional
        A real map (array, masked array, Quantity, NDData or FITS path) used
        as the background instead of a simulated one: rotated by a multiple
        of 90 degrees, flipped, cropped (resampled up if too small), scaled
        to the contrast; its NaNs and masked pixels become uncovered.
        Its unit is ignored: it is rescaled anyway.
    background_contrast : float, optional
        Std of the background over ``noise_std`` (robust std for a real
        background). Default: the regime's (cirrus 20, filamentary 200,
        confusion 300).
    n_sources : int, optional
        Number of compact sources.
    snr_range : tuple of float, optional
        Range of peak SNR (peak over ``noise_std``), drawn with more faint
        than bright sources.
    noise_std : float or `~astropy.units.Quantity`, optional
        1-sigma per-pixel noise, in map units (the instrument's ``bunit``;
        a Quantity is converted to it).
    correlated_noise : float, optional
        Fraction (0 to 1) of the noise variance in 1/f-like scan stripes.
    nan_border : bool, optional
        Cut an irregular NaN border like a real scan map's.
    realistic_beam : bool, optional
        Inject sources with a Herschel-like beam (elongated core, sidelobes)
        instead of a circular Gaussian.
    close_pair_fraction : float, optional
        Fraction (0 to 0.5) of sources placed 1 to 2.5 FWHM from another one.
    seed : int or None, optional
        Seed of the `numpy.random.Generator` (written to the header as SIMSEED).
    slope : float, optional
        Power-spectrum slope of the cloud (negative); default drawn from the
        regime's range. Simulated backgrounds only.
    on_filament_fraction : float, optional
        Share (0 to 1) of the sources (besides close companions) placed on
        filament pixels; default: the regime's (cirrus 0, filamentary 0.25,
        confusion 0.3). The other sources fall uniformly, on filaments or not.
        Simulated backgrounds only.

    Returns
    -------
    `SimulatedMap`

    Raises
    ------
    ValueError
        If an option is out of range (see each one), the map leaves no room
        for sources, or the instrument has no angular beam or pixel scale.
    TypeError
        If ``shape``, ``n_sources`` or ``seed`` is not made of integers.
    astropy.units.UnitConversionError
        If ``noise_std`` is a Quantity not convertible to the map's unit.

    Notes
    -----
    ``filament_mask`` marks the pixels where the beam-convolved filament
    component exceeds ``FILAMENT_MASK_SNR`` (3) times ``noise_std``, lies
    within the half maximum of its crest, and exceeds the rise of the rest
    of the background above its local minimum (see
    `~nemesis_bkg.simulate.filaments.filament_mask`): there the filament
    dominates, so masking such a pixel as a compact source damages a
    filament.

    Sources are centred on covered pixels at least one beam stamp away from
    the map edges, so ``flux`` (the sum of a source's pixels) is its whole
    flux; for a Gaussian beam ``flux = peak * 2 * pi * sigma**2``.

    A real ``background`` carries its own pixel noise (see
    `~nemesis_bkg.simulate.real_maps.real_map_noise`), scaled with it; that
    noise is part of ``background``, not of ``noise``, ``noise_std`` or
    ``peak_snr``. It stays below ``noise_std`` only when
    ``background_contrast`` is below the map's robust std over its own
    noise (the benchmark suite lowers the contrast so).

    The header carries the WCS (TAN, ICRS, CDELT1 < 0), TELESCOP, INSTRUME,
    WAVELNTH, BUNIT, the beam (BMAJ, BMIN, BPA in degrees; BEAMFWHM in
    pixels), NOISESTD, SIMREGIM and SIMSEED.

    Examples
    --------
    >>> from nemesis_bkg.simulate import simulate_map
    >>> sim = simulate_map((128, 128), instrument="pacs160", n_sources=5, seed=1)
    >>> sim.data.shape, len(sim.catalog)
    ((128, 128), 5)
    """
    shape = _validate_shape(shape)
    if not isinstance(regime, str) or regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; use one of {sorted(REGIMES)}.")
    settings = REGIMES[regime]
    if isinstance(noise_std, u.Quantity):
        bunit = get_instrument(instrument).bunit
        noise_std = noise_std.to_value(u.Unit(bunit) if bunit else u.dimensionless_unscaled)
    if not (np.isfinite(noise_std) and noise_std > 0):
        raise ValueError(f"noise_std must be positive and finite, got {noise_std}.")
    contrast = settings.contrast if background_contrast is None else float(background_contrast)
    if not (np.isfinite(contrast) and contrast > 0):
        raise ValueError(
            f"background_contrast must be positive and finite, got {background_contrast}."
        )
    _validate_options(
        n_sources=n_sources,
        seed=seed,
        slope=slope,
        on_filament_fraction=on_filament_fraction,
        background=background,
    )

    rng = np.random.default_rng(seed)
    inst = get_instrument(instrument)
    if inst.beam_fwhm.unit.physical_type != "angle":
        raise ValueError(
            f"instrument {inst.name!r} has no angular beam; give a preset name or an "
            "Instrument whose beam_fwhm is an angle."
        )
    if pixels_per_beam is not None:
        if not (np.isfinite(pixels_per_beam) and pixels_per_beam > 0):
            raise ValueError(f"pixels_per_beam must be positive, got {pixels_per_beam}.")
        pixel_scale = (inst.beam_fwhm / pixels_per_beam).to(u.arcsec)
    elif inst.pixel_scale is not None:
        pixel_scale = inst.pixel_scale
    else:
        raise ValueError(
            f"instrument {inst.name!r} has no typical pixel scale; give pixels_per_beam."
        )
    wcs = _map_wcs(shape, pixel_scale, rng)
    fwhm_pixels = beam_fwhm_pixels(inst.beam_fwhm, wcs)
    unit = u.Unit(inst.bunit) if inst.bunit else u.dimensionless_unscaled

    coverage = scan_coverage(shape, rng) if nan_border else np.ones(shape, dtype=bool)
    if background is None:
        cloud, filaments, filament_width = _simulated_background(
            shape, rng, settings, fwhm_pixels=fwhm_pixels, slope=slope
        )
        scale = contrast * noise_std / float(np.std((cloud + filaments)[coverage]))
        cloud *= scale
        filaments *= scale
        filament_truth = coverage & filament_mask(
            filaments, cloud, threshold=FILAMENT_MASK_SNR * noise_std, width=filament_width
        )
        true_background = cloud + filaments
    else:
        true_background = real_background(
            _background_image(background), shape, rng, target_std=contrast * noise_std
        )
        coverage = coverage & np.isfinite(true_background)
        filaments = np.zeros(shape)
        filament_truth = np.zeros(shape, dtype=bool)

    beam = (
        herschel_like_beam(inst, fwhm_pixels, rng) if realistic_beam else gaussian_beam(fwhm_pixels)
    )
    allowed = np.zeros(shape, dtype=bool)
    edge = beam.stamp_radius
    allowed[edge : shape[0] - edge, edge : shape[1] - edge] = coverage[
        edge : shape[0] - edge, edge : shape[1] - edge
    ]
    if n_sources and not allowed.any():
        raise ValueError(
            f"shape {shape} leaves no room for sources {edge} pixels from the edges; "
            "use a larger shape, n_sources=0, or pixels_per_beam smaller."
        )
    draw = draw_sources(
        rng,
        n_sources=int(n_sources),
        allowed=allowed,
        snr_range=snr_range,
        fwhm_pixels=fwhm_pixels,
        close_pair_fraction=close_pair_fraction,
        preferred=filament_truth,
        preferred_fraction=(
            settings.on_filament_fraction if on_filament_fraction is None else on_filament_fraction
        ),
    )
    peak = draw.peak_snr * noise_std
    source_map, flux = inject_sources(shape, draw.x, draw.y, peak, beam)

    noise = map_noise(
        shape,
        rng,
        noise_std=noise_std,
        correlated_fraction=correlated_noise,
        scan_angle=rng.uniform(0.0, np.pi),
        stripe_width=fwhm_pixels,
    )
    true_background = np.where(coverage, true_background, np.nan)
    noise = np.where(coverage, noise, np.nan)
    header = _map_header(wcs, inst, unit, beam, pixel_scale, noise_std, regime, seed)
    data = CCDData(
        true_background + source_map + noise,
        unit=unit,
        wcs=wcs,
        uncertainty=StdDevUncertainty(np.full(shape, float(noise_std))),
        meta=header,
    )
    catalog = _catalog(draw, peak, flux, unit, fwhm_pixels, noise_std, wcs, filament_truth)
    return SimulatedMap(
        data=data,
        background=true_background,
        sources=source_map,
        noise=noise,
        noise_std=float(noise_std),
        filament_mask=filament_truth,
        coverage=coverage,
        catalog=catalog,
        fwhm_pixels=fwhm_pixels,
        instrument=inst,
        beam=beam,
        filaments=filaments,
        regime=regime,
        seed=seed,
    )
