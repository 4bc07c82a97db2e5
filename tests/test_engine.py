"""Tests of the engine: normalisation, classical fills, tiling and whole-map inpainting."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from nemesis_bkg.engine import (
    TileScaling,
    biharmonic_fill,
    classical_fill,
    default_batch_size,
    fill,
    fit_generalized_covariance,
    hole_tiles,
    inference,
    inpaint_map,
    kriging_fill,
    tile_scaling,
)
from nemesis_bkg.engine.features import network_inputs, network_outputs
from nemesis_bkg.engine.normalize import power_of_two_exponent
from nemesis_bkg.model import PConvUNet, load_model

torch.set_num_threads(1)


def power_law_map(shape, seed, *, slope=3.0, smoothing=2.0, contrast=50.0):
    """A smoothed Gaussian random field of power-law spectrum plus unit white noise."""
    rng = np.random.default_rng(seed)
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]),
                                      indexing="ij"))
    frequency[0, 0] = 1.0
    amplitude = frequency ** (-slope / 2) * np.exp(-2 * (np.pi * smoothing * frequency) ** 2)
    field = np.fft.ifft2(np.fft.fft2(rng.normal(size=shape)) * amplitude).real
    background = contrast * field / field.std()
    return background, background + rng.normal(size=shape)


def disk_holes(shape, centres, radius):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    holes = np.zeros(shape, bool)
    for row, col in centres:
        holes |= (rows - row) ** 2 + (cols - col) ** 2 <= radius**2
    return holes


@pytest.fixture
def tiny_model():
    """A small untrained network whose output head is not zero (so it matters)."""
    torch.manual_seed(0)
    model = PConvUNet(channels=(4, 8, 8))
    torch.nn.init.normal_(model.head.weight, std=0.1)
    return model.eval()


def test_tile_scaling_is_equivariant():
    rng = np.random.default_rng(0)
    tile = rng.normal(size=(32, 32)) * 5 + 3
    trusted = rng.uniform(size=tile.shape) > 0.2
    scaling = tile_scaling(tile, trusted)
    moved = tile_scaling(2.5 * tile - 40.0, trusted)
    assert np.isclose(moved.offset, 2.5 * scaling.offset - 40.0)
    assert np.isclose(moved.scale, 2.5 * scaling.scale)
    assert np.allclose(moved.normalise(2.5 * tile - 40.0), scaling.normalise(tile))


def test_tile_scaling_ignores_holes_and_flat_tiles():
    tile = np.zeros((16, 16))
    tile[4:8, 4:8] = 1e6  # a source peak in a hole does not set the scale
    holes = tile > 0
    tile += np.random.default_rng(1).normal(size=tile.shape)
    assert tile_scaling(tile, ~holes).scale < 3
    assert tile_scaling(np.ones((16, 16)), np.ones((16, 16), bool)) is None
    assert tile_scaling(np.ones((2, 2)), np.ones((2, 2), bool)) is None
    with pytest.raises(ValueError):
        TileScaling(0.0, 0.0)


def test_fills_reproduce_a_plane_and_touch_only_holes():
    rows, cols = np.mgrid[:48, :48]
    plane = 0.3 * rows - 0.7 * cols + 5
    holes = disk_holes(plane.shape, [(20, 20), (40, 8)], 4)
    data = np.where(holes, np.nan, plane)
    kriged, variance = kriging_fill(data, holes, fwhm_pixels=3.0)
    assert np.allclose(kriged, plane, atol=1e-3)
    assert np.all(variance[~holes] == 0) and np.all(variance[holes] >= 0)
    assert np.allclose(biharmonic_fill(data, holes), plane, atol=1e-6)
    assert np.array_equal(kriged[~holes], plane[~holes])


def test_fills_beat_the_mean_on_a_structured_map():
    background, data = power_law_map((128, 128), 3)
    holes = disk_holes(data.shape, [(30, 30), (60, 90), (100, 50)], 5)
    masked = np.where(holes, np.nan, data)
    reference = np.sqrt(np.mean((background[holes] - np.nanmean(masked)) ** 2))
    for method in ("kriging", "biharmonic"):
        filled, error = classical_fill(masked, holes, fwhm_pixels=4.0, method=method)
        rms = np.sqrt(np.mean((filled - background)[holes] ** 2))
        assert rms < 0.2 * reference
        assert np.all(error[holes] > 0)
    with pytest.raises(ValueError, match="method"):
        classical_fill(masked, holes, fwhm_pixels=4.0, method="nearest")


def test_biharmonic_matches_scikit_image():
    restoration = pytest.importorskip("skimage.restoration")
    _, data = power_law_map((64, 64), 4)
    holes = disk_holes(data.shape, [(32, 32)], 5)
    ours = biharmonic_fill(np.where(holes, np.nan, data), holes)
    theirs = restoration.inpaint_biharmonic(np.where(holes, 0.0, data), holes)
    assert np.allclose(ours[holes], theirs[holes], atol=1e-3 * np.ptp(data))


def test_fills_handle_no_coverage_next_to_holes():
    background, data = power_law_map((64, 64), 5)
    holes = disk_holes(data.shape, [(32, 20)], 5)
    data[:, :18] = np.nan  # the hole touches a no-coverage edge
    masked = np.where(holes, np.nan, data)
    filled, _ = kriging_fill(masked, holes, fwhm_pixels=3.0)
    biharmonic = biharmonic_fill(masked, holes)
    fillable = holes & np.isfinite(background) & (np.arange(64) >= 18)[None, :]
    scale = np.nanstd(background)
    assert np.all(np.abs(filled - background)[fillable] < scale)
    assert np.all(np.abs(biharmonic - background)[fillable] < scale)


def test_covariance_of_white_noise_is_a_nugget():
    noise = np.random.default_rng(6).normal(scale=3.0, size=(64, 64))
    nugget, amplitude, _ = fit_generalized_covariance(noise)
    assert nugget == pytest.approx(9.0, rel=0.1)
    assert amplitude < 0.5


def test_hole_tiles_are_centred_and_grow_with_the_hole():
    holes = np.zeros((200, 200), bool)
    holes[10:14, 10:14] = True  # near the edge: the tile extends beyond the map
    holes[100:170, 60:80] = True  # a large hole gets a larger tile
    tiles = hole_tiles(holes, tile_size=32, multiple=16, margin=8)
    assert len(tiles) == 2
    for component, (row0, col0, rows, cols) in tiles:
        assert rows % 16 == 0 and cols % 16 == 0 and min(rows, cols) >= 32
        hole_rows, hole_cols = np.nonzero(component)
        assert hole_rows.min() >= 8 and hole_rows.max() < rows - 8
        assert hole_cols.min() >= 8 and hole_cols.max() < cols - 8
        assert np.array_equal(holes[hole_rows + row0, hole_cols + col0],
                              np.ones(hole_rows.size, bool))
    assert tiles[1][1][2] >= 70 + 16


@pytest.mark.parametrize("shape", [(50, 70), (129, 33)])
def test_inpaint_map_keeps_pixels_outside_holes_and_nan(shape, tiny_model):
    _, data = power_law_map(shape, 7)
    data = data.astype(np.float32)
    coverage = np.ones(shape, bool)
    coverage[:, :5] = False
    data[~coverage] = np.nan
    holes = disk_holes(shape, [(0, 10), (shape[0] // 2, shape[1] // 2), (shape[0] - 1, 3)], 4)
    original = data.copy()
    background, error = inpaint_map(data, holes, coverage, 3.0, model=tiny_model, device="cpu")
    assert np.array_equal(data, original, equal_nan=True)  # input not modified
    assert background.dtype == data.dtype
    outside = ~holes
    assert np.array_equal(background[outside].view(np.uint32), data[outside].view(np.uint32))
    assert np.all(np.isnan(background[~coverage]))
    assert np.all(error[outside] == 0)
    inside = holes & coverage
    assert np.all(np.isfinite(background[inside])) and np.all(error[inside] > 0)


def test_inpaint_map_is_equivariant(tiny_model):
    _, data = power_law_map((96, 96), 8)
    holes = disk_holes(data.shape, [(30, 40), (70, 70)], 5)
    background, error = inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu")
    moved, moved_error = inpaint_map(4.0 * data - 1e3, holes, None, 3.0, model=tiny_model,
                                     device="cpu")
    assert np.allclose(moved[holes], 4.0 * background[holes] - 1e3, rtol=1e-6,
                       atol=1e-5 * np.ptp(data))
    assert np.allclose(moved_error, 4.0 * error, rtol=1e-5)
    # The network did change the classical fill.
    filled, _ = classical_fill(np.where(holes, np.nan, data), holes, fwhm_pixels=3.0)
    assert not np.allclose(background[holes], filled[holes])


def test_inpaint_map_without_holes_and_bad_input(tiny_model):
    data = np.random.default_rng(9).normal(size=(40, 40))
    no_holes = np.zeros(data.shape, bool)
    background, error = inpaint_map(data, no_holes, None, 2.0, model=tiny_model, device="cpu")
    assert np.array_equal(background, data) and not error.any()
    with pytest.raises(ValueError, match="hole_mask shape"):
        inpaint_map(data, no_holes[:10], None, 2.0, model=tiny_model)
    with pytest.raises(ValueError, match="2-D"):
        inpaint_map(data[0], no_holes[0], None, 2.0, model=tiny_model)
    with pytest.raises(ValueError, match="fwhm_pixels"):
        inpaint_map(data, no_holes, None, -1.0, model=tiny_model)


def test_inpaint_map_warns_outside_the_trained_sampling(tiny_model):
    _, data = power_law_map((64, 64), 10)
    holes = disk_holes(data.shape, [(32, 32)], 6)
    tiny_model.metadata = {"fwhm_pixels_range": "1.5,5.0"}
    with pytest.warns(UserWarning, match="outside the range"):
        inpaint_map(data, holes, None, 9.0, model=tiny_model, device="cpu")
    background, _ = inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu",
                                tile_size=32)
    assert np.all(np.isfinite(background))


def test_covariance_exponent_tells_smooth_from_rough_sky():
    rough, _ = power_law_map((96, 96), 7, slope=2.5, smoothing=0.0)
    smooth, _ = power_law_map((96, 96), 7, slope=3.0, smoothing=3.0)
    _, _, rough_exponent = fit_generalized_covariance(rough, max_lag=8)
    _, _, smooth_exponent = fit_generalized_covariance(smooth, max_lag=8)
    assert rough_exponent < 2 < smooth_exponent


def test_mixed_precision_changes_the_background_by_a_fraction_of_its_error():
    background, data = power_law_map((128, 128), 8)
    holes = disk_holes(data.shape, [(30, 30), (70, 90), (100, 40)], 5)
    model = load_model(device="cpu")
    single, error = inpaint_map(data, holes, None, 3.0, model=model, device="cpu")
    mixed, _ = inpaint_map(data, holes, None, 3.0, model=model, device="cpu",
                           precision="bfloat16")
    assert np.array_equal(mixed[~holes], data[~holes])
    assert np.max(np.abs(mixed - single)[holes] / error[holes]) < 0.1
    assert not np.array_equal(mixed[holes], single[holes])


def test_device_options_are_checked_and_threads_restored(tiny_model):
    _, data = power_law_map((64, 64), 9)
    holes = disk_holes(data.shape, [(32, 32)], 4)
    threads = torch.get_num_threads()
    inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu", n_threads=1,
                batch_size=1)
    assert torch.get_num_threads() == threads
    for options, message in (({"precision": "float8"}, "precision"),
                             ({"precision": "float16"}, "CUDA"),
                             ({"batch_size": 0}, "batch_size"),
                             ({"n_threads": 0}, "n_threads")):
        with pytest.raises(ValueError, match=message):
            inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu", **options)
    assert default_batch_size("cpu", tiny_model, 64 * 64) == inference.CPU_BATCH_SIZE


@pytest.mark.parametrize(("n_holes", "batch_size", "expected"),
                         [(10, 4, [3, 4, 3]), (8, 4, [4, 4]), (3, 16, [3]), (5, 1, [1] * 5)])
def test_tiles_go_through_the_network_in_equal_batches(tiny_model, monkeypatch, n_holes,
                                                      batch_size, expected):
    # As few batches as batch_size allows, of equal sizes: no small last batch.
    _, data = power_law_map((64, 64 * n_holes), 19)
    holes = disk_holes(data.shape, [(32, 32 + 64 * index) for index in range(n_holes)], 3)
    sizes = []
    forward = tiny_model.forward
    monkeypatch.setattr(tiny_model, "forward",
                        lambda inputs, *args, **kwargs: sizes.append(len(inputs))
                        or forward(inputs, *args, **kwargs))
    inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu", batch_size=batch_size)
    assert sizes == expected


def test_biharmonic_solves_each_hole_on_its_own():
    _, data = power_law_map((64, 64), 10)
    first = disk_holes(data.shape, [(30, 24)], 5)
    gap = ndimage.binary_dilation(first, np.ones((3, 3)))
    second = disk_holes(data.shape, [(30, 36)], 5) & ~gap
    assert ndimage.label(first | second, np.ones((3, 3)))[1] == 2
    both = biharmonic_fill(np.where(first | second, np.nan, data), first | second)
    alone = biharmonic_fill(np.where(first | second, np.nan, data), first)
    assert np.allclose(both[first], alone[first], atol=1e-8 * np.ptp(data))


def test_biharmonic_leaves_holes_cut_off_from_data_unfilled():
    # A hole ringed by NaN pixels used to get the regulariser's 0, a value in data units.
    data = np.full((40, 40), 100.0)
    data[10:30, 10:30] = np.nan
    holes = np.zeros(data.shape, bool)
    holes[18:22, 18:22] = True
    holes[2:5, 2:5] = True  # an ordinary hole beside it is still filled
    filled = biharmonic_fill(data, holes)
    assert np.all(np.isnan(filled[18:22, 18:22]))
    assert np.allclose(filled[2:5, 2:5], 100.0)


def test_kriging_ring_of_a_large_hole_is_not_cut_by_the_cutout():
    # The ring around a hole is half its radius wide; for large holes the cutout around
    # the hole (its bounding box grown by 8 pixels at this beam) was narrower than that
    # ring, and held no data here.
    rows, cols = np.mgrid[:120, :120]
    plane = 0.2 * rows - 0.1 * cols + 3.0
    holes = disk_holes(plane.shape, [(60, 60)], 30)
    data = plane.copy()
    data[30 - 8 : 91 + 8, 30 - 8 : 91 + 8] = np.nan
    filled, variance = kriging_fill(data, holes, fwhm_pixels=1.5)
    assert np.allclose(filled[holes], plane[holes], atol=1e-6)
    assert np.all(np.isfinite(variance[holes]))


def test_fills_and_engine_refuse_bad_numbers(tiny_model):
    data = np.ones((32, 32))
    holes = disk_holes(data.shape, [(16, 16)], 3)
    with pytest.raises(ValueError, match="fwhm_pixels"):
        kriging_fill(data, holes, fwhm_pixels=np.nan)
    # Complex maps lost their imaginary part with a mere ComplexWarning.
    with pytest.raises(TypeError, match="real"):
        kriging_fill(data + 1j, holes, fwhm_pixels=2.0)
    with pytest.raises(TypeError, match="real"):
        inpaint_map(data + 1j, holes, None, 2.0, model=tiny_model, device="cpu")


def test_tile_size_is_rounded_up_to_the_network_factor(tiny_model):
    holes = disk_holes((80, 80), [(40, 40)], 3)
    ((_, (_, _, rows, cols)),) = hole_tiles(holes, tile_size=50, multiple=16, margin=4)
    assert (rows, cols) == (64, 64)
    _, data = power_law_map((80, 80), 11)
    background, _ = inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu",
                                tile_size=50)
    assert np.all(np.isfinite(background))


def test_inpaint_map_gives_the_model_back_as_it_was():
    # The network was left in eval mode, which stopped a training run's batch statistics.
    model = PConvUNet(channels=(4, 8)).train()
    _, data = power_law_map((48, 48), 12)
    inpaint_map(data, disk_holes(data.shape, [(24, 24)], 3), None, 3.0, model=model,
                device="cpu")
    assert model.training
    inputs = torch.randn(2, 4, 16, 16)
    model(inputs, torch.ones(2, 1, 16, 16)).sum().backward()  # still trainable


def test_torch_threads_are_restored_when_the_network_fails(tiny_model, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("broken network")

    monkeypatch.setattr(tiny_model, "forward", broken)
    threads = torch.get_num_threads()
    _, data = power_law_map((48, 48), 13)
    with pytest.raises(RuntimeError, match="broken"):
        inpaint_map(data, disk_holes(data.shape, [(24, 24)], 3), None, 3.0, model=tiny_model,
                    device="cpu", n_threads=threads + 1)
    assert torch.get_num_threads() == threads


def test_network_overflow_keeps_the_classical_fill(tiny_model):
    # Beside a region 1e40 times brighter than the noise the float32 inputs overflowed and
    # the hole came back NaN.
    rng = np.random.default_rng(14)
    data = rng.normal(scale=1e-30, size=(64, 64))
    data[:, 44:] = 1e10
    holes = disk_holes(data.shape, [(32, 30)], 2)
    with pytest.warns(RuntimeWarning, match="not finite for 1 hole"):
        background, error = inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu")
    filled, fill_error = classical_fill(np.where(holes, np.nan, data), holes, fwhm_pixels=3.0)
    # Equal up to the last bits that a multi-threaded BLAS may change between two solves.
    np.testing.assert_allclose(background[holes], filled[holes], rtol=1e-9, atol=0)
    np.testing.assert_allclose(error[holes], fill_error[holes], rtol=1e-9, atol=0)


@pytest.mark.parametrize("scale", [2.0**-700, 1e-250, 1e250])
def test_inpaint_map_is_equivariant_at_extreme_magnitudes(tiny_model, scale):
    # Squares and kriging variances overflowed (or underflowed) beyond about 1e154.
    _, data = power_law_map((64, 64), 15)
    holes = disk_holes(data.shape, [(20, 24), (44, 40)], 4)
    background, error = inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu")
    moved, moved_error = inpaint_map(scale * data, holes, None, 3.0, model=tiny_model,
                                     device="cpu")
    assert np.allclose(moved[holes] / scale, background[holes], rtol=0, atol=1e-6)
    assert np.allclose(moved_error[holes] / scale, error[holes], rtol=1e-6)


@pytest.mark.parametrize("outside", [np.nan, 0.0, -1e300, 3e-320])
def test_values_outside_the_coverage_change_nothing(tiny_model, outside):
    # The fills read the covered data only: whatever the uncovered pixels hold (NaN, a
    # sentinel, numbers that would call for rescaling the map), the result is the same.
    _, data = power_law_map((64, 64), 18)
    holes = disk_holes(data.shape, [(24, 18), (40, 44)], 4)  # the first reaches the edge
    coverage = np.ones(data.shape, bool)
    coverage[:, :14] = False
    reference, reference_error = inpaint_map(np.where(coverage, data, np.nan), holes, coverage,
                                             3.0, model=tiny_model, device="cpu")
    background, error = inpaint_map(np.where(coverage, data, outside), holes, coverage, 3.0,
                                    model=tiny_model, device="cpu")
    assert np.array_equal(background[coverage], reference[coverage])
    assert np.array_equal(error, reference_error)


@pytest.mark.parametrize("size", [8, 9, 1000, 1001])
def test_tile_median_is_numpys(size):
    from nemesis_bkg.engine.normalize import _median

    values = np.random.default_rng(size).normal(size=size)
    assert _median(values.copy()) == np.median(values)
    assert _median(np.round(values).copy()) == np.median(np.round(values))  # ties


@pytest.mark.parametrize("runs", [1, 2, 5])
def test_unique_of_sorted_runs_is_numpys(runs):
    rng = np.random.default_rng(runs)
    base = np.sort(rng.choice(10_000, 500, replace=False))
    keys = np.concatenate([base + shift for shift in rng.integers(-50, 50, runs)])
    assert np.array_equal(fill._unique_of_sorted_runs(keys), np.unique(keys))


def test_kriging_by_squared_distance_equals_by_offset(monkeypatch):
    # Holes too large for a table by offset use one by squared distance: the same fill.
    background, data = power_law_map((64, 64), 20)
    holes = disk_holes(data.shape, [(30, 34)], 6)
    masked = np.where(holes, np.nan, data)
    by_offset = kriging_fill(masked, holes, fwhm_pixels=3.0)
    monkeypatch.setattr(fill, "_MAX_OFFSET_TABLE", 0)
    by_squared = kriging_fill(masked, holes, fwhm_pixels=3.0)
    for first, second in zip(by_offset, by_squared, strict=True):
        assert np.array_equal(first, second, equal_nan=True)


def test_kriging_in_chunks_equals_one_solve(monkeypatch):
    # Huge holes are predicted a chunk of pixels at a time (memory); the result is the same.
    background, data = power_law_map((64, 64), 16)
    holes = disk_holes(data.shape, [(30, 34)], 6)
    masked = np.where(holes, np.nan, data)
    whole, whole_variance = kriging_fill(masked, holes, fwhm_pixels=3.0)
    monkeypatch.setattr(fill, "_TARGETS_PER_SOLVE", 7)
    chunked, chunked_variance = kriging_fill(masked, holes, fwhm_pixels=3.0)
    assert np.allclose(chunked, whole, rtol=1e-12, equal_nan=True)
    assert np.allclose(chunked_variance, whole_variance, rtol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_holes_labelled_from_their_pixels_as_ndimage_labels_them(monkeypatch, seed):
    # Sparse holes are labelled from the hole pixels alone: the same labels (numbered in
    # the order of their first pixel) and boxes as ndimage.label and find_objects.
    rng = np.random.default_rng(seed)
    shape = tuple(int(side) for side in rng.integers(1, 90, 2))
    holes = rng.uniform(size=shape) < rng.uniform(0.05, 0.6)
    holes[:, -1] |= seed % 2 == 0  # holes on the last column and wrapping rows
    monkeypatch.setattr(fill, "_SPARSE_HOLES", 1.0)
    labels, boxes = fill._label_holes(holes)
    expected, count = ndimage.label(holes, structure=np.ones((3, 3), bool))
    assert labels.dtype == expected.dtype and np.array_equal(labels, expected)
    assert boxes == ndimage.find_objects(expected) and len(boxes) == count
    monkeypatch.setattr(fill, "_SPARSE_HOLES", 0.0)
    dense_labels, dense_boxes = fill._label_holes(holes)
    assert np.array_equal(dense_labels, expected) and dense_boxes == boxes


def test_no_holes_label_as_none():
    labels, boxes = fill._label_holes(np.zeros((5, 7), bool))
    assert boxes == [] and labels.shape == (5, 7) and not labels.any()


@pytest.mark.parametrize("exponent", [0.7, 1.0, 2.5, 3.9])
@pytest.mark.parametrize("shape", ["compact", "large", "thin"])
def test_offset_covariances_are_those_of_the_distances(monkeypatch, exponent, shape):
    # The kriging looks each covariance up by pixel offset (compact holes), by squared
    # distance (huge holes) or takes each pair's power (long thin holes): the very numbers
    # of sign * cdist(...)**exponent / norm.
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(0)
    if shape == "thin":
        points = np.stack([np.zeros(30, int), np.arange(0, 3000, 100)], axis=1)
        targets = np.stack([np.ones(50, int), np.arange(0, 3000, 60)], axis=1)
    else:
        points, targets = rng.integers(0, 40, (60, 2)), rng.integers(10, 30, (90, 2))
    if shape == "large":
        monkeypatch.setattr(fill, "_MAX_OFFSET_TABLE", 100)
    positions = np.concatenate([points, targets])
    covariance = fill._OffsetCovariance(positions, exponent, 0.0, 60 * 150)
    assert (covariance.by_offset is not None) == (shape == "compact")
    assert (covariance.by_squared is not None) == (shape == "large")
    corner_distance = np.hypot(*np.ptp(positions, axis=0))
    assert covariance.norm == corner_distance**exponent
    sign = fill._covariance_sign(exponent)
    for first, second in ((points, points), (points, targets), (targets, points)):
        expected = (sign / covariance.norm) * cdist(first.astype(float),
                                                    second.astype(float)) ** exponent
        assert np.array_equal(covariance(first, second), expected)


def _kriging_case(seed, exponent, nugget):
    """Conditioning points on a ring around a hole, values of a random field, the hole's pixels."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:32, :32]
    radius = np.hypot(rows - 15.5, cols - 15.5)
    ring = np.flatnonzero((radius > 6) & (radius < 12))
    points = np.column_stack(np.unravel_index(rng.choice(ring, 120, replace=False), (32, 32)))
    targets = np.column_stack(np.nonzero(radius <= 6))
    values = rng.normal(size=len(points)) + 0.3 * points[:, 0]
    return (points.astype(float), values, targets.astype(float),
            {"nugget": nugget, "amplitude": 1.0, "exponent": exponent})


