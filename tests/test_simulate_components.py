"""Tests of the parts of nemesis_bkg.simulate: fields, filaments, beams, noise, sources."""

import numpy as np
import pytest

from nemesis_bkg.instruments import get_instrument
from nemesis_bkg.simulate.beams import Beam, gaussian_beam, herschel_like_beam
from nemesis_bkg.simulate.coverage import scan_coverage
from nemesis_bkg.simulate.fields import (
    gaussian_beam_transfer,
    linear_gradient,
    lognormal_field,
    power_law_field,
    power_law_spectrum,
)
from nemesis_bkg.simulate.filaments import (
    Filament,
    filament_mask,
    filament_network,
    plummer_flat_radius,
    render_filaments,
)
from nemesis_bkg.simulate.noise import map_noise, scan_stripes
from nemesis_bkg.simulate.sources import draw_peak_snr, draw_sources, inject_sources


def _radial_slope(field):
    power = np.abs(np.fft.rfft2(field)) ** 2
    k = np.hypot(np.fft.fftfreq(field.shape[0])[:, None], np.fft.rfftfreq(field.shape[1])[None, :])
    edges = np.geomspace(2 / field.shape[0], 0.5, 12)
    bins = np.digitize(k.ravel(), edges)
    k_mean = [k.ravel()[bins == i].mean() for i in range(1, len(edges))]
    power_mean = [power.ravel()[bins == i].mean() for i in range(1, len(edges))]
    return np.polyfit(np.log(k_mean), np.log(power_mean), 1)[0]


@pytest.mark.parametrize("slope", [-2.5, -3.0, -3.5])
def test_power_law_field_has_the_requested_slope(slope):
    field = power_law_field((256, 256), slope, np.random.default_rng(0))
    assert field.mean() == pytest.approx(0.0, abs=1e-12)
    assert field.std() == pytest.approx(1.0)
    assert abs(_radial_slope(field) - slope) < 0.2


def test_lognormal_field_is_positive_with_the_requested_log_spread():
    field = lognormal_field((128, 128), -3.0, np.random.default_rng(1), log_sigma=0.5)
    assert (field > 0).all()
    assert np.log(field).std() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="log_sigma"):
        lognormal_field((16, 16), -3.0, np.random.default_rng(1), log_sigma=-1.0)


def test_beam_transfer_convolves_with_a_unit_area_gaussian():
    image = np.zeros((64, 64))
    image[32, 32] = 1.0
    transfer = gaussian_beam_transfer(image.shape, 4.0)
    smoothed = np.fft.irfft2(np.fft.rfft2(image) * transfer, s=image.shape)
    assert smoothed.sum() == pytest.approx(1.0)
    # Half maximum at half the FWHM from the centre.
    assert smoothed[32, 34] / smoothed[32, 32] == pytest.approx(0.5, rel=1e-3)


def test_linear_gradient_spans_the_amplitude():
    plane = linear_gradient((50, 80), angle=np.pi / 2, amplitude=6.0)
    assert plane[-1, 0] - plane[0, 0] == pytest.approx(6.0 * 49 / 79)
    assert plane.mean() == pytest.approx(0.0, abs=1e-12)


def _truncated_plummer_column(offsets, fwhm, plummer_index, outer_radius):
    """Column profile of a Plummer cylinder tapered like the renderer's, by direct integration."""
    flat_radius = plummer_flat_radius(fwhm, plummer_index)
    along = np.linspace(-outer_radius, outer_radius, 20001)
    radius = np.hypot(np.asarray(offsets, dtype=float)[:, None], along[None, :])
    density = (1 + (radius / flat_radius) ** 2) ** (-plummer_index / 2)
    ramp = np.clip((radius - 0.7 * outer_radius) / (0.3 * outer_radius), 0, 1)
    return (density * np.cos(0.5 * np.pi * ramp) ** 2).sum(axis=1)


@pytest.mark.parametrize("plummer_index", [2.0, 2.6, 3.0])
def test_straight_filament_has_plummer_profile_crest_and_width(plummer_index):
    fwhm, crest = 6.0, 4.0
    spine = np.array([[150.0, -20.0], [150.0, 320.0]])
    filament = Filament(spine, np.array([crest, crest]), fwhm, plummer_index, "crossing")
    row = render_filaments((300, 300), [filament])[150]
    assert row.max() == pytest.approx(crest, rel=0.01)
    offsets = np.array([0, 2, 3, 6, 12, 24])
    column = _truncated_plummer_column(offsets, fwhm, plummer_index, outer_radius=8 * fwhm)
    np.testing.assert_allclose(row[150 + offsets], crest * column / column[0], rtol=0.03, atol=1e-3)
    right = row[150:]
    half_width = np.interp(-crest / 2, -right, np.arange(right.size))
    assert 2 * half_width == pytest.approx(fwhm, rel=0.05)


