"""Photometry of the benchmark on cases with known answers."""

import math

import numpy as np
import pytest

from nemesis_bkg.bench import photometry

FWHM = 4.0


def gaussian_sources(shape, x, y, peaks, fwhm=FWHM):
    sigma = fwhm / math.sqrt(8 * math.log(2))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape)
    for xc, yc, peak in zip(x, y, peaks, strict=True):
        image += peak * np.exp(-((xx - xc) ** 2 + (yy - yc) ** 2) / (2 * sigma**2))
    return image


@pytest.fixture
def sources():
    x, y, peaks = [30.3, 70.8, 45.5], [40.6, 60.1, 80.0], [10.0, 100.0, 3.0]
    image = gaussian_sources((128, 128), x, y, peaks)
    fluxes = np.array(
        [
            gaussian_sources((128, 128), [xc], [yc], [p]).sum()
            for xc, yc, p in zip(x, y, peaks, strict=True)
        ]
    )
    return image, np.array(x), np.array(y), fluxes


def test_aperture_correction_is_a_pixel_smoothed_gaussian():
    assert photometry.aperture_correction(0.0, 3.0) == 0.0
    # Far above the pixel scale the smoothing no longer matters.
    assert photometry.aperture_correction(100.0, 100.0) == pytest.approx(1 - 2**-4, rel=1e-4)
    assert photometry.aperture_correction(3.0, 3.0) < 1 - 2**-4
    with pytest.raises(ValueError):
        photometry.aperture_correction(1.0, 0.0)


@pytest.mark.parametrize("fwhm", [2.5, 3.0, 4.2])
def test_aperture_flux_of_undersampled_sources(fwhm):
    x, y = [20.37, 40.81], [30.52, 22.14]
    image = gaussian_sources((64, 64), x, y, [1.0, 1.0], fwhm=fwhm)
    single = gaussian_sources((64, 64), [x[0]], [y[0]], [1.0], fwhm=fwhm).sum()
    measured = photometry.aperture_fluxes(image, np.array(x), np.array(y), fwhm)
    np.testing.assert_allclose(measured / single, 1.0, atol=0.004)


def test_aperture_flux_of_isolated_sources_is_total_flux(sources):
    image, x, y, fluxes = sources
    measured = photometry.aperture_fluxes(image, x, y, FWHM)
    np.testing.assert_allclose(measured / fluxes, 1.0, atol=0.01)


def test_constant_background_error_gives_the_known_flux_bias(sources):
    image, x, y, fluxes = sources
    offset = 0.2
    measured = photometry.aperture_fluxes(image + offset, x, y, FWHM)
    radius = photometry.APERTURE_RADIUS_FWHM * FWHM
    expected_bias = (
        offset * math.pi * radius**2 / photometry.aperture_correction(radius, FWHM)
    )
    np.testing.assert_allclose(
        measured - photometry.aperture_fluxes(image, x, y, FWHM), expected_bias, rtol=1e-6
    )


def test_nan_in_aperture_gives_nan_flux(sources):
    image, x, y, _ = sources
    image = image.copy()
    image[int(round(y[0])), int(round(x[0]))] = np.nan
    measured = photometry.aperture_fluxes(image, x, y, FWHM)
    assert np.isnan(measured[0]) and np.isfinite(measured[1:]).all()


def test_annulus_photometry_removes_a_plane(sources):
    image, x, y, fluxes = sources
    yy, xx = np.mgrid[:128, :128]
    plane = 50.0 + 0.3 * xx - 0.2 * yy
    measured = photometry.annulus_fluxes(image + plane, x, y, FWHM)
    np.testing.assert_allclose(measured / fluxes, 1.0, atol=0.02)


def test_annulus_photometry_is_biased_on_a_curved_background(sources):
    image, x, y, fluxes = sources
    yy, xx = np.mgrid[:128, :128]
    # A ridge peaking on the first source: the annulus sees less than the aperture.
    ridge = 20.0 * np.exp(-((xx - x[0]) ** 2) / (2 * 6.0**2))
    measured = photometry.annulus_fluxes(image + ridge, x, y, FWHM)
    assert measured[0] > 1.05 * fluxes[0]


def test_measurable_sources_need_covered_annulus():
    coverage = np.ones((100, 100), dtype=bool)
    coverage[:, :20] = False
    x, y = np.array([50.0, 25.0, 95.0]), np.array([50.0, 50.0, 50.0])
    assert photometry.measurable_sources(x, y, 3.0, coverage).tolist() == [True, False, False]


def test_annulus_radii_are_in_beams():
    inner, outer = photometry.ANNULUS_RADII_FWHM
    assert 1.0 < inner < outer


def test_aperture_noise_of_correlated_noise_matches_its_aperture_sums():
    from scipy import ndimage

    rng = np.random.default_rng(8)
    noise = ndimage.gaussian_filter(rng.normal(size=(400, 400)), 2.0)
    noise[:, :40] = np.nan  # an uncovered border is left out of the autocovariance
    kept = np.isfinite(noise)
    x, y = (axis.ravel() for axis in np.meshgrid(np.arange(60.0, 390.0, 11.0),
                                                 np.arange(20.0, 380.0, 11.0)))
    measured = photometry.aperture_fluxes(noise, x, y, FWHM)
    predicted = photometry.aperture_noise_errors(noise, kept, x, y, FWHM)
    assert np.ptp(predicted) < 1e-9 * predicted[0]
    assert np.std(measured) == pytest.approx(predicted[0], rel=0.1)
    white = photometry.aperture_noise_errors(
        None, kept, x[:1], y[:1], FWHM, noise_std=float(np.nanstd(noise))
    )
    assert predicted[0] > 2.5 * white[0]


def test_aperture_noise_counts_only_kept_pixels():
    kept = np.zeros((40, 40), dtype=bool)
    assert photometry.aperture_noise_errors(None, kept, [20.0], [20.0], FWHM, noise_std=1.0) == 0
    with pytest.raises(ValueError, match="noise_std"):
        photometry.aperture_noise_errors(None, ~kept, [20.0], [20.0], FWHM)
