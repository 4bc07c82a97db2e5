"""The peers behind one signature, on maps whose background is known."""

import numpy as np
import pytest

from nemesis_bkg.bench import methods
from nemesis_bkg.bench.holes import disc_mask
from nemesis_bkg.bench.metrics import in_hole_rms_error

SHAPE = (96, 96)
FWHM = 3.0


@pytest.fixture
def plane_with_holes():
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    plane = 10.0 + 0.05 * xx - 0.03 * yy
    holes = disc_mask(SHAPE, [30.0, 60.0, 62.0], [30.0, 50.0, 56.0], 5.0)
    coverage = np.ones(SHAPE, dtype=bool)
    coverage[:, :8] = False  # a no-coverage border
    data = np.where(coverage, plane, np.nan)
    return data, plane, holes, coverage


@pytest.mark.parametrize("name", ["interpolate_replace_nans", "inpaint_biharmonic", "maskfill"])
def test_inpainters_fill_a_plane_and_keep_the_rest(plane_with_holes, name):
    data, plane, holes, coverage = plane_with_holes
    original = data.copy()
    result = methods.PEER_METHODS[name](data, holes, coverage, FWHM)
    np.testing.assert_array_equal(data, original)  # input untouched
    assert result.error is None
    outside = coverage & ~holes
    np.testing.assert_array_equal(result.background[outside], data[outside])
    # Biharmonic is exact on a plane; the smoothing fills err by at most the
    # change of the plane across a hole radius (0.058 per pixel x 5 pixels).
    tolerance = 1e-6 if name == "inpaint_biharmonic" else 0.3
    np.testing.assert_allclose(result.background[holes], plane[holes], atol=tolerance)


@pytest.mark.parametrize("name", ["background2d", "background2d_masked", "sep"])
def test_mesh_methods_on_a_constant(plane_with_holes, name):
    _, _, holes, coverage = plane_with_holes
    data = np.where(coverage, 4.0, np.nan)
    result = methods.PEER_METHODS[name](data, holes, coverage, FWHM)
    assert result.background.shape == SHAPE
    np.testing.assert_allclose(result.background[coverage], 4.0, rtol=1e-5)


def test_hole_touching_the_coverage_edge_is_filled(plane_with_holes):
    data, _, _, coverage = plane_with_holes
    holes = disc_mask(SHAPE, [9.0], [40.0], 4.0)
    result = methods.inpaint_biharmonic(data, holes, coverage, FWHM)
    assert np.isfinite(result.background[holes & coverage]).all()
    assert np.isnan(result.background[~coverage]).all()


def test_fill_per_cutout_writes_only_hole_pixels():
    data = np.arange(400.0).reshape(20, 20)
    holes = np.zeros((20, 20), dtype=bool)
    holes[5:7, 5:7] = True
    holes[14, 14] = True
    calls = []

    def fill(cutout, invalid):
        calls.append(cutout.shape)
        return np.full(cutout.shape, -1.0)

    filled = methods.fill_holes_per_cutout(data, holes, np.ones((20, 20), bool), fill, pad=2)
    assert len(calls) == 2  # one call per connected hole
    assert (filled[holes] == -1).all()
    np.testing.assert_array_equal(filled[~holes], data[~holes])


def test_inpainters_beat_background2d_on_the_reference_case():
    from nemesis_bkg.bench.holes import make_holes
    from nemesis_bkg.bench.suite import reference_map, suite_specs

    spec = next(spec for spec in suite_specs() if spec.family == "reference")
    bench_map = reference_map(spec)
    holes = make_holes(bench_map, "true").mask
    scores = {}
    for name in ("background2d", "inpaint_biharmonic"):
        result = methods.PEER_METHODS[name](
            bench_map.image, holes, bench_map.coverage, bench_map.fwhm_pixels
        )
        scores[name] = in_hole_rms_error(
            result.background, bench_map.true_background, holes, bench_map.noise_std
        )
    # Several times the noise for the mesh; the inpainter at least twice better.
    assert scores["background2d"] > 4.0
    assert scores["inpaint_biharmonic"] < 0.5 * scores["background2d"]


def test_available_peers_cover_every_peer():
    available, missing = methods.available_peers()
    assert set(available) | set(missing) == set(methods.PEER_METHODS)


def test_ours_is_available_or_says_why():
    ours, reason = methods.load_ours()
    if ours is None:
        assert reason
    else:
        assert reason == ""
        yy, xx = np.mgrid[:64, :64]
        data = np.sin(xx / 9.0) + np.cos(yy / 7.0)
        holes = disc_mask((64, 64), [32.0], [32.0], 5.0)
        result = ours(data, holes, np.ones((64, 64), bool), FWHM)
        assert result.error is not None and result.error.shape == (64, 64)
        np.testing.assert_array_equal(result.background[~holes], data[~holes])


def test_ours_reads_the_weights_once(monkeypatch):
    # Reading and checksumming the weights file is not inpainting: like the peers'
    # imports, it must stay out of every timed call.
    import nemesis_bkg.engine.inference as inference
    import nemesis_bkg.model as model_module

    loads = []
    original = model_module.load_model

    def counting_load_model(*args, **kwargs):
        loads.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(model_module, "load_model", counting_load_model)
    monkeypatch.setattr(inference, "load_model", counting_load_model)
    ours, reason = methods.load_ours()
    if ours is None:
        pytest.skip(f"ours is not available: {reason}")
    yy, xx = np.mgrid[:64, :64]
    data = np.sin(xx / 9.0) + np.cos(yy / 7.0)
    holes = disc_mask((64, 64), [32.0], [32.0], 5.0)
    for _ in range(2):
        ours(data, holes, np.ones((64, 64), bool), FWHM)
    assert len(loads) == 1