def test_filament_network_follows_ridges_without_curling():
    rng = np.random.default_rng(3)
    guide = power_law_field((256, 256), -3.2, rng)
    network = filament_network(
        (256, 256),
        rng,
        n_ridge=8,
        n_crossing=4,
        n_branch=3,
        widths=(4.0, 8.0),
        amplitude_range=(1.0, 2.0),
        guide=guide,
    )
    kinds = [filament.kind for filament in network]
    assert kinds.count("ridge") == 8 and kinds.count("crossing") == 4
    assert kinds.count("branch") == 3
    assert {filament.fwhm for filament in network} <= {4.0, 8.0}

    def guide_along(filament):
        cols = np.clip(np.round(filament.spine[:, 0]).astype(int), 0, 255)
        rows = np.clip(np.round(filament.spine[:, 1]).astype(int), 0, 255)
        return guide[rows, cols].mean()

    on_ridges = np.mean([guide_along(f) for f in network if f.kind == "ridge"])
    assert on_ridges > np.quantile(guide, 0.75)
    for filament in network:
        path_length = np.hypot(*np.diff(filament.spine, axis=0).T).sum()
        end_to_end = np.hypot(*(filament.spine[-1] - filament.spine[0]))
        assert end_to_end > 0.5 * path_length


@pytest.mark.parametrize(
    ("counts", "guide", "match"),
    [
        ((2, 0, 0), None, "guide"),
        ((2, 0, 0), np.zeros((32, 32)), "shape"),
        ((0, 0, 2), None, "branches"),
    ],
)
def test_filament_network_rejects_impossible_requests(counts, guide, match):
    n_ridge, n_crossing, n_branch = counts
    with pytest.raises(ValueError, match=match):
        filament_network(
            (64, 64),
            np.random.default_rng(0),
            n_ridge=n_ridge,
            n_crossing=n_crossing,
            n_branch=n_branch,
            widths=(3.0,),
            amplitude_range=(1.0, 2.0),
            guide=guide,
        )


def test_filament_mask_keeps_the_core_where_the_filament_dominates():
    across = np.arange(64) - 32.0
    filament = 20.0 * np.exp(-0.5 * (across / 3.0) ** 2)[None, :] * np.ones((40, 1))
    flat_cloud = np.zeros((40, 64))
    mask = filament_mask(filament, flat_cloud, threshold=3.0, width=7.0)
    assert mask[:, 32].all()
    assert not mask[:, :20].any()
    # A steep cloud rising faster than the filament hides it.
    steep_cloud = np.tile(np.linspace(0.0, 2000.0, 64), (40, 1))
    assert not filament_mask(filament, steep_cloud, threshold=3.0, width=7.0).any()
    # Too faint for the threshold: nothing.
    assert not filament_mask(filament / 10, flat_cloud, threshold=3.0, width=7.0).any()


def test_gaussian_beam_stamp():
    beam = gaussian_beam(3.0)
    assert beam.evaluate(1.5, 0.0) == pytest.approx(0.5)
    stamp = beam.stamp(0.3, -0.2)
    assert stamp.sum() == pytest.approx(beam.gaussian_area, rel=1e-6)
    assert stamp.shape == (2 * beam.stamp_radius + 1,) * 2


def test_herschel_like_beams_are_elongated_with_sidelobes():
    rng = np.random.default_rng(0)
    pacs = herschel_like_beam(get_instrument("pacs100"), 4.0, rng)
    spire = herschel_like_beam(get_instrument("spire250"), 3.0, rng)
    assert pacs.n_lobes == 3 and spire.n_lobes == 0
    for beam in (pacs, spire):
        assert 1.03 <= beam.axis_ratio <= 1.15
        assert beam.evaluate(0.0, 0.0) == pytest.approx(1.0)
        half = beam.fwhm / 2
        along = beam.evaluate(
            half * np.cos(beam.position_angle), half * np.sin(beam.position_angle)
        )
        across = beam.evaluate(
            -half * np.sin(beam.position_angle), half * np.cos(beam.position_angle)
        )
        assert along > 0.5 > across
        assert beam.stamp(0.0, 0.0).sum() > beam.gaussian_area


def test_beam_rejects_bad_shapes():
    with pytest.raises(ValueError, match="fwhm"):
        Beam(fwhm=0.0)
    with pytest.raises(ValueError, match="axis_ratio"):
        Beam(fwhm=3.0, axis_ratio=0.5)


