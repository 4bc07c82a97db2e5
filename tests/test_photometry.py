import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import CCDData, InverseVariance, NDData, StdDevUncertainty, VarianceUncertainty
from astropy.stats import gaussian_fwhm_to_sigma
from astropy.table import QTable
from astropy.wcs import WCS
from photutils.aperture import CircularAperture

from nemesis_bkg.photometry import (
    gaussian_aperture_correction,
    gaussian_encircled_energy,
    measure_sources,
    pixel_sum_to_flux_density,
)

FWHM = 3.0
# The aperture correction includes the pixelisation of a 3-pixel beam: 0.2 % is left.
REL = 2e-3


def gaussian_map(total, unit, *, wcs=None, noise=0.0, shape=(64, 64), centre=(30.3, 33.7)):
    sigma = FWHM * gaussian_fwhm_to_sigma
    y, x = np.mgrid[: shape[0], : shape[1]]
    image = total / (2 * np.pi * sigma**2) * np.exp(
        -((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * sigma**2)
    )
    image += np.random.default_rng(1).normal(0, noise, shape) if noise else 0
    return CCDData(image, unit=unit, wcs=wcs,
                   uncertainty=StdDevUncertainty(np.full(shape, max(noise, 1e-3))))


def celestial_wcs(pixel_arcsec=6.0):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-pixel_arcsec / 3600, pixel_arcsec / 3600]
    wcs.wcs.crval = [52.0, 31.0]
    wcs.wcs.crpix = [32, 32]
    return wcs


def test_encircled_energy_known_values():
    assert gaussian_encircled_energy(FWHM / 2, FWHM) == pytest.approx(0.5)
    assert gaussian_encircled_energy(FWHM, FWHM) == pytest.approx(1 - 2 ** -4)
    assert gaussian_encircled_energy(0.0, FWHM) == 0.0


def test_jy_per_pixel_flux_recovered_with_aperture_correction():
    ccd = gaussian_map(2.5, "Jy/pix")
    catalog = QTable({"id": [7], "x": [30.3], "y": [33.7]})
    table = measure_sources(ccd, catalog, FWHM)
    assert table["flux"].unit == u.Jy
    assert table["flux"][0].value == pytest.approx(2.5, rel=REL)
    assert table["id"][0] == 7
    raw = measure_sources(ccd, catalog, FWHM, aperture_correction=False)
    assert raw["flux"][0].value == pytest.approx(2.5 * gaussian_aperture_correction(FWHM, FWHM),
                                                 rel=REL)


def test_jy_per_beam_divides_by_beam_area():
    # A point source of S Jy on a Jy/beam map peaks at S: the pixel sum is S * beam area.
    beam_area = 2 * np.pi * (FWHM * gaussian_fwhm_to_sigma) ** 2
    ccd = gaussian_map(1.2 * beam_area, u.Jy / u.beam)
    table = measure_sources(ccd, QTable({"x": [30.3], "y": [33.7]}), FWHM)
    assert table["flux"][0].to_value(u.Jy) == pytest.approx(1.2, rel=REL)


def test_surface_brightness_needs_wcs_and_uses_pixel_area():
    wcs = celestial_wcs(6.0)
    factor = pixel_sum_to_flux_density(CCDData(np.zeros((4, 4)), unit="MJy/sr", wcs=wcs), FWHM)
    pixel_sr = ((6 * u.arcsec) ** 2).to_value(u.sr)
    assert (1 * u.MJy / u.sr * factor).to_value(u.Jy) == pytest.approx(1e6 * pixel_sr, rel=1e-6)
    assert pixel_sum_to_flux_density(CCDData(np.zeros((4, 4)), unit="MJy/sr"), FWHM) is None


def test_errors_follow_the_uncertainty():
    ccd = gaussian_map(2.0, "Jy/pix", noise=0.01)
    table = measure_sources(ccd, QTable({"x": [30.3], "y": [33.7]}), FWHM)
    npix = np.pi * FWHM**2
    expected = 0.01 * np.sqrt(npix) / gaussian_aperture_correction(FWHM, FWHM)
    assert table["flux_err"][0].value == pytest.approx(expected, rel=0.05)


