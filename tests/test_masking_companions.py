"""Tests of the search for faint companions of bright sources."""

import numpy as np
import pytest

from nemesis_bkg.masking import build_source_mask
from nemesis_bkg.masking.blends import BEAM_EXCESS_FACTOR, MIN_CONTRAST, companion_floor
from nemesis_bkg.masking.holes import beam_excess
from nemesis_bkg.masking.result import FLAG_TENTATIVE
from nemesis_bkg.simulate import simulate_map
from nemesis_bkg.simulate.beams import Beam, gaussian_beam
from nemesis_bkg.simulate.sources import inject_sources

FWHM = 3.5
SIGMA = FWHM / np.sqrt(8 * np.log(2))
SHAPE = (112, 112)


def single_source_map(beam, peak_snr, rng):
    """One source near the middle, seen through ``beam``, on unit white noise."""
    x, y = 56 + rng.uniform(-0.5, 0.5, 1), 56 + rng.uniform(-0.5, 0.5, 1)
    image, _ = inject_sources(SHAPE, x, y, np.array([peak_snr]), beam)
    return image + rng.normal(size=SHAPE)


def lobed_beam():
    return Beam(fwhm=FWHM, axis_ratio=1.15, position_angle=0.5, sidelobe_level=0.03, n_lobes=3)


def test_companion_floor_falls_with_distance_like_the_beam():
    distance = np.linspace(0.0, 3 * FWHM, 50)
    floor = companion_floor(distance, SIGMA)
    assert floor[0] == pytest.approx(MIN_CONTRAST)
    assert np.all(floor <= MIN_CONTRAST)
    assert np.all(np.diff(floor[distance > 2 * SIGMA]) < 0)
    assert floor[-1] < 1e-4 * MIN_CONTRAST


def test_companion_floor_adds_the_beam_excess():
    radius, excess = beam_excess(lobed_beam().stamp(0.0, 0.0), FWHM)
    distance = np.array([1.6 * FWHM])
    with_excess = companion_floor(distance, SIGMA, beam_excess=(radius, excess))
    expected = companion_floor(distance, SIGMA) + BEAM_EXCESS_FACTOR * np.interp(
        distance, radius, excess)
    np.testing.assert_allclose(with_excess, expected)
    assert with_excess[0] > 0.03  # at least the 3 % lobes


@pytest.mark.parametrize("seed", range(4))
def test_faint_companion_one_percent_of_its_neighbour_gets_its_own_hole(seed):
    # A companion of SNR 10 at 1.3-1.9 FWHM from a source of SNR 1000 falls inside the
    # bright source's hole but more than half its flux would spill out of it.
    rng = np.random.default_rng(seed)
    angle, separation = rng.uniform(0, 2 * np.pi), rng.uniform(1.3, 1.9) * FWHM
    x = np.array([56.3, 56.3 + separation * np.cos(angle)])
    y = np.array([55.6, 55.6 + separation * np.sin(angle)])
    image, _ = inject_sources(SHAPE, x, y, np.array([1000.0, 10.0]), gaussian_beam(FWHM))
    catalog = build_source_mask(image + rng.normal(size=SHAPE), FWHM).catalog
    distance = np.hypot(np.asarray(catalog["x"]) - x[1], np.asarray(catalog["y"]) - y[1])
    assert distance.min() < 0.5 * FWHM


@pytest.mark.parametrize("peak_snr", [300.0, 3000.0, 30000.0])
def test_bright_gaussian_source_has_no_spurious_companion(peak_snr):
    rng = np.random.default_rng(int(peak_snr))
    for _ in range(3):
        assert len(build_source_mask(single_source_map(gaussian_beam(FWHM), peak_snr, rng),
                                     FWHM).catalog) == 1


@pytest.mark.parametrize("peak_snr", [300.0, 3000.0, 30000.0])
def test_sidelobes_are_no_companions_when_the_psf_is_given(peak_snr):
    beam = lobed_beam()
    rng = np.random.default_rng(int(peak_snr) + 1)
    for _ in range(3):
        image = single_source_map(beam, peak_snr, rng)
        assert len(build_source_mask(image, FWHM, psf=beam.stamp(0.0, 0.0)).catalog) == 1


@pytest.mark.parametrize("seed", range(6))
def test_noise_next_to_an_over_subtracted_pair_is_at_most_tentative(seed):
    # The first-pass amplitudes of this pair come out ~10 % high; the moat that
    # over-subtraction leaves in the Laplacian lifts noise peaks around it: they may
    # be masked, but only flagged tentative.
    x, y = np.array([44.0, 44.0 + 1.8 * FWHM]), np.array([48.0, 48.0])
    image, _ = inject_sources((96, 96), x, y, np.array([80.0, 60.0]), gaussian_beam(FWHM))
    image += np.random.default_rng(seed).normal(size=image.shape)
    holes = build_source_mask(image, FWHM)
    tentative = (holes.catalog["flags"] & FLAG_TENTATIVE) > 0
    assert (~tentative).sum() == 2
    distance = np.hypot(holes.catalog["x"][:, None] - x, holes.catalog["y"][:, None] - y)
    assert np.all(distance[~tentative].min(axis=1) < 0.5)
    if seed == 0:  # this noise realisation has one such peak, at 1.4 FWHM
        assert tentative.sum() == 1
        row = holes.catalog[tentative][0]
        assert holes.mask[int(round(row["y"])), int(round(row["x"]))]


def test_companions_at_the_edge_of_the_map():
    # Every bump of this cloud is a candidate (local_structure=False): one peaks on the last
    # row of the 256-pixel map, where no parabola can be fitted; it stays on that row
    # (it used to be put on the map's border, y = 255.5, whose rounded pixel is off the map).
    sim = simulate_map((256, 256), instrument="spire250", n_sources=30, seed=3)
    holes = build_source_mask(sim.data, sim.fwhm_pixels, local_structure=False)
    assert holes.catalog["y"].max() == 255
    assert holes.mask[-1].any()
