"""
Property tests (hypothesis) of the inpainting and of the whole pipeline.

The engine (`~nemesis_bkg.engine.inpaint_map`) is exercised on many small
random maps with given holes and a tiny freshly initialised network whose
output head is not zero (so the network's correction matters); the whole
pipeline (`~nemesis_bkg.CompactSourceRemover`) on fewer maps, as it is slower.

Holes are kept small and the beam narrow so that each kriging system stays
small (see docs/reliability.rst for why that matters on a busy machine).
"""

import hashlib

import numpy as np
import pytest
import torch
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs import WCS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from nemesis_bkg import CompactSourceRemover
from nemesis_bkg.engine import fit_generalized_covariance, inpaint_map
from nemesis_bkg.model import PConvUNet

torch.set_num_threads(1)

#: Beam FWHM of the engine properties, pixels (narrow: small kriging systems).
FWHM = 1.5


def tiny_network() -> PConvUNet:
    """A small network, seeded, with a non-zero output head so that it changes the fill."""
    torch.manual_seed(0)
    network = PConvUNet(channels=(8, 16))
    torch.nn.init.normal_(network.head.weight, std=0.3)
    torch.nn.init.normal_(network.head.bias, std=0.1)
    return network.eval()


NETWORK = tiny_network()


def engine(data, holes, coverage=None):
    return inpaint_map(data, holes, coverage, FWHM, model=NETWORK, device="cpu")


@st.composite
def maps_with_holes(draw):
    """A smooth field plus noise, NaN borders of random widths, and 1-2 small disk holes."""
    rows = draw(st.integers(32, 64))
    cols = draw(st.integers(32, 64))
    seed = draw(st.integers(0, 2**32 - 1))
    contrast = draw(st.floats(0.0, 200.0))
    noise = draw(st.floats(0.01, 5.0))
    offset = draw(st.floats(-1e4, 1e4))
    top, bottom, left, right = (draw(st.integers(0, 6)) for _ in range(4))
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(rows, cols)), 3.0, mode="wrap")
    data = offset + contrast * field / field.std() + rng.normal(0.0, noise, (rows, cols))
    data[:top] = data[rows - bottom :] = np.nan
    data[:, :left] = data[:, cols - right :] = np.nan
    row_grid, col_grid = np.mgrid[:rows, :cols]
    holes = np.zeros((rows, cols), bool)
    for _ in range(draw(st.integers(1, 2))):
        radius = draw(st.floats(1.0, 3.5))
        centre_row = draw(st.integers(top + 4, rows - bottom - 5))
        centre_col = draw(st.integers(left + 4, cols - right - 5))
        holes |= (row_grid - centre_row) ** 2 + (col_grid - centre_col) ** 2 <= radius**2
    return data, holes


#: Arbitrary pixel values (many repeats, steps, constant patches), tiny and huge ones
#: included: the engine works on maps beyond about 1e19 or below 1e-19 divided by a power of
#: two. Up to 1e300 only: a fill may legitimately reach beyond float64's largest number.
raw_values = st.floats(-1e300, 1e300)
raw_maps = st.tuples(
    arrays(np.float64, (32, 32), elements=raw_values, fill=raw_values),
    st.integers(4, 27),
    st.integers(4, 27),
    st.integers(1, 3),
)


def square_hole(row, col, half_side):
    holes = np.zeros((32, 32), bool)
    holes[row - half_side : row + half_side + 1, col - half_side : col + half_side + 1] = True
    return holes