@pytest.mark.parametrize("exponent", [0.3, 1.5, 2.5, 3.9])
@pytest.mark.parametrize("nugget", [0.0, 0.5])
def test_kriging_on_the_drift_free_subspace_equals_the_whole_system(monkeypatch, exponent,
                                                                    nugget):
    # The Cholesky solve of the weights that satisfy the drift constraints gives what an
    # LU of the whole system (covariances, noise, constraints) gives, also where the
    # first declines and the second is used.
    points, values, targets, parameters = _kriging_case(3, exponent, nugget)
    drift_free = fill._drift_free_kriging
    solvers = []
    monkeypatch.setattr(fill, "_drift_free_kriging",
                        lambda *args: solvers.append(drift_free(*args)) or solvers[-1])
    prediction, variance = fill._universal_kriging(points, values, targets, **parameters)
    assert len(solvers) == 1 and solvers[0] is not None
    monkeypatch.setattr(fill, "_drift_free_kriging", lambda *args: None)
    whole_prediction, whole_variance = fill._universal_kriging(points, values, targets,
                                                               **parameters)
    sigma = np.sqrt(whole_variance.max())
    assert np.max(np.abs(prediction - whole_prediction)) < 1e-8 * sigma
    assert np.allclose(variance, whole_variance, rtol=1e-7, atol=1e-9 * sigma**2)
    # A plane through the points is reproduced: the weights satisfy the drift constraints.
    plane = 2.0 + 0.5 * points[:, 0] - 0.25 * points[:, 1]
    plane_prediction, _ = fill._universal_kriging(points, plane, targets, **parameters)
    assert np.allclose(plane_prediction, 2.0 + 0.5 * targets[:, 0] - 0.25 * targets[:, 1],
                       atol=1e-8)


