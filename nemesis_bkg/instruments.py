"""
The one table of instrument facts (Herschel PACS and SPIRE), and the
recognition of an instrument and its beam from a FITS header, a WCS or a
user-given beam.

Every other module asks this one for beams and pixel scales; nothing else
in the package hard-codes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.io.fits import Header
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

__all__ = [
    "INSTRUMENTS",
    "Instrument",
    "beam_fwhm_pixels",
    "get_instrument",
    "instrument_from_header",
    "resolve_beam",
]


@dataclass(frozen=True)
class Instrument:
    """
    Facts about one band of one instrument.

    Parameters
    ----------
    name : str
        Preset name, e.g. ``"pacs160"``; ``"generic"`` for a user-given beam.
    wavelength : `~astropy.units.Quantity` or None
        Reference wavelength of the band.
    beam_fwhm : `~astropy.units.Quantity`
        Nominal beam FWHM (angle), or in pixels for a generic beam.
    pixel_scale : `~astropy.units.Quantity` or None
        Typical pixel scale of archival maps (angle per pixel).
    bunit : str or None
        Usual brightness unit of archival maps.
    telescope, instrument : str or None
        Values of the TELESCOP and INSTRUME header keywords.
    """

    name: str
    wavelength: u.Quantity | None
    beam_fwhm: u.Quantity
    pixel_scale: u.Quantity | None
    bunit: str | None
    telescope: str | None = None
    instrument: str | None = None

    @property
    def pixels_per_beam(self) -> float | None:
        """Nominal beam FWHM in pixels at the typical pixel scale."""
        if self.pixel_scale is None or self.beam_fwhm.unit == u.pix:
            return None
        return float((self.beam_fwhm / self.pixel_scale).decompose())


def _herschel(name, wavelength_um, fwhm_arcsec, pixel_arcsec, bunit, instrument):
    return Instrument(
        name=name,
        wavelength=wavelength_um * u.um,
        beam_fwhm=fwhm_arcsec * u.arcsec,
        pixel_scale=pixel_arcsec * u.arcsec,
        bunit=bunit,
        telescope="Herschel",
        instrument=instrument,
    )


#: Nominal beams and typical pixels of Herschel PACS (scan maps; PACS Observer's
#: Manual v2.5) and SPIRE. The SPIRE FWHMs are the beams as seen on maps with the
#: nominal 6/10/14" pixels: the SPIRE Handbook v3.1 gives 17.6/23.9/35.2" for the
#: beam mapped on 1" pixels, and a square pixel of side p widens a Gaussian to
#: sqrt(FWHM**2 + 0.46 p**2), i.e. 18.1/24.9/36.5".
INSTRUMENTS: dict[str, Instrument] = {
    inst.name: inst
    for inst in (
        _herschel("pacs70", 70.0, 5.6, 1.6, "Jy/pixel", "PACS"),
        _herschel("pacs100", 100.0, 6.8, 1.6, "Jy/pixel", "PACS"),
        _herschel("pacs160", 160.0, 11.4, 3.2, "Jy/pixel", "PACS"),
        _herschel("spire250", 250.0, 18.1, 6.0, "Jy/beam", "SPIRE"),
        _herschel("spire350", 350.0, 25.2, 10.0, "Jy/beam", "SPIRE"),
        _herschel("spire500", 500.0, 36.6, 14.0, "Jy/beam", "SPIRE"),
    )
}

# Header keywords where HIPE and other pipelines name the band.
_BAND_KEYWORDS = ("FILTER", "BAND", "DETECTOR", "ARRAY", "CHANNEL", "TYPE")

# Aliases seen in HIPE products and in the literature.
_BAND_ALIASES = {
    "blue": "pacs70",
    "green": "pacs100",
    "red": "pacs160",
    "psw": "spire250",
    "pmw": "spire350",
    "plw": "spire500",
}

# Band names no other instrument uses: on their own they identify SPIRE.
_SPIRE_ARRAYS = ("psw", "pmw", "plw")


def get_instrument(name: str | Instrument) -> Instrument:
    """
    Return the preset `Instrument` for ``name``.

    Parameters
    ----------
    name : str or `Instrument`
        A preset name (``"pacs70"``, ``"pacs100"``, ``"pacs160"``,
        ``"spire250"``, ``"spire350"``, ``"spire500"``; case, the
        characters ``" _-"`` and a trailing ``"um"`` or ``"micron"`` are
        ignored; HIPE band names such as ``"PSW"`` or ``"red"`` are accepted,
        alone or after the instrument, e.g. ``"SPIRE PSW"``, as are the bare
        wavelengths ``"70"`` to ``"500"``), or an `Instrument`, returned as is.

    Returns
    -------
    `Instrument`

    Raises
    ------
    ValueError
        If the name is not a known preset.

    Examples
    --------
    >>> from nemesis_bkg.instruments import get_instrument
    >>> get_instrument("SPIRE 250").beam_fwhm
    <Quantity 18.1 arcsec>
    >>> get_instrument("PACS red").name
    'pacs160'
    """
    if isinstance(name, Instrument):
        return name
    key = "".join(ch for ch in str(name).lower() if ch not in " _-")
    key = key.replace("um", "").replace("micron", "")
    family = next((family for family in ("pacs", "spire") if key.startswith(family)), "")
    band = key[len(family):]
    alias = _BAND_ALIASES.get(band)
    if alias is not None and alias.startswith(family):
        key = alias
    elif not family:
        # A bare wavelength ("250") names one band: no two bands share one.
        key = next(
            (name for name, inst in INSTRUMENTS.items() if f"{inst.wavelength.value:.0f}" == key),
            key,
        )
    if key not in INSTRUMENTS:
        raise ValueError(
            f"unknown instrument {name!r}; use one of {sorted(INSTRUMENTS)}, "
            "or give the beam directly with beam_fwhm= (an angle such as 18.1 arcsec, or pixels)."
        )
    return INSTRUMENTS[key]


def _header_wavelength_um(header: Header) -> float | None:
    for key in ("WAVELNTH", "WAVELEN", "LAMBDA"):
        if key not in header:
            continue
        try:
            value = float(header[key])
        except (TypeError, ValueError):
            continue
        if not (np.isfinite(value) and value > 0):
            continue
        unit_text = str(header.comments[key]).lower()
        # HIPE writes microns; some pipelines write metres.
        if value < 1e-2 or "[m]" in unit_text:
            value *= 1e6
        return value
    return None


def instrument_from_header(header: Header | None) -> Instrument | None:
    """
    Recognise a Herschel band from a FITS header.

    Looks at INSTRUME, TELESCOP, FILTER, the HIPE keywords (``DETECTOR``,
    ``BAND``, ``ARRAY``, ``CHANNEL``, ``TYPE``) and WAVELNTH. Band names
    (``"red"``) and wavelengths (``"160"``, WAVELNTH) count only when the
    header shows Herschel data (INSTRUME PACS or SPIRE, TELESCOP Herschel,
    or a SPIRE array name such as ``"PSW"``), so that, e.g., a Spitzer MIPS
    160 um map is not taken for PACS 160 um and given its beam.

    Parameters
    ----------
    header : `~astropy.io.fits.Header` or None

    Returns
    -------
    `Instrument` or None
        None when the header does not identify a known band.

    Examples
    --------
    >>> from astropy.io.fits import Header
    >>> from nemesis_bkg.instruments import instrument_from_header
    >>> instrument_from_header(Header({"INSTRUME": "SPIRE", "WAVELNTH": 250.0})).name
    'spire250'
    """
    if header is None:
        return None
    instrume = str(header.get("INSTRUME", "")).upper()
    telescop = str(header.get("TELESCOP", "")).upper()
    band_text = " ".join(str(header.get(key, "")) for key in _BAND_KEYWORDS).lower()
    band_words = band_text.replace("_", " ").replace("um", " ").split()

    family = None
    if "PACS" in instrume or "pacs" in band_words:
        family = "pacs"
    elif "SPIRE" in instrume or "spire" in band_words or set(band_words) & set(_SPIRE_ARRAYS):
        family = "spire"
    if family is None and "HERSCHEL" not in telescop:
        # "red" or "160" alone could be any instrument's band (MIPS 160, IRAS 100, ...).
        return None
    candidates = [
        inst for name, inst in INSTRUMENTS.items() if family is None or name.startswith(family)
    ]

    for word in band_words:
        name = _BAND_ALIASES.get(word)
        if name is not None and INSTRUMENTS[name] in candidates:
            return INSTRUMENTS[name]
        for inst in candidates:
            if word == f"{inst.wavelength.value:.0f}":
                return inst

    wavelength = _header_wavelength_um(header)
    if wavelength is not None:
        best = min(candidates, key=lambda inst: abs(np.log(inst.wavelength.value / wavelength)))
        # Accept only a wavelength within 15 % of the band centre.
        if abs(np.log(best.wavelength.value / wavelength)) < 0.15:
            return best
    return None


def _pixel_scale(wcs: WCS) -> u.Quantity:
    celestial = wcs.celestial
    if celestial.naxis != 2:
        raise ValueError(
            "the WCS has no celestial axes, so an angular beam cannot be turned into pixels; "
            "give beam_fwhm in pixels instead (e.g. beam_fwhm=3.5)."
        )
    scales = proj_plane_pixel_scales(celestial)
    units = [u.Unit(unit) for unit in celestial.wcs.cunit]
    scales = [
        (scale * (unit if unit != u.one else u.deg)).to(u.arcsec)
        for scale, unit in zip(scales, units, strict=True)
    ]
    # Geometric mean: the beam is assumed round, pixels may not be square.
    return np.sqrt(scales[0] * scales[1])


def beam_fwhm_pixels(beam_fwhm: u.Quantity | float, wcs: WCS | None = None) -> float:
    """
    Beam FWHM in pixels.

    Parameters
    ----------
    beam_fwhm : `~astropy.units.Quantity` or float
        An angle (needs ``wcs``), a Quantity in ``u.pix``, or a plain number
        of pixels.
    wcs : `~astropy.wcs.WCS`, optional
        Celestial WCS of the map.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the beam is not positive and finite, is an angle without a WCS
        (or with a WCS that has no celestial axes), or has another unit.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.wcs import WCS
    >>> from nemesis_bkg.instruments import beam_fwhm_pixels
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> wcs.wcs.cdelt = [-6 / 3600, 6 / 3600]
    >>> round(beam_fwhm_pixels(18 * u.arcsec, wcs), 6)
    3.0
    """
    if isinstance(beam_fwhm, u.Quantity):
        if beam_fwhm.unit == u.pix:
            value = float(beam_fwhm.value)
        elif beam_fwhm.unit.physical_type == "angle":
            if wcs is None:
                raise ValueError(
                    f"beam_fwhm={beam_fwhm} is an angle but the map has no WCS; give a WCS "
                    "(wcs=... or an NDData with .wcs) or give beam_fwhm in pixels."
                )
            value = float((beam_fwhm / _pixel_scale(wcs)).decompose())
        else:
            raise ValueError(
                f"beam_fwhm must be an angle or a number of pixels, not {beam_fwhm.unit}."
            )
    else:
        value = float(beam_fwhm)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"beam_fwhm must be positive and finite, got {beam_fwhm!r}.")
    return value


def resolve_beam(
    *,
    instrument: str | Instrument | None = None,
    beam_fwhm: u.Quantity | float | None = None,
    wcs: WCS | None = None,
    header: Header | None = None,
) -> tuple[Instrument, float]:
    """
    Decide the instrument and the beam FWHM in pixels for a map.

    Order of precedence: an explicit ``beam_fwhm``, then an explicit
    ``instrument``, then the instrument recognised from ``header``.

    Parameters
    ----------
    instrument : str or `Instrument`, optional
        A preset name (see `get_instrument`) or an `Instrument`.
    beam_fwhm : `~astropy.units.Quantity` or float, optional
        The beam FWHM: an angle (needs ``wcs``), a Quantity in ``u.pix`` or
        a plain number of pixels. Overrides the instrument's beam.
    wcs : `~astropy.wcs.WCS`, optional
        Celestial WCS of the map, to turn an angular beam into pixels.
    header : `~astropy.io.fits.Header`, optional
        FITS header to recognise the instrument from (`instrument_from_header`)
        when neither ``instrument`` nor ``beam_fwhm`` is given.

    Returns
    -------
    instrument : `Instrument`
        The preset, or a ``"generic"`` instrument carrying the given beam.
    fwhm_pixels : float
        Beam FWHM in pixels of this map.

    Raises
    ------
    ValueError
        When nothing gives the beam, or an angular beam has no celestial WCS
        to be turned into pixels.

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> from nemesis_bkg.instruments import resolve_beam
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> wcs.wcs.cdelt = [-3.2 / 3600, 3.2 / 3600]
    >>> inst, fwhm_pixels = resolve_beam(instrument="pacs160", wcs=wcs)
    >>> inst.name, round(fwhm_pixels, 4)
    ('pacs160', 3.5625)
    >>> resolve_beam(beam_fwhm=2.5)[0].name
    'generic'
    """
    inst = get_instrument(instrument) if instrument is not None else None
    if inst is None and beam_fwhm is None:
        inst = instrument_from_header(header)
    if beam_fwhm is not None:
        fwhm_pix = beam_fwhm_pixels(beam_fwhm, wcs)
        if inst is None:
            quantity = beam_fwhm if isinstance(beam_fwhm, u.Quantity) else beam_fwhm * u.pix
            inst = Instrument("generic", None, quantity, None, None)
        return inst, fwhm_pix
    if inst is None:
        raise ValueError(
            "cannot tell the beam of this map: give instrument= (one of "
            f"{sorted(INSTRUMENTS)}) or beam_fwhm= (an angle, for a map with a WCS, or pixels)."
        )
    if wcs is not None and wcs.has_celestial:
        return inst, beam_fwhm_pixels(inst.beam_fwhm, wcs)
    if inst.pixel_scale is None:
        return inst, beam_fwhm_pixels(inst.beam_fwhm)
    raise ValueError(
        f"the map has no celestial WCS, so the {inst.name} beam ({inst.beam_fwhm}) cannot be "
        "turned into pixels; give a WCS or beam_fwhm in pixels."
    )