@settings(deadline=None, max_examples=200)
@given(maps_with_holes())
def test_engine_invariants(map_and_holes):
    """Finite in, finite out; the input outside the holes; inputs never written."""
    data, holes = map_and_holes
    coverage = np.isfinite(data)
    copies = [array.copy() for array in (data, holes, coverage)]
    for array in (data, holes, coverage):
        array.flags.writeable = False  # any write in place raises
    background, error = engine(data, holes, coverage)

    assert np.isfinite(background[coverage]).all()
    assert np.isfinite(error[coverage]).all()
    assert (error[holes & coverage] > 0).all()
    outside = ~holes
    # Bit for bit, NaN pixels included, and no uncertainty where nothing was inpainted.
    np.testing.assert_array_equal(background[outside], data[outside])
    assert (error[outside] == 0).all()
    # Holes outside the coverage are not invented.
    assert np.isnan(background[holes & ~coverage]).all()
    for array, copy in zip((data, holes, coverage), copies, strict=True):
        np.testing.assert_array_equal(array, copy)


# The variogram fit of such maps may compare lags whose mean squares differ by hundreds of
# orders of magnitude; numpy warns of the overflow, the fit falls back and stays finite.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(deadline=None, max_examples=200,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(raw_maps)
def test_engine_finite_on_arbitrary_values(raw):
    data, row, col, half_side = raw
    holes = square_hole(row, col, half_side)
    background, error = engine(data, holes)
    assert np.isfinite(background).all() and np.isfinite(error).all()
    assert (error >= 0).all()
    np.testing.assert_array_equal(background[~holes], data[~holes])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_engine_tiny_variations_do_not_overflow_the_variogram_fit():
    data = np.zeros((32, 32))
    data[0, 0] = 4.8e-113
    background, error = engine(data, square_hole(4, 4, 1))
    assert np.all(np.isfinite(background)) and np.all(np.isfinite(error))
    # The engine works on such a map multiplied by a power of two; the fit copes on its own.
    assert np.all(np.isfinite(fit_generalized_covariance(data)))


@settings(deadline=None, max_examples=200)
@given(
    maps_with_holes(),
    st.floats(-3.0, 3.0).map(lambda exponent: 10.0**exponent),
    st.floats(-1e3, 1e3),
)
def test_engine_affine_equivariance(map_and_holes, scale, shift):
    data, holes = map_and_holes
    background, error = engine(data, holes)
    moved_background, moved_error = engine(scale * data + shift, holes)
    spread = np.nanstd(data) + 1e-12
    inside = holes & np.isfinite(data)
    np.testing.assert_allclose(moved_background[inside], scale * background[inside] + shift,
                               rtol=0, atol=1e-4 * scale * spread + 1e-9 * abs(shift))
    np.testing.assert_allclose(moved_error[inside], scale * error[inside],
                               rtol=1e-4, atol=1e-6 * scale * spread)


@settings(deadline=None, max_examples=200)
@given(maps_with_holes())
def test_engine_same_call_twice_gives_identical_results(map_and_holes):
    data, holes = map_and_holes
    first = engine(data, holes)
    second = engine(data, holes)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


# --- the whole pipeline ---------------------------------------------------------------------

PIPELINE_FWHM = 2.0


