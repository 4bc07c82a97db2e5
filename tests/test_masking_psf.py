"""Tests of the hole rule read off a beam image (``psf=``)."""

import numpy as np
import pytest

from nemesis_bkg.masking import SourceMasker, build_source_mask, hole_radius
from nemesis_bkg.masking.holes import LEFTOVER_TOLERANCE, psf_profile
from nemesis_bkg.simulate import simulate_map
from nemesis_bkg.simulate.beams import Beam, gaussian_beam

FWHM_TO_SIGMA = 1 / np.sqrt(8 * np.log(2))


def sidelobe_beam(fwhm):
    return Beam(fwhm=fwhm, sidelobe_level=0.03, n_lobes=3, position_angle=0.7)


def test_profile_of_a_gaussian_is_the_gaussian():
    sigma = FWHM_TO_SIGMA * 3.0
    radius, envelope = psf_profile(4.2 * gaussian_beam(3.0).stamp(0.0, 0.0))
    assert radius[0] == 0 and envelope[0] == 1
    assert radius.max() <= 9  # within the largest circle of the 19x19 stamp
    np.testing.assert_allclose(envelope, np.exp(-radius**2 / (2 * sigma**2)), rtol=1e-12)


@pytest.mark.parametrize("fwhm", [1.5, 1.7, 3.0, 4.3, 8.0])
@pytest.mark.parametrize("k", [1.0, 2.0])
def test_psf_rule_of_a_gaussian_is_the_formula(fwhm, k):
    psf = 7.3 * gaussian_beam(fwhm).stamp(0.0, 0.0)  # any normalisation
    snr = np.concatenate([[-3.0, 0.0, 0.5], np.logspace(np.log10(5 * k), 6, 200)])
    np.testing.assert_allclose(hole_radius(snr, fwhm, k=k, psf=psf),
                               hole_radius(snr, fwhm, k=k), rtol=0, atol=1e-9)


def test_psf_rule_of_a_gaussian_is_the_formula_from_snr_3_for_herschel_beams():
    for fwhm in (1.7, 2.5, 3.2):
        snr = np.logspace(np.log10(3), 5, 100)
        np.testing.assert_allclose(
            hole_radius(snr, fwhm, psf=gaussian_beam(fwhm).stamp(0.0, 0.0)),
            hole_radius(snr, fwhm), rtol=0, atol=1e-9)


def test_sidelobes_give_larger_holes_to_bright_sources():
    fwhm = 3.5
    beam = sidelobe_beam(fwhm)
    snr = np.array([100.0, 1000.0, 1e4])
    gaussian = hole_radius(snr, fwhm)
    with_psf = hole_radius(snr, fwhm, psf=beam.stamp(0.0, 0.0))
    # At SNR >= 100 the 3 % ring stands above the noise: the hole takes it in whole.
    ring_outer_edge = (beam.sidelobe_radius + 0.25) * fwhm
    assert np.all(with_psf > ring_outer_edge)
    assert np.all(with_psf > gaussian + 1.0)


def test_psf_rule_leaves_less_flux_than_the_tolerance():
    fwhm = 3.5
    psf = sidelobe_beam(fwhm).stamp(0.0, 0.0)
    rows, cols = np.indices(psf.shape)
    centre = psf.shape[0] // 2
    distance = np.hypot(rows - centre, cols - centre)
    aperture_noise = np.sqrt(np.pi / (4 * np.log(2))) * fwhm
    for snr in np.logspace(np.log10(5), 4, 40):
        radius = hole_radius(snr, fwhm, psf=psf)
        outside = snr * psf[distance > radius].sum() / psf.max()
        assert outside <= LEFTOVER_TOLERANCE * aperture_noise
    # The Gaussian rule does not: the ring holds ~8 % of the flux.
    radius = hole_radius(20.0, fwhm)
    assert 20.0 * psf[distance > radius].sum() > aperture_noise


def test_elongated_beam_is_covered_along_its_major_axis():
    fwhm, axis_ratio = 3.0, 1.3
    beam = Beam(fwhm=fwhm, axis_ratio=axis_ratio, position_angle=0.4)
    sigma_major = FWHM_TO_SIGMA * fwhm * np.sqrt(axis_ratio)
    snr = np.array([100.0, 1e3, 1e4])
    radius = hole_radius(snr, fwhm, margin=0.0, psf=beam.stamp(0.0, 0.0))
    assert np.all(radius >= sigma_major * np.sqrt(2 * np.log(snr)) - 0.05)
    assert np.all(radius > hole_radius(snr, fwhm, margin=0.0))


def test_psf_rule_grows_with_snr():
    radius = hole_radius(np.logspace(0, 6, 200), 3.0, psf=sidelobe_beam(3.0).stamp(0.0, 0.0))
    assert np.all(np.diff(radius) >= 0)


@pytest.mark.parametrize(
    ("psf", "message"),
    [
        (np.ones(9), "2-D"),
        (np.ones((3, 9, 9)), "2-D"),
        (np.ones((8, 9)), "odd sides"),
        (np.full((9, 9), np.nan), "NaN"),
        (np.zeros((9, 9)), "no positive"),
        (-gaussian_beam(2.0).stamp(0.0, 0.0), "no positive"),
        (np.pad(gaussian_beam(2.0).stamp(0.0, 0.0), ((0, 4), (4, 0))), "middle"),
    ],
)
def test_bad_psf_is_refused(psf, message):
    with pytest.raises(ValueError, match=message):
        hole_radius(10.0, 3.0, psf=psf)
    with pytest.raises(ValueError, match=message):
        SourceMasker(psf=psf)


def test_masker_keeps_its_own_copy_of_the_psf():
    psf = gaussian_beam(3.0).stamp(0.0, 0.0)
    masker = SourceMasker(psf=psf)
    psf[:] = 0.0
    assert masker.psf.max() == 1.0


def test_simulator_beam_as_psf_cuts_larger_holes_around_bright_sources():
    sim = simulate_map((160, 160), instrument="pacs70", regime="cirrus", n_sources=4,
                       snr_range=(300.0, 1000.0), background_contrast=1.0,
                       realistic_beam=True, close_pair_fraction=0.0, nan_border=False, seed=4)
    plain = build_source_mask(sim.data, sim.fwhm_pixels)
    with_psf = build_source_mask(sim.data, sim.fwhm_pixels, psf=sim.beam.stamp(0.0, 0.0))
    # Without the PSF, the lobes of these bright sources come out as companions.
    lobes = []
    for holes in (plain, with_psf):
        distance = np.hypot(holes.catalog["x"][:, None] - sim.catalog["x"][None, :],
                            holes.catalog["y"][:, None] - sim.catalog["y"][None, :]).min(axis=1)
        lobes.append(int(((distance > 0.5 * sim.fwhm_pixels)
                          & (distance < 3 * sim.fwhm_pixels)).sum()))
    assert lobes[1] == 0 < lobes[0]
    for x, y in zip(sim.catalog["x"], sim.catalog["y"], strict=True):
        radii = [holes.catalog["hole_radius"][np.argmin(np.hypot(holes.catalog["x"] - x,
                                                                  holes.catalog["y"] - y))]
                 for holes in (plain, with_psf)]
        assert radii[1] > radii[0]
    # Every pixel where a source stands above the noise, its sidelobes included, is masked.
    above_noise = sim.sources > sim.noise_std
    assert with_psf.mask[above_noise].all()
    assert not plain.mask[above_noise].all()
