"""Known-answer tests of the benchmark's metrics."""

import numpy as np
import pytest

from nemesis_bkg.bench import metrics


@pytest.fixture
def field():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(64, 64)).cumsum(axis=0)
    holes = np.zeros(truth.shape, dtype=bool)
    holes[10:20, 30:45] = True
    return truth, holes


def test_perfect_background_scores_zero(field):
    truth, holes = field
    assert metrics.in_hole_rms_error(truth.copy(), truth, holes, 0.3) == 0.0


@pytest.mark.parametrize("offset", [0.05, -2.0, 7.5])
def test_constant_offset_scores_offset_over_noise(field, offset):
    truth, holes = field
    noise = 0.25
    score = metrics.in_hole_rms_error(truth + offset, truth, holes, noise)
    assert score == pytest.approx(abs(offset) / noise, rel=1e-12)


def test_in_hole_error_ignores_pixels_outside_holes_and_nan(field):
    truth, holes = field
    background = truth.copy()
    background[~holes] += 100.0
    background[12, 33] = np.nan
    background[holes & (np.arange(64)[None, :] > 40)] += 1.0
    inside = holes.copy()
    inside[12, 33] = False
    expected = np.sqrt(np.mean((background - truth)[inside] ** 2))
    assert metrics.in_hole_rms_error(background, truth, holes, 1.0) == pytest.approx(expected)


def test_in_hole_error_without_finite_pixels_is_nan(field):
    truth, holes = field
    assert np.isnan(metrics.in_hole_rms_error(np.full(truth.shape, np.nan), truth, holes, 1.0))


def test_in_hole_error_rejects_bad_noise(field):
    truth, holes = field
    with pytest.raises(ValueError, match="noise_std"):
        metrics.in_hole_rms_error(truth, truth, holes, 0.0)


def test_known_flux_bias_is_recovered_per_bin():
    rng = np.random.default_rng(0)
    true = 10 ** rng.uniform(0, 3, 4000)
    snr = 10 ** rng.uniform(0.5, 3.5, 4000)
    bias, scatter = -0.07, 0.02
    measured = true * (1 + bias + rng.normal(0, scatter, true.size))
    for entry in metrics.flux_error_by_snr(measured, true, snr):
        assert entry["n"] > 100
        assert entry["median"] == pytest.approx(bias, abs=0.004)
        assert entry["scatter"] == pytest.approx(scatter, rel=0.15)


def test_exact_bias_gives_zero_scatter_and_counts_failures():
    true = np.array([1.0, 2.0, 4.0, 8.0])
    measured = np.array([1.1, 2.2, np.nan, 8.8])
    bins = metrics.flux_error_by_snr(
        measured, true, np.array([5.0, 6.0, 7.0, 50.0]), snr_edges=(3.0, 10.0, 100.0)
    )
    assert [b["n"] for b in bins] == [2, 1]
    assert [b["n_failed"] for b in bins] == [1, 0]
    assert bins[0]["median"] == pytest.approx(0.1)
    assert bins[0]["scatter"] == pytest.approx(0.0, abs=1e-12)


def test_empty_bin_is_nan():
    bins = metrics.error_statistics_by_snr([0.1], [5.0], snr_edges=(3.0, 10.0, 100.0))
    assert bins[1]["n"] == 0 and np.isnan(bins[1]["median"]) and np.isnan(bins[1]["scatter"])


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        metrics.error_statistics_by_snr([0.1, 0.2], [5.0])


def test_relative_flux_error_rejects_zero_truth():
    with pytest.raises(ValueError, match="non-zero"):
        metrics.relative_flux_error([1.0], [0.0])


def test_robust_scatter_of_gaussian_is_sigma():
    values = np.random.default_rng(1).normal(3.0, 0.4, 200_000)
    assert metrics.robust_scatter(values) == pytest.approx(0.4, rel=0.01)


def test_calibration_of_exact_gaussian_errors():
    rng = np.random.default_rng(2)
    sigmas = rng.uniform(0.1, 5.0, 200_000)
    errors = rng.normal(0.0, sigmas)
    assert metrics.calibration_fraction(errors, sigmas) == pytest.approx(0.6827, abs=0.005)


def test_calibration_detects_overconfident_errors():
    rng = np.random.default_rng(2)
    errors = rng.normal(0.0, 1.0, 100_000)
    assert metrics.calibration_fraction(errors, np.full(errors.size, 0.5)) < 0.45


def test_calibration_skips_unusable_sigmas():
    assert metrics.calibration_fraction([0.1, 0.1, 5.0], [1.0, -1.0, np.nan]) == 1.0
    assert np.isnan(metrics.calibration_fraction([0.1], [np.nan]))


def test_calibration_counts_a_claimed_zero_sigma():
    # A zero sigma claims the estimate is exact: wrong there, it is outside 1 sigma,
    # not left out (which would flatter an overconfident error map).
    assert metrics.calibration_fraction([0.1, 0.1], [1.0, 0.0]) == 0.5
    assert metrics.calibration_fraction([0.0], [0.0]) == 1.0


def test_filament_masking_counts_spurious_holes_and_masked_filament():
    holes = np.zeros((20, 20), dtype=bool)
    holes[2:5, 2:5] = True  # around a true source
    holes[10:13, 10:13] = True  # spurious, on the filament
    holes[15:17, 2:4] = True  # spurious, off the filament
    filament = np.zeros((20, 20), dtype=bool)
    filament[:, 11] = True
    stats = metrics.filament_masking(holes, filament, [3.2], [2.8])
    assert stats == {
        "filament_masked_fraction": 3 / 20,
        "n_holes": 3,
        "n_spurious_holes": 2,
        "n_spurious_on_filament": 1,
    }


def test_filament_masking_without_filaments():
    stats = metrics.filament_masking(np.zeros((5, 5), bool), np.zeros((5, 5), bool), [], [])
    assert np.isnan(stats["filament_masked_fraction"]) and stats["n_holes"] == 0


def test_measure_call_reports_exceptions():
    def failing():
        raise RuntimeError("boom")

    measurement = metrics.measure_call(failing)
    assert measurement.value is None
    assert measurement.error == "RuntimeError: boom"
    assert measurement.seconds >= 0


def test_measure_call_sees_a_large_allocation():
    def allocate():
        block = np.ones(8_000_000)  # 61 MiB, touched
        return float(block.sum())

    measurement = metrics.measure_call(allocate)
    assert measurement.value == 8_000_000.0
    if measurement.peak_memory_mb is None:
        pytest.skip("peak memory is not measurable on this platform")
    assert measurement.peak_memory_mb > 50


def test_group_averages_skip_maps_without_holes():
    from nemesis_bkg.bench.summary import band_averaged_ratios

    def entry(band, ours, peer):
        methods = {"ours": {"in_hole_rms_over_noise": ours},
                   "peer": {"in_hole_rms_over_noise": peer}}
        return {"family": "real", "band": band, "holes": {"detected": {"methods": methods}}}

    # A map where nothing was detected has no in-hole figure (NaN): it must not turn the
    # whole group's average into NaN.
    maps = [entry("pacs70", 2.0, 4.0), entry("pacs100", float("nan"), float("nan")),
            entry("pacs160", 3.0, 3.0)]
    averaged = band_averaged_ratios(maps, "detected", ours="ours", peers=["peer"])
    assert averaged["groups"]["real"]["n_maps"] == 2
    assert averaged["ratios"]["peer"]["per_group"]["real"] == pytest.approx(5.0 / 7.0)
