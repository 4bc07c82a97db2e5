"""Quality checks of the bundled weights on small fixed maps (skipped without weights)."""

import numpy as np
import pytest
import torch

from nemesis_bkg.engine import inpaint_map
from nemesis_bkg.model import DEFAULT_WEIGHTS, load_model

pytestmark = pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="no bundled weights yet")

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return load_model(device="cpu")


@pytest.fixture(scope="module")
def fixed_map():
    from nemesis_bkg.masking import hole_radius
    from nemesis_bkg.simulate import simulate_map

    simulated = simulate_map((192, 192), instrument="pacs160", regime="filamentary",
                             n_sources=12, snr_range=(10.0, 1000.0), nan_border=False, seed=11)
    rows, cols = np.mgrid[:192, :192]
    holes = np.zeros((192, 192), bool)
    for source in simulated.catalog:
        radius = float(hole_radius(source["peak_snr"], simulated.fwhm_pixels))
        holes |= (rows - source["y"]) ** 2 + (cols - source["x"]) ** 2 <= radius**2
    data = np.asarray(simulated.data.data, dtype=float)
    return simulated, data, holes


def _in_hole_rms(estimate, simulated, holes):
    return float(np.sqrt(np.mean((estimate - simulated.background)[holes] ** 2)))


def test_quality_floor_against_background2d(model, fixed_map):
    from photutils.background import Background2D

    simulated, data, holes = fixed_map
    background, error = inpaint_map(data, holes, None, simulated.fwhm_pixels, model=model,
                                    device="cpu")
    ours = _in_hole_rms(background, simulated, holes)
    box = int(4 * simulated.fwhm_pixels)
    mesh = Background2D(data, (box, box), mask=holes).background
    assert ours < 0.5 * _in_hole_rms(mesh, simulated, holes)
    within = np.abs(background - simulated.background)[holes] <= error[holes]
    assert 0.4 < within.mean() < 0.95


def test_result_barely_depends_on_the_tile_size(model, fixed_map):
    simulated, data, holes = fixed_map
    first, _ = inpaint_map(data, holes, None, simulated.fwhm_pixels, model=model, device="cpu")
    second, _ = inpaint_map(data, holes, None, simulated.fwhm_pixels, model=model, device="cpu",
                            tile_size=96)
    change = np.sqrt(np.mean((first - second)[holes] ** 2))
    assert change < 0.25 * _in_hole_rms(first, simulated, holes)
