"""Tests of the local background and noise estimates of nemesis_bkg.masking."""

import numpy as np
import pytest

from nemesis_bkg.masking.noise import (
    box_statistics,
    interpolate_boxes,
    local_background,
    local_noise,
    second_difference_noise,
)


def test_box_statistics_resist_positive_sources():
    rng = np.random.default_rng(3)
    data = rng.normal(10.0, 2.0, (128, 128))
    data[::8, ::8] += 500.0  # bright pixels: positive outliers only
    median, noise = box_statistics(data, 32)
    np.testing.assert_allclose(median, 10.0, atol=0.3)
    np.testing.assert_allclose(noise, 2.0, rtol=0.15)


def test_box_statistics_ignore_nan_and_flag_empty_boxes():
    data = np.ones((64, 64))
    data[:32, :32] = np.nan
    median, noise = box_statistics(data, 32)
    assert np.isnan(median[0, 0]) and np.isnan(noise[0, 0])
    np.testing.assert_allclose(median[1:, :].ravel(), 1.0)


def test_interpolation_is_exact_for_linear_maps():
    values = np.add.outer(np.arange(4.0), 2 * np.arange(5.0))
    full = interpolate_boxes(values, 8, (32, 40))
    y, x = np.indices((32, 40), dtype=float)
    expected = (y + 0.5) / 8 - 0.5 + 2 * ((x + 0.5) / 8 - 0.5)
    inner = (slice(4, 28), slice(4, 36))
    np.testing.assert_allclose(full[inner], expected[inner])


def test_local_background_fills_uncovered_regions():
    data = np.full((96, 96), 5.0)
    data[:, :40] = np.nan
    background = local_background(data, 8)
    assert np.all(np.isfinite(background))
    np.testing.assert_allclose(background, 5.0)


def test_all_nan_map_is_an_error():
    with pytest.raises(ValueError, match="cannot estimate the local background"):
        local_background(np.full((32, 32), np.nan), 8)


def test_noise_follows_a_noise_gradient():
    rng = np.random.default_rng(5)
    level = np.repeat(np.linspace(1.0, 4.0, 8), 32)[None, :] * np.ones((256, 1))
    estimate = local_noise(rng.normal(size=(256, 256)) * level, 32, filter_size=1)
    np.testing.assert_allclose(estimate[128, 16::32], np.linspace(1.0, 4.0, 8), rtol=0.15)


def test_second_differences_ignore_smooth_structure():
    rng = np.random.default_rng(6)
    y, x = np.indices((256, 256), dtype=float)
    cloud = 300 * np.exp(-((x - 128) ** 2 + (y - 128) ** 2) / (2 * 40.0**2))
    estimate = second_difference_noise(cloud + rng.normal(0.0, 1.5, cloud.shape), 64)
    np.testing.assert_allclose(estimate, 1.5, rtol=0.12)


def test_box_statistics_of_a_map_narrower_than_a_box():
    # A 20x20 map fills 400 of a 35x35 box's 1225 pixels: under half, yet all it can give.
    rng = np.random.default_rng(7)
    median, noise = box_statistics(rng.normal(3.0, 1.0, (20, 20)), 35)
    assert median.shape == (1, 1)
    assert median[0, 0] == pytest.approx(3.0, abs=0.3) and noise[0, 0] == pytest.approx(1.0,
                                                                                        rel=0.3)


def test_sparse_coverage_error_says_what_to_do():
    data = np.full((64, 64), np.nan)
    data[::4, ::4] = 1.0
    with pytest.raises(ValueError, match="coverage mask, or give a larger map"):
        local_noise(data, 16)
