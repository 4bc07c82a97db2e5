"""
Point-spread functions for injected sources: a circular Gaussian of the
band's nominal FWHM, or a Herschel-like beam with a slightly elongated core
and a faint sidelobe ring (three-lobed for PACS, round for SPIRE).

The FWHM always comes from `nemesis_bkg.instruments`; this module only
describes the shape around it.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import numpy as np

from ..instruments import Instrument

__all__ = ["Beam", "gaussian_beam", "herschel_like_beam"]

_FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))


@dataclass(frozen=True)
class Beam:
    """
    A beam profile in pixel units, normalised to 1 at its centre.

    All attributes but ``fwhm`` are keyword-only.

    Attributes
    ----------
    fwhm : float
        Geometric-mean FWHM of the core, pixels.
    axis_ratio : float
        Major over minor FWHM of the elliptical core (1 for a round beam).
    position_angle : float
        Direction of the major axis, radians from the +x axis.
    sidelobe_level : float
        Peak of the sidelobe ring relative to the beam peak (0: none).
    sidelobe_radius : float
        Radius of the sidelobe ring in units of ``fwhm``.
    n_lobes : int
        Azimuthal symmetry of the ring: 0 for a round ring, 3 for the
        tri-lobed PACS pattern.
    """

    fwhm: float
    _: KW_ONLY
    axis_ratio: float = 1.0
    position_angle: float = 0.0
    sidelobe_level: float = 0.0
    sidelobe_radius: float = 1.6
    n_lobes: int = 0

    def __post_init__(self):
        if not (np.isfinite(self.fwhm) and self.fwhm > 0):
            raise ValueError(f"beam fwhm must be a positive number of pixels, got {self.fwhm}.")
        if not (np.isfinite(self.axis_ratio) and self.axis_ratio >= 1):
            raise ValueError(f"axis_ratio is major/minor and must be >= 1, got {self.axis_ratio}.")
        if not np.isfinite(self.position_angle):
            raise ValueError(f"position_angle must be finite, got {self.position_angle}.")
        if not (np.isfinite(self.sidelobe_level) and self.sidelobe_level >= 0):
            raise ValueError(
                f"sidelobe_level must be >= 0 (0: no sidelobes), got {self.sidelobe_level}."
            )
        if not (np.isfinite(self.sidelobe_radius) and self.sidelobe_radius > 0):
            raise ValueError(
                f"sidelobe_radius must be positive (in FWHMs), got {self.sidelobe_radius}."
            )
        if int(self.n_lobes) != self.n_lobes or self.n_lobes < 0:
            raise ValueError(f"n_lobes must be 0 or a positive integer, got {self.n_lobes}.")

    @property
    def is_gaussian(self) -> bool:
        """True for a pure circular Gaussian."""
        return self.axis_ratio == 1.0 and self.sidelobe_level == 0.0

    @property
    def gaussian_area(self) -> float:
        """Area ``2 pi sigma_major sigma_minor`` of the core, pixels."""
        sigma = self.fwhm * _FWHM_TO_SIGMA
        return 2.0 * np.pi * sigma**2

    @property
    def stamp_radius(self) -> int:
        """Half size of a stamp that holds the beam down to far below 1e-6 of its peak."""
        reach = max(3.0, self.sidelobe_radius + 1.2) if self.sidelobe_level else 3.0
        return int(np.ceil(reach * self.fwhm * np.sqrt(self.axis_ratio)))

    def evaluate(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """
        The beam at pixel offsets ``(dx, dy)`` from its centre (1 at the centre).

        Parameters
        ----------
        dx, dy : ndarray
            Offsets in pixels along x and y (broadcastable).

        Returns
        -------
        ndarray

        Examples
        --------
        >>> from nemesis_bkg.simulate.beams import Beam
        >>> float(Beam(fwhm=3.0).evaluate(1.5, 0.0))
        0.5
        """
        dx, dy = np.asarray(dx, dtype=float), np.asarray(dy, dtype=float)
        sigma = self.fwhm * _FWHM_TO_SIGMA
        sigma_major = sigma * np.sqrt(self.axis_ratio)
        sigma_minor = sigma / np.sqrt(self.axis_ratio)
        cos_pa, sin_pa = np.cos(self.position_angle), np.sin(self.position_angle)
        along = dx * cos_pa + dy * sin_pa
        across = -dx * sin_pa + dy * cos_pa
        profile = np.exp(-0.5 * ((along / sigma_major) ** 2 + (across / sigma_minor) ** 2))
        if self.sidelobe_level:
            radius = np.hypot(dx, dy)
            ring = np.exp(
                -0.5 * ((radius - self.sidelobe_radius * self.fwhm) / (0.25 * self.fwhm)) ** 2
            )
            if self.n_lobes:
                azimuth = np.arctan2(dy, dx) - self.position_angle
                ring *= 0.5 * (1.0 + np.cos(self.n_lobes * azimuth))
            profile = profile + self.sidelobe_level * ring
        return profile

    def stamp(self, offset_x: float, offset_y: float) -> np.ndarray:
        """
        Square stamp of the beam centred ``(offset_x, offset_y)`` from its middle pixel.

        Parameters
        ----------
        offset_x, offset_y : float
            Sub-pixel offset of the beam centre from the stamp's central pixel.

        Returns
        -------
        ndarray
            Shape ``(2 * stamp_radius + 1,) * 2``.

        Examples
        --------
        >>> from nemesis_bkg.simulate.beams import Beam
        >>> stamp = Beam(fwhm=3.0).stamp(0.0, 0.0)
        >>> stamp.shape, float(stamp[9, 9])
        ((19, 19), 1.0)
        """
        offsets = np.arange(-self.stamp_radius, self.stamp_radius + 1, dtype=float)
        if self.is_gaussian:
            # Separable: two 1-D profiles instead of a 2-D evaluation.
            sigma = self.fwhm * _FWHM_TO_SIGMA
            along_x = np.exp(-0.5 * ((offsets - offset_x) / sigma) ** 2)
            along_y = np.exp(-0.5 * ((offsets - offset_y) / sigma) ** 2)
            return np.outer(along_y, along_x)
        return self.evaluate(offsets[np.newaxis, :] - offset_x, offsets[:, np.newaxis] - offset_y)


def gaussian_beam(fwhm_pixels: float) -> Beam:
    """
    Circular Gaussian beam.

    Parameters
    ----------
    fwhm_pixels : float
        FWHM in pixels.

    Returns
    -------
    `Beam`

    Examples
    --------
    >>> from nemesis_bkg.simulate.beams import gaussian_beam
    >>> gaussian_beam(3.0).is_gaussian
    True
    """
    return Beam(fwhm=float(fwhm_pixels))


def herschel_like_beam(
    instrument: Instrument, fwhm_pixels: float, rng: np.random.Generator
) -> Beam:
    """
    Beam with the look of a real PACS or SPIRE beam around the nominal FWHM.

    The core is elongated by 3 to 15 % along a random (scan) direction, as
    scan-map beams are; PACS beams get the tri-lobed pattern at a few per
    cent, SPIRE (and other) beams a round first ring at about 1.5 %.

    Parameters
    ----------
    instrument : `~nemesis_bkg.instruments.Instrument`
    fwhm_pixels : float
        Nominal FWHM in pixels (the geometric mean of the core axes).
    rng : `numpy.random.Generator`

    Returns
    -------
    `Beam`

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.instruments import get_instrument
    >>> from nemesis_bkg.simulate.beams import herschel_like_beam
    >>> beam = herschel_like_beam(get_instrument("pacs70"), 3.5, np.random.default_rng(0))
    >>> beam.n_lobes
    3
    """
    is_pacs = (instrument.instrument or "").upper() == "PACS"
    return Beam(
        fwhm=float(fwhm_pixels),
        axis_ratio=float(rng.uniform(1.03, 1.15)),
        position_angle=float(rng.uniform(0.0, np.pi)),
        sidelobe_level=0.03 if is_pacs else 0.015,
        n_lobes=3 if is_pacs else 0,
    )