def test_scan_stripes_run_along_the_scan():
    stripes = scan_stripes((128, 128), np.random.default_rng(0), angle=0.0, stripe_width=2.0)
    assert stripes.std() == pytest.approx(1.0)
    along = np.corrcoef(stripes[:, :-1].ravel(), stripes[:, 1:].ravel())[0, 1]
    across = np.corrcoef(stripes[:-2].ravel(), stripes[2:].ravel())[0, 1]
    assert along > 0.5 > across


def test_map_noise_validates_its_levels():
    with pytest.raises(ValueError, match="noise_std"):
        map_noise((32, 32), np.random.default_rng(0), noise_std=0.0)
    with pytest.raises(ValueError, match="correlated_fraction"):
        map_noise((32, 32), np.random.default_rng(0), noise_std=1.0, correlated_fraction=-0.1)


def test_scan_coverage_is_ragged_and_keeps_the_centre():
    covered = scan_coverage((200, 160), np.random.default_rng(4))
    assert covered[50:150, 40:120].all()
    assert not covered.all()
    assert covered.mean() > 0.6


def test_peak_snr_distribution_is_tilted_to_faint_sources():
    rng = np.random.default_rng(0)
    tilted = draw_peak_snr(rng, 5000, (3.0, 3000.0))
    flat = draw_peak_snr(rng, 5000, (3.0, 3000.0), snr_slope=0.0)
    assert tilted.min() >= 3.0 and tilted.max() <= 3000.0
    assert np.median(tilted) < np.median(flat)
    assert np.median(flat) == pytest.approx(np.sqrt(3.0 * 3000.0), rel=0.15)
    with pytest.raises(ValueError, match="snr_range"):
        draw_peak_snr(rng, 3, (0.0, 5.0))


def test_draw_sources_respects_allowed_pixels_and_pairs():
    allowed = np.zeros((100, 100), dtype=bool)
    allowed[20:80, 30:70] = True
    draw = draw_sources(
        np.random.default_rng(2),
        n_sources=200,
        allowed=allowed,
        snr_range=(5.0, 50.0),
        fwhm_pixels=3.0,
        close_pair_fraction=0.2,
    )
    rows, cols = np.round(draw.y).astype(int), np.round(draw.x).astype(int)
    assert allowed[rows, cols].all()
    assert draw.close_pair.sum() >= 40


def test_inject_sources_clips_at_the_edge():
    beam = gaussian_beam(3.0)
    image, flux = inject_sources(
        (40, 40), np.array([20.0, 0.0]), np.array([20.0, 20.0]), np.array([1.0, 1.0]), beam
    )
    assert flux[0] == pytest.approx(beam.gaussian_area, rel=1e-6)
    # Half the beam plus the centre column stays inside the image.
    centre_column = beam.stamp(0.0, 0.0)[:, beam.stamp_radius].sum()
    assert flux[1] == pytest.approx(0.5 * (beam.gaussian_area + centre_column), rel=1e-6)
    assert image.sum() == pytest.approx(flux.sum())


@pytest.mark.parametrize("slope", [0.0, 1.0, np.nan, -np.inf])
def test_power_law_spectrum_needs_a_negative_slope(slope):
    # A rising (or flat) spectrum put infinite power at k = 0, hence NaN fields.
    with pytest.raises(ValueError, match="slope must be negative"):
        power_law_spectrum((32, 32), slope, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"axis_ratio": np.nan}, "axis_ratio"),
        ({"position_angle": np.inf}, "position_angle"),
        ({"sidelobe_level": -0.01}, "sidelobe_level"),
        ({"sidelobe_level": np.nan}, "sidelobe_level"),
        ({"sidelobe_radius": 0.0}, "sidelobe_radius"),
        ({"n_lobes": -3}, "n_lobes"),
        ({"n_lobes": 1.5}, "n_lobes"),
    ],
)
def test_beam_rejects_bad_shape_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Beam(fwhm=3.0, **kwargs)


def test_beam_options_are_keyword_only():
    with pytest.raises(TypeError):
        Beam(3.0, 1.1)


@pytest.mark.parametrize("fraction", [-0.1, 1.5, np.nan])
def test_draw_sources_rejects_a_bad_preferred_fraction(fraction):
    with pytest.raises(ValueError, match="preferred_fraction"):
        draw_sources(
            np.random.default_rng(0),
            n_sources=5,
            allowed=np.ones((32, 32), bool),
            snr_range=(5.0, 50.0),
            fwhm_pixels=3.0,
            preferred=np.ones((32, 32), bool),
            preferred_fraction=fraction,
        )


@pytest.mark.parametrize("snr_range", [(3.0, 4.0, 5.0), 10.0, ("a", "b")])
def test_draw_peak_snr_says_what_snr_range_must_be(snr_range):
    with pytest.raises(ValueError, match="snr_range"):
        draw_peak_snr(np.random.default_rng(0), 3, snr_range)
