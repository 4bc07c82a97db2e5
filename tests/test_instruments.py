import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io.fits import Header
from astropy.wcs import WCS

from nemesis_bkg.instruments import (
    INSTRUMENTS,
    beam_fwhm_pixels,
    get_instrument,
    instrument_from_header,
    resolve_beam,
)


def celestial_wcs(pixel_arcsec):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-pixel_arcsec / 3600, pixel_arcsec / 3600]
    wcs.wcs.crval = [83.8, -5.4]
    return wcs


def test_table_has_six_bands_with_angles():
    assert sorted(INSTRUMENTS) == sorted(
        ["pacs70", "pacs100", "pacs160", "spire250", "spire350", "spire500"]
    )
    for inst in INSTRUMENTS.values():
        assert inst.beam_fwhm.unit.physical_type == "angle"
        assert 1.5 <= inst.pixels_per_beam <= 5.0


@pytest.mark.parametrize(
    ("name", "expected"),
    [("PACS 160", "pacs160"), ("spire_250", "spire250"), ("PSW", "spire250"), ("red", "pacs160"),
     ("SPIRE500um", "spire500")],
)
def test_get_instrument_aliases(name, expected):
    assert get_instrument(name).name == expected


def test_get_instrument_unknown_says_what_to_do():
    with pytest.raises(ValueError, match="beam_fwhm"):
        get_instrument("scuba850")


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        ({"INSTRUME": "PACS", "WAVELNTH": 70.0}, "pacs70"),
        ({"INSTRUME": "PACS", "FILTER": "green"}, "pacs100"),
        ({"INSTRUME": "PACS", "FILTER": "RED"}, "pacs160"),
        ({"INSTRUME": "SPIRE", "WAVELNTH": 250.0}, "spire250"),
        ({"INSTRUME": "SPIRE", "DETECTOR": "PMW"}, "spire350"),
        ({"TELESCOP": "Herschel", "WAVELNTH": 500e-6}, "spire500"),
    ],
)
def test_instrument_from_header(cards, expected):
    assert instrument_from_header(Header(cards)).name == expected


def test_instrument_from_header_unknown_is_none():
    assert instrument_from_header(Header({"INSTRUME": "SCUBA-2", "WAVELNTH": 850.0})) is None
    assert instrument_from_header(None) is None


def test_beam_in_pixels_from_wcs():
    assert beam_fwhm_pixels(18 * u.arcsec, celestial_wcs(6.0)) == pytest.approx(3.0)
    assert beam_fwhm_pixels(4.2) == 4.2
    assert beam_fwhm_pixels(4.2 * u.pix) == 4.2


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, 3 * u.Jy])
def test_beam_in_pixels_rejects_bad(bad):
    with pytest.raises(ValueError):
        beam_fwhm_pixels(bad)


def test_angle_beam_without_wcs_is_an_error():
    with pytest.raises(ValueError, match="no WCS"):
        beam_fwhm_pixels(10 * u.arcsec)


def test_resolve_beam_precedence():
    wcs = celestial_wcs(3.2)
    inst, fwhm = resolve_beam(instrument="pacs160", wcs=wcs)
    assert inst.name == "pacs160" and fwhm == pytest.approx(11.4 / 3.2)
    inst, fwhm = resolve_beam(beam_fwhm=2.5, header=Header({"INSTRUME": "SPIRE", "WAVELNTH": 250}))
    assert inst.name == "generic" and fwhm == 2.5
    inst, fwhm = resolve_beam(header=Header({"INSTRUME": "SPIRE", "WAVELNTH": 250}), wcs=wcs)
    assert inst.name == "spire250" and fwhm == pytest.approx(18.1 / 3.2)


def test_resolve_beam_nothing_known():
    with pytest.raises(ValueError, match="instrument="):
        resolve_beam()
    with pytest.raises(ValueError, match="no celestial WCS"):
        resolve_beam(instrument="spire250")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("SPIRE PSW", "spire250"), ("PACS red", "pacs160"), ("pacs blue", "pacs70"),
     ("250", "spire250"), ("70um", "pacs70"), ("spire 500 micron", "spire500")],
)
def test_get_instrument_takes_family_and_band_names(name, expected):
    assert get_instrument(name).name == expected


@pytest.mark.parametrize("name", ["PACS PSW", "SPIRE red", "0", "pacs"])
def test_get_instrument_rejects_mixed_or_partial_names(name):
    with pytest.raises(ValueError, match="unknown instrument"):
        get_instrument(name)


@pytest.mark.parametrize(
    "cards",
    [
        {"TELESCOP": "Spitzer", "INSTRUME": "MIPS", "BAND": "160"},
        {"TELESCOP": "HST", "FILTER": "red"},
        {"FILTER": "green"},
    ],
)
def test_band_words_of_other_instruments_are_not_herschel(cards):
    # A MIPS 160 um map taken for PACS 160 would get a 11.4" beam instead of ~40".
    assert instrument_from_header(Header(cards)) is None


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        ({"DETECTOR": "PSW"}, "spire250"),
        ({"TELESCOP": "Herschel Space Observatory", "FILTER": "red"}, "pacs160"),
    ],
)
def test_herschel_band_words_still_identify_the_band(cards, expected):
    assert instrument_from_header(Header(cards)).name == expected


@pytest.mark.parametrize("wavelength", [0.0, -250.0])
def test_non_positive_wavelength_is_ignored_quietly(wavelength):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert instrument_from_header(
            Header({"TELESCOP": "Herschel", "WAVELNTH": wavelength})
        ) is None