def test_sky_positions_and_bad_inputs():
    wcs = celestial_wcs()
    ccd = gaussian_map(2.0, "Jy/pix", wcs=wcs)
    sky = wcs.pixel_to_world(30.3, 33.7)
    table = measure_sources(ccd, QTable({"sky_centroid": sky.reshape(1)}), FWHM)
    assert table["x"][0] == pytest.approx(30.3)
    with pytest.raises(ValueError, match="x and y"):
        measure_sources(NDData(np.zeros((8, 8))), QTable({"flux": [1.0]}), FWHM)
    with pytest.raises(ValueError, match="positive"):
        measure_sources(ccd, QTable({"x": [1.0], "y": [1.0]}), FWHM, aperture_radius=-1)


def test_empty_catalog_gives_empty_table():
    table = measure_sources(gaussian_map(1.0, "Jy/pix"), QTable({"x": [], "y": []}), FWHM)
    assert len(table) == 0 and "flux" in table.colnames


def test_background_error_is_summed_as_fully_correlated():
    ccd = gaussian_map(2.0, "Jy/pix", noise=0.01)
    background_error = np.full(ccd.shape, 0.002)
    table = measure_sources(ccd, QTable({"x": [30.3], "y": [33.7]}), FWHM,
                            background_error=background_error)
    area = np.pi * FWHM**2
    noise_part = np.sqrt(0.01**2 - 0.002**2) * np.sqrt(area)
    expected = np.hypot(noise_part, 0.002 * area) / gaussian_aperture_correction(FWHM, FWHM)
    assert table["flux_err"][0].value == pytest.approx(expected, rel=0.05)
    with pytest.raises(ValueError, match="must match"):
        measure_sources(ccd, QTable({"x": [30.3], "y": [33.7]}), FWHM,
                        background_error=np.zeros((3, 3)))


def test_any_uncertainty_class_and_unit_gives_the_same_error():
    stddev = gaussian_map(2.0, "Jy/pix", noise=0.01)
    catalog = QTable({"x": [30.3], "y": [33.7]})
    expected = measure_sources(stddev, catalog, FWHM)["flux_err"][0].to_value(u.Jy)
    for uncertainty in (VarianceUncertainty(np.full(stddev.shape, 1e-4)),
                        InverseVariance(np.full(stddev.shape, 1e4)),
                        StdDevUncertainty(np.full(stddev.shape, 10.0), unit="mJy/pix")):
        ccd = CCDData(stddev.data, unit="Jy/pix", uncertainty=uncertainty)
        flux_err = measure_sources(ccd, catalog, FWHM)["flux_err"][0].to_value(u.Jy)
        assert flux_err == pytest.approx(expected)


def test_units_without_a_flux_density_are_the_map_unit_times_pixels():
    catalog = QTable({"x": [30.3], "y": [33.7]})
    no_wcs = measure_sources(gaussian_map(2.0, "MJy/sr"), catalog, FWHM)
    assert no_wcs["flux"].unit == u.MJy / u.sr * u.pix
    plain = measure_sources(NDData(np.ones((64, 64))), catalog, FWHM)
    assert plain["flux"].unit == u.pix
    area = np.pi * FWHM**2
    assert plain["flux"][0].value == pytest.approx(area / plain["aperture_correction"][0], rel=1e-3)


def test_masked_fraction_says_what_the_aperture_missed():
    ccd = gaussian_map(2.0, "Jy/pix")
    mask = np.zeros(ccd.shape, bool)
    mask[:, 31:] = True  # the right half of the aperture, from just right of the centre
    ccd.mask = mask
    catalog = QTable({"x": [30.3, 10.0, -50.0], "y": [33.7, 10.0, 10.0]})
    table = measure_sources(ccd, catalog, FWHM)
    aperture = CircularAperture((30.3, 33.7), FWHM)
    unmasked_area = aperture.area_overlap(ccd.data, mask=mask)
    assert 0.3 < table["masked_fraction"][0] == pytest.approx(1 - unmasked_area / aperture.area)
    assert table["masked_fraction"][1] == pytest.approx(0.0, abs=1e-12)
    assert table["masked_fraction"][2] == 1.0