def test_kriging_of_points_on_a_line_declines():
    # A plane is undetermined by points on one line: the caller falls back on the trend.
    points = np.column_stack([np.full(20, 5.0), np.arange(20.0)])
    targets = np.array([[7.0, 3.0], [8.0, 10.0]])
    assert fill._universal_kriging(points, np.ones(20), targets, nugget=0.1, amplitude=1.0,
                                   exponent=1.0) is None


def test_big_endian_and_float32_maps_give_the_native_result(tiny_model):
    _, data = power_law_map((48, 48), 17)
    holes = disk_holes(data.shape, [(24, 24)], 3)
    native, native_error = inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu")
    swapped, swapped_error = inpaint_map(data.astype(">f8"), holes, None, 3.0,
                                         model=tiny_model, device="cpu")
    assert np.array_equal(swapped, native) and np.array_equal(swapped_error, native_error)
    single, _ = inpaint_map(data.astype(">f4"), holes, None, 3.0, model=tiny_model,
                            device="cpu")
    assert single.dtype == np.dtype(">f4")
    assert np.allclose(single[holes], native[holes], rtol=1e-5, atol=1e-4)


class _WholeOutputNetwork(torch.nn.Module):
    """The network run on every pixel of each tile, its output cut to the region afterwards."""

    def __init__(self, network):
        super().__init__()
        self.network = network
        self.metadata = network.metadata
        self.downsampling_factor = network.downsampling_factor

    def forward(self, inputs, coverage, *, region=None):
        outputs = self.network(inputs, coverage)
        return outputs if region is None else outputs[..., region[0], region[1]]