def field_with_sources(shape, seed, *, contrast=20.0, noise=0.1):
    """A smooth field, white noise and three Gaussian sources of about 30 sigma."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), 6.0, mode="wrap")
    data = contrast * noise * field / field.std() + rng.normal(0.0, noise, shape)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    sigma = PIPELINE_FWHM / 2.3548
    for fraction_row, fraction_col in ((0.3, 0.3), (0.7, 0.5), (0.4, 0.75)):
        centre_row, centre_col = fraction_row * shape[0], fraction_col * shape[1]
        data += 30 * noise * np.exp(
            -((rows - centre_row) ** 2 + (cols - centre_col) ** 2) / (2 * sigma**2)
        )
    return data


def pipeline(data, **kwargs):
    remover = CompactSourceRemover(beam_fwhm=PIPELINE_FWHM, model=NETWORK, device="cpu")
    return remover.remove(data, **kwargs)


@pytest.fixture(scope="module", params=[0, 1])
def fixed_map(request):
    data = field_with_sources((64, 72), request.param)
    data[:3] = np.nan
    return data, pipeline(data)


@pytest.mark.parametrize(("scale", "shift"), [(3.0, 100.0), (0.01, -5.0), (2.0**40, 0.0)])
def test_pipeline_affine_equivariance(fixed_map, scale, shift):
    data, result = fixed_map
    moved = pipeline(scale * data + shift)
    np.testing.assert_array_equal(moved.source_mask, result.source_mask)
    np.testing.assert_allclose(moved.catalog["x"], result.catalog["x"], atol=1e-6)
    np.testing.assert_allclose(moved.catalog["peak_snr"], result.catalog["peak_snr"], rtol=1e-6)
    noise = 0.1
    np.testing.assert_allclose(moved.background.data, scale * result.background.data + shift,
                               rtol=0, atol=1e-4 * scale * noise + 1e-12 * abs(shift))
    np.testing.assert_allclose(moved.background.uncertainty.array,
                               scale * result.background.uncertainty.array, rtol=1e-4)


@pytest.mark.parametrize("scale", [1e-300, 1e-30, 1e30, 1e300])
def test_pipeline_equivariance_at_extreme_scales(fixed_map, scale):
    data, result = fixed_map
    moved = pipeline(scale * data)
    np.testing.assert_array_equal(moved.source_mask, result.source_mask)
    np.testing.assert_allclose(moved.background.data / scale, result.background.data,
                               rtol=0, atol=1e-4 * 0.1)


def test_pipeline_same_call_twice_is_identical(fixed_map):
    data, result = fixed_map
    again = pipeline(data)
    np.testing.assert_array_equal(again.background.data, result.background.data)
    np.testing.assert_array_equal(again.background.uncertainty.array,
                                  result.background.uncertainty.array)
    np.testing.assert_array_equal(again.source_mask, result.source_mask)


def test_pipeline_never_modifies_its_input(fixed_map):
    data, _ = fixed_map
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-4 / 3600, 4 / 3600]
    mask = np.zeros(data.shape, bool)
    mask[40:43, 10:13] = True
    error = np.full(data.shape, 0.1)
    ccd = CCDData(data.copy(), unit="MJy/sr", mask=mask.copy(), wcs=wcs.deepcopy(),
                  uncertainty=StdDevUncertainty(error.copy()), meta={"OBJECT": "test"})
    for array in (ccd.data, ccd.mask, ccd.uncertainty.array):
        array.flags.writeable = False
    header_before = ccd.wcs.to_header_string()
    pipeline(ccd)
    np.testing.assert_array_equal(ccd.data, data)
    np.testing.assert_array_equal(ccd.mask, mask)
    np.testing.assert_array_equal(ccd.uncertainty.array, error)
    assert ccd.wcs.to_header_string() == header_before and dict(ccd.meta) == {"OBJECT": "test"}


def test_pipeline_never_modifies_its_input_file(fixed_map, tmp_path):
    from astropy.io import fits

    data, _ = fixed_map
    path = tmp_path / "map.fits"
    fits.PrimaryHDU(data).writeto(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    modified = path.stat().st_mtime_ns
    pipeline(path).write(tmp_path / "out.fits")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert path.stat().st_mtime_ns == modified


@settings(deadline=None, max_examples=100)
@given(st.integers(0, 2**32 - 1), st.integers(40, 64), st.integers(40, 64), st.integers(0, 5))
def test_pipeline_finite_in_finite_out(seed, rows, cols, border):
    data = field_with_sources((rows, cols), seed)
    if border:
        data[:, :border] = np.nan
    result = pipeline(data)
    covered = np.isfinite(data)
    assert np.isfinite(result.background.data[covered]).all()
    assert np.isfinite(result.background.uncertainty.array[covered]).all()
    assert np.isfinite(result.sources.data[covered]).all()
    outside = ~result.source_mask
    np.testing.assert_array_equal(result.background.data[outside], data[outside])
    np.testing.assert_array_equal(result.background.mask, ~covered)
