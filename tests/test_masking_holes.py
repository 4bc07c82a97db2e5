"""Tests of the hole radius rule and the drawing of holes."""

import numpy as np
import pytest

from nemesis_bkg.masking import hole_radius
from nemesis_bkg.masking.holes import default_margin, draw_disks


def test_hole_radius_is_the_formula():
    fwhm = 3.2
    sigma = fwhm / np.sqrt(8 * np.log(2))
    snr = np.array([2.0, 7.5, 40.0, 3000.0])
    expected = sigma * np.sqrt(2 * np.log(snr / 1.5)) + 0.7
    np.testing.assert_allclose(hole_radius(snr, fwhm, k=1.5, margin=0.7), expected)


def test_hole_radius_default_margin_is_half_the_beam():
    assert default_margin(4.0) == 2.0
    assert hole_radius(1.0, 4.0) == pytest.approx(2.0)


def test_hole_radius_grows_with_snr():
    snr = np.logspace(0, 5, 50)
    radius = hole_radius(snr, 3.0)
    assert np.all(np.diff(radius) > 0)


@pytest.mark.parametrize("snr", [0.0, -5.0, 0.3, 1.0])
def test_hole_radius_at_or_below_the_noise_is_the_margin(snr):
    assert hole_radius(snr, 3.0, margin=1.25) == pytest.approx(1.25)


def test_hole_radius_keeps_the_shape():
    assert hole_radius(np.ones((2, 3)) * 10, 3.0).shape == (2, 3)


@pytest.mark.parametrize(
    ("snr", "fwhm", "options"),
    [(np.nan, 3.0, {}), (10.0, 0.0, {}), (10.0, -1.0, {}), (10.0, 3.0, {"k": 0.0}),
     (10.0, 3.0, {"margin": -1.0})],
)
def test_hole_radius_rejects_bad_input(snr, fwhm, options):
    with pytest.raises(ValueError):
        hole_radius(snr, fwhm, **options)


def test_leftover_flux_of_a_gaussian_is_below_the_aperture_noise():
    # The default margin must keep the flux outside the hole below the noise of a
    # beam-sized aperture for all SNRs and the Herschel range of samplings.
    for fwhm in (1.7, 2.5, 3.5, 4.3):
        sigma = fwhm / np.sqrt(8 * np.log(2))
        snr = np.logspace(np.log10(3), 5, 100)
        outside = 2 * np.pi * sigma**2 * snr * np.exp(-hole_radius(snr, fwhm) ** 2
                                                      / (2 * sigma**2))
        assert np.all(outside < np.sqrt(1.133 * fwhm**2))


def test_draw_disks_unites_a_segment_within_reach_only():
    shape = (40, 40)
    centre, radius = np.array([20.0]), np.array([3.0])
    plain, enclosing = draw_disks(shape, centre, centre, radius)
    assert plain.sum() == 29 and enclosing[0] == 3.0
    segments = np.zeros(shape, int)
    segments[20, 15:26] = 7  # an elongated source: its segment reaches 5 pixels
    mask, enclosing = draw_disks(shape, centre, centre, radius, segments=segments,
                                 labels=np.array([7]), dilate=0, segment_reach=2.0)
    assert mask[20, 25] and mask[20, 15] and mask.sum() == plain.sum() + 4
    assert enclosing[0] == pytest.approx(5.0)
    segments[20, 5:35] = 7  # a crest running through the source: not united
    mask, enclosing = draw_disks(shape, centre, centre, radius, segments=segments,
                                 labels=np.array([7]), dilate=0, segment_reach=2.0)
    np.testing.assert_array_equal(mask, plain)
    assert enclosing[0] == 3.0


def test_draw_disks_off_the_map_is_harmless():
    mask, _ = draw_disks((10, 10), np.array([-20.0]), np.array([5.0]), np.array([2.0]))
    assert not mask.any()