def test_decoding_only_the_holes_gives_the_whole_tile_result(tiny_model):
    _, data = power_law_map((96, 128), seed=8)
    data[:6, :30] = np.nan
    # Holes of different sizes, one against the border and one against the no-coverage corner.
    holes = disk_holes(data.shape, [(40, 40), (70, 100), (3, 60), (8, 20)], 4)
    holes |= disk_holes(data.shape, [(50, 80)], 9)
    background, error = inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu",
                                    tile_size=32)
    whole_background, whole_error = inpaint_map(data, holes, None, 3.0, device="cpu",
                                                model=_WholeOutputNetwork(tiny_model),
                                                tile_size=32)
    assert not np.allclose(background[holes], data[holes])
    np.testing.assert_allclose(background, whole_background, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(error, whole_error, rtol=1e-6, atol=1e-6)


def test_power_of_two_exponent_ignores_non_finite_values():
    assert power_of_two_exponent(np.array([np.inf, -np.inf, np.nan, 3.0])) == 0
    assert power_of_two_exponent(np.array([np.inf, 1e300, np.nan])) == np.frexp(1e300)[1]
    assert power_of_two_exponent(np.array([-1e-300, 1e-310])) == np.frexp(1e-300)[1]
    assert power_of_two_exponent(np.full((3, 3), np.nan)) == 0
    assert power_of_two_exponent(np.array([])) == 0


def test_fills_side_by_side_give_the_sequential_result(tiny_model, monkeypatch):
    # The fills run side by side when torch may use several threads; the network itself
    # keeps one thread here, since its sums depend on their number.
    _, data = power_law_map((96, 96), seed=21)
    holes = disk_holes(data.shape, [(30, 30), (60, 70), (20, 75)], 5)
    one = inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    two = inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu")
    for first, second in zip(one, two, strict=True):
        np.testing.assert_array_equal(first, second)


def test_network_inputs_and_outputs_of_a_stack_equal_those_of_each_tile():
    rng = np.random.default_rng(4)
    filled = rng.normal(size=(3, 16, 16))
    holes = rng.random((3, 16, 16)) < 0.2
    error = np.where(holes, rng.random((3, 16, 16)), 0.0)
    biharmonic = filled + np.where(holes, rng.normal(size=(3, 16, 16)), 0.0)
    valid = rng.random((3, 16, 16)) < 0.9
    offsets, scales = np.array([0.5, -2.0, 10.0]), np.array([1.0, 3.0, 0.25])
    stacked = TileScaling(offsets[:, None, None], scales[:, None, None])
    inputs, coverage = network_inputs(filled, holes, error, biharmonic, valid, stacked)
    outputs = rng.normal(size=(3, 2, 16, 16)).astype(np.float32)
    background, background_error = network_outputs(outputs, filled, error, stacked,
                                                   sigma_calibration=1.3)
    assert inputs.shape == (3, 4, 16, 16) and coverage.shape == (3, 1, 16, 16)
    for index in range(3):
        scaling = TileScaling(offsets[index], scales[index])
        one_inputs, one_coverage = network_inputs(filled[index], holes[index], error[index],
                                                  biharmonic[index], valid[index], scaling)
        np.testing.assert_array_equal(inputs[index], one_inputs)
        np.testing.assert_array_equal(coverage[index], one_coverage)
        one_background, one_error = network_outputs(outputs[index], filled[index], error[index],
                                                    scaling, sigma_calibration=1.3)
        np.testing.assert_array_equal(background[index], one_background)
        np.testing.assert_array_equal(background_error[index], one_error)
    with pytest.raises(ValueError, match="scale positive"):
        TileScaling(offsets, np.array([1.0, 0.0, 2.0]))


def test_an_error_in_the_biharmonic_thread_reaches_the_caller(tiny_model, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("biharmonic failed")

    _, data = power_law_map((64, 64), seed=23)
    holes = disk_holes(data.shape, [(20, 20), (45, 40)], 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # the fill runs in a worker
    monkeypatch.setattr(inference, "_biharmonic_values", broken)
    with pytest.raises(RuntimeError, match="biharmonic failed"):
        inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu")


def test_the_fills_run_with_one_blas_thread_and_give_the_setting_back(tiny_model, monkeypatch):
    # Hundreds of small solves beside torch's threads: BLAS gets one thread while the fills
    # run, and its own setting back after.
    from threadpoolctl import ThreadpoolController

    def blas_threads():
        return {pool["filepath"]: pool["num_threads"]
                for pool in ThreadpoolController().select(user_api="blas").info()}

    seen = []

    def recording(*args, **kwargs):
        seen.append(blas_threads())
        return kriging(*args, **kwargs)

    kriging = inference._krige_holes
    monkeypatch.setattr(inference, "_krige_holes", recording)
    _, data = power_law_map((64, 64), seed=24)
    holes = disk_holes(data.shape, [(20, 20), (45, 40)], 4)
    before = blas_threads()
    with ThreadpoolController().limit(limits=2, user_api="blas"):
        two = blas_threads()
        for _ in range(2):
            inpaint_map(data, holes, None, 3.0, model=tiny_model, device="cpu")
            assert blas_threads() == two
    assert blas_threads() == before
    assert seen and all(set(threads.values()) == {1} for threads in seen)


def test_a_network_shared_by_threads_stays_in_eval_mode_until_the_last_is_done():
    # A mosaic's threads share one network: the first call to finish must not put it back in
    # training mode while another is still running it.
    import threading

    torch.manual_seed(0)
    network = PConvUNet(channels=(4, 8, 8))
    torch.nn.init.normal_(network.head.weight, std=0.1)
    network.train()
    first_in_forward, second_in_forward, first_done = (threading.Event() for _ in range(3))
    forward = network.forward
    modes = []

    def forward_in_turns(*args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            # The second call: let the first finish while this one is in the network.
            second_in_forward.set()
            first_done.wait(timeout=30)
        else:
            first_in_forward.set()
            second_in_forward.wait(timeout=30)
        modes.append(network.training)
        return forward(*args, **kwargs)

    network.forward = forward_in_turns
    _, data = power_law_map((48, 48), 31)
    holes = disk_holes(data.shape, [(24, 24)], 3)
    errors = []

    def first():
        try:
            inpaint_map(data, holes, None, 3.0, model=network, device="cpu")
        except Exception as error:  # reported below
            errors.append(error)
        first_done.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in_forward.wait(timeout=30)
    inpaint_map(data, holes, None, 3.0, model=network, device="cpu")
    thread.join(timeout=30)
    assert not errors and modes == [False, False]
    assert network.training
