"""
Bad and unusual inputs, one test (or a few) per row of the table in
docs/reliability.rst: each gives a clear error or is handled correctly.

The pipeline runs with a tiny freshly initialised network (fast, and the
outcomes tested here do not depend on its weights).
"""

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import (
    CCDData,
    InverseVariance,
    NDData,
    StdDevUncertainty,
    VarianceUncertainty,
)
from astropy.table import MaskedColumn, Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from regions import CirclePixelRegion, CircleSkyRegion, PixCoord, Regions
from scipy import ndimage

from nemesis_bkg import CompactSourceRemover, PConvBackground
from nemesis_bkg.io import read_fits, read_image
from nemesis_bkg.model import PConvUNet

torch.set_num_threads(1)

FWHM = 2.0
NOISE = 0.1
SIGMA = FWHM / 2.3548


def tiny_network() -> PConvUNet:
    torch.manual_seed(0)
    network = PConvUNet(channels=(8, 16))
    torch.nn.init.normal_(network.head.weight, std=0.3)
    return network.eval()


NETWORK = tiny_network()


def sky_map(shape=(64, 64), *, seed=0, sources=((0.5, 0.5),), amplitude=3.0):
    """Smooth structure, white noise and Gaussian sources (positions as fractions)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), 6.0, mode="wrap")
    data = amplitude * field / field.std() + rng.normal(0.0, NOISE, shape)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    for fraction_row, fraction_col in sources:
        centre_row, centre_col = fraction_row * (shape[0] - 1), fraction_col * (shape[1] - 1)
        data += 5.0 * np.exp(-((rows - centre_row) ** 2 + (cols - centre_col) ** 2)
                             / (2 * SIGMA**2))
    return data


def celestial_wcs(shape=(64, 64)):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-6 / 3600, 6 / 3600]
    wcs.wcs.crval = [83.8, -5.4]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    return wcs


def remover(**kwargs):
    kwargs.setdefault("beam_fwhm", FWHM)
    return CompactSourceRemover(model=NETWORK, device="cpu", **kwargs)


def remove(data, **kwargs):
    return remover().remove(data, **kwargs)


def assert_sound(result, data):
    """Finite where covered, the input itself outside the holes, NaN and masked elsewhere."""
    data = np.asarray(data, dtype=float)
    covered = np.isfinite(data)
    background = result.background.data
    assert np.isfinite(background[covered]).all()
    assert np.isfinite(result.background.uncertainty.array[covered]).all()
    outside = covered & ~result.source_mask
    np.testing.assert_array_equal(background[outside], data[outside])
    assert np.isnan(background[~covered]).all()
    np.testing.assert_array_equal(result.background.mask, ~covered)


@pytest.fixture(scope="module")
def reference():
    data = sky_map()
    return data, remove(data)


# --- NaN, inf, constant and negative maps ----------------------------------------------------


def test_nan_border():
    data = sky_map(sources=((0.5, 0.5), (0.5, 0.14)))
    data[:6] = data[-6:] = np.nan
    data[:, :5] = np.nan
    result = remove(data)
    assert_sound(result, data)
    # The source 4 pixels from the border is found and its hole stays inside the coverage.
    assert np.min(np.hypot(result.catalog["x"] - 0.14 * 63, result.catalog["y"] - 31.5)) < 1
    assert not (result.source_mask & np.isnan(data)).any()


def test_all_nan_map():
    with pytest.raises(ValueError, match="no valid pixel"):
        remove(np.full((64, 64), np.nan))


def test_nearly_all_nan_map():
    data = np.full((64, 64), np.nan)
    data[30:34, 30:34] = 1.0
    with pytest.raises(ValueError, match="too small"):
        remove(data)


@pytest.mark.parametrize("value", [0.0, 3.5, -1e5])
def test_constant_map(value):
    data = np.full((48, 48), value)
    result = remove(data)
    assert len(result.catalog) == 0 and not result.source_mask.any()
    np.testing.assert_array_equal(result.background.data, data)
    # A hole asked for on a constant map is filled with the constant.
    mask = np.zeros(data.shape, bool)
    mask[20:25, 20:25] = True
    masked = remover().remove(data, mask=mask, detect=False)
    np.testing.assert_allclose(masked.background.data, value, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(masked.sources.data[mask], 0.0)


def test_constant_map_has_no_unit_sized_uncertainty():
    # The noise of a noiseless map is a floor far below its values, not 1 in its units.
    result = remove(np.full((48, 48), 7.0))
    assert np.all(result.background.uncertainty.array < 1e-100)


def test_noiseless_source_is_masked_alike_in_any_unit():
    rows, cols = np.mgrid[:64, :64]
    source = np.exp(-((rows - 31.4) ** 2 + (cols - 29.8) ** 2) / (2 * (FWHM / 2.3548) ** 2))
    holes = []
    for unit in (1e-3, 1.0, 1e3):
        result = remove(unit * (5.0 + source))
        assert len(result.catalog) == 1
        holes.append(result.source_mask)
    for hole in holes[1:]:
        np.testing.assert_array_equal(hole, holes[0])


def test_inf_pixels_are_no_coverage(reference):
    data, result = reference
    with_inf = data.copy()
    with_inf[5, 5], with_inf[50, 10] = np.inf, -np.inf
    moved = remove(with_inf)
    assert np.isnan(moved.background.data[[5, 50], [5, 10]]).all()
    assert moved.background.mask[5, 5] and moved.background.mask[50, 10]
    assert_sound(moved, np.where(np.isfinite(with_inf), with_inf, np.nan))
    assert len(moved.catalog) == len(result.catalog)


def test_negative_map_with_bowl():
    data = sky_map(sources=((0.3, 0.3),))
    rows, cols = np.mgrid[:64, :64]
    bowl = -20.0 * np.exp(-((rows - 40) ** 2 + (cols - 40) ** 2) / (2 * 12.0**2))
    dip = -5.0 * np.exp(-((rows - 45) ** 2 + (cols - 45) ** 2) / (2 * SIGMA**2))
    data = data - 100.0 + bowl + dip
    result = remove(data)
    assert_sound(result, data)
    # Only the positive source is masked: a negative compact dip is not a source.
    assert len(result.catalog) == 1
    assert abs(result.catalog["x"][0] - 0.3 * 63) < 1 and abs(result.catalog["y"][0] - 0.3 * 63) < 1
    assert not result.source_mask[45, 45]


# --- numbers: float32 limits, integers, float16, byte order -----------------------------------


@pytest.mark.parametrize("scale", [1e37, 1e-37, 1e-42])
def test_float32_near_its_limits(reference, scale):
    data, result = reference
    scaled = (data * scale).astype(np.float32)
    assert np.isfinite(scaled).all()
    moved = remove(scaled)
    np.testing.assert_array_equal(moved.source_mask, result.source_mask)
    # float32 rounding (and the subnormal range at 1e-42) limits the agreement.
    tolerance = 1e-3 if scale > 1e-40 else 0.05
    np.testing.assert_allclose(moved.background.data / scale, result.background.data,
                               atol=tolerance)
    assert_sound(moved, scaled)


def test_values_near_float64_limits(reference):
    data, result = reference
    for scale in (1e-300, 1e300):
        moved = remove(data * scale)
        np.testing.assert_array_equal(moved.source_mask, result.source_mask)
        assert np.isfinite(moved.background.data).all()


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int32, np.float16, ">i4", ">f2"])
def test_integer_and_float16_data(reference, dtype):
    data, _ = reference
    stored = (data * 100 + 1000).astype(dtype)
    as_float = stored.astype(np.float64)
    result, expected = remove(stored), remove(as_float)
    np.testing.assert_array_equal(result.background.data, expected.background.data)
    np.testing.assert_array_equal(result.source_mask, expected.source_mask)


@pytest.mark.parametrize("dtype", [">f8", ">f4"])
def test_big_endian_arrays(reference, dtype):
    data, _ = reference
    big = data.astype(dtype)
    native = big.astype(np.dtype(dtype).newbyteorder("="))
    for wrap in (lambda array: array, lambda array: NDData(array), lambda array: array * u.Jy):
        result, expected = remove(wrap(big)), remove(wrap(native))
        np.testing.assert_array_equal(result.background.data, expected.background.data)
    assert big.dtype.byteorder == ">"  # the input keeps its byte order


@pytest.mark.parametrize("kind", ["nan border", "float32 1e-37", "big-endian int16"])
def test_pconv_background_on_unusual_inputs(kind):
    data = sky_map()
    if kind == "nan border":
        data[:5] = np.nan
    elif kind == "float32 1e-37":
        data = (data * 1e-37).astype(np.float32)
    else:
        data = (data * 100).astype(">i2")
    bkg = PConvBackground(data, (16, 16), beam_fwhm=FWHM, model=NETWORK, device="cpu",
                          fill_value=-1.0)
    values = np.asarray(data, dtype=float)
    covered = np.isfinite(values)
    assert bkg.source_mask.sum() > 0
    assert np.isfinite(bkg.background).all() and np.isfinite(bkg.background_rms).all()
    np.testing.assert_array_equal(bkg.background[~covered], -1.0)
    outside = covered & ~bkg.source_mask
    np.testing.assert_array_equal(bkg.background[outside], values[outside])


# --- shapes: cubes, tiny and elongated maps --------------------------------------------------


@pytest.mark.parametrize("leading", [(1,), (1, 1)])
def test_fits_with_degenerate_axes(tmp_path, reference, leading):
    data, result = reference
    naxis = 2 + len(leading)
    wcs = WCS(naxis=naxis)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN", "FREQ", "STOKES"][:naxis]
    wcs.wcs.cdelt = [-6 / 3600, 6 / 3600, 1e9, 1][:naxis]
    wcs.wcs.crval = [83.8, -5.4, 1.2e12, 1][:naxis]
    header = wcs.to_header()
    header["BUNIT"] = "MJy/sr"
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(data.reshape(leading + data.shape), header=header).writeto(path)
    from_file = remove(path)
    np.testing.assert_array_equal(from_file.background.data, result.background.data)
    assert from_file.background.wcs.naxis == 2 and from_file.background.wcs.has_celestial
    assert from_file.background.unit == u.MJy / u.sr
    in_memory = remove(NDData(data.reshape(leading + data.shape), wcs=wcs))
    np.testing.assert_array_equal(in_memory.background.data, result.background.data)


def test_cube_with_several_planes_is_refused(tmp_path, reference):
    data, _ = reference
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.stack([data, data])).writeto(path)
    with pytest.raises(ValueError, match="2-D image.*one plane"):
        remove(path)


def test_map_smaller_than_one_tile():
    data = sky_map((32, 32))
    result = remove(data)
    assert len(result.catalog) == 1
    assert_sound(result, data)


@pytest.mark.parametrize("shape", [(6, 6), (1, 64), (64, 1)])
def test_map_too_small_for_the_beam(shape):
    with pytest.raises(ValueError, match="too small"):
        remove(np.random.default_rng(0).normal(size=shape))


@pytest.mark.parametrize("shape", [(24, 600), (600, 24)])
def test_very_elongated_maps(shape):
    data = sky_map(shape, sources=((0.5, 0.5), (0.5, 0.1), (0.1, 0.5)))
    result = remove(data)
    assert len(result.catalog) == 2 or len(result.catalog) == 3
    assert_sound(result, data)


# --- WCS, units, instruments ------------------------------------------------------------------


def test_missing_wcs(reference):
    data, _ = reference
    with pytest.raises(ValueError, match="no celestial WCS"):
        remover(beam_fwhm=None, instrument="spire250").remove(data)
    with pytest.raises(ValueError, match="no WCS"):
        remover(beam_fwhm=18 * u.arcsec).remove(data)
    with pytest.raises(ValueError, match="sky coordinates but the map has no celestial WCS"):
        remove(data, catalog=SkyCoord([83.8] * u.deg, [-5.4] * u.deg))
    # With the beam in pixels a map without WCS is fine; holes come back as pixel regions.
    result = remove(data)
    assert type(result.regions()[0]).__name__ == "CirclePixelRegion"


def test_non_celestial_wcs(reference, tmp_path):
    data, result = reference
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["LINEAR", "LINEAR"]
    with pytest.raises(ValueError, match="no celestial WCS"):
        remover(beam_fwhm=None, instrument="pacs160").remove(NDData(data, wcs=wcs))
    linear = remove(NDData(data, wcs=wcs))
    np.testing.assert_array_equal(linear.background.data, result.background.data)
    linear.write(tmp_path / "linear.fits")
    assert fits.getheader(tmp_path / "linear.fits", "BACKGROUND")["CTYPE1"] == "LINEAR"


def test_unknown_unit_in_fits(tmp_path, reference):
    data, result = reference
    header = celestial_wcs().to_header()
    header["BUNIT"] = "furlongs per fortnight"
    path = tmp_path / "odd_unit.fits"
    fits.PrimaryHDU(data, header=header).writeto(path)
    with pytest.warns(UserWarning, match="not a unit astropy knows"):
        nddata = read_fits(path)
    assert nddata.unit is None
    odd = remove(nddata)
    np.testing.assert_array_equal(odd.background.data, result.background.data)
    odd.write(tmp_path / "out.fits")
    # The label is carried over verbatim, not dropped.
    assert fits.getheader(tmp_path / "out.fits", "BACKGROUND")["BUNIT"] == "furlongs per fortnight"


def test_unrecognized_unit_object(reference, tmp_path):
    data, _ = reference
    unit = u.Unit("counts_per_blob", parse_strict="silent")
    result = remove(NDData(data, unit=unit))
    assert result.background.unit == unit and result.sources.unit == unit
    result.write(tmp_path / "out.fits")
    assert fits.getheader(tmp_path / "out.fits", "SOURCES")["BUNIT"] == "counts_per_blob"


@pytest.mark.parametrize("name", ["pacs999", "scuba2", "", "SPIRE 9000"])
def test_unknown_instrument_name(reference, name):
    data, _ = reference
    with pytest.raises(ValueError, match="unknown instrument.*pacs100.*beam_fwhm"):
        remover(beam_fwhm=None, instrument=name).remove(NDData(data, wcs=celestial_wcs()))


@pytest.mark.parametrize(
    ("keywords", "error", "match"),
    [
        ({"beam_fwhm": -3.0}, ValueError, "positive and finite"),
        ({"beam_fwhm": 0 * u.arcsec}, ValueError, "positive and finite"),
        ({"beam_fwhm": np.nan}, ValueError, "positive and finite"),
        ({"beam_fwhm": 3 * u.Jy}, ValueError, "an angle or a number of pixels"),
        ({"beam_fwhm": "18 arcsec"}, TypeError, r"18.1 \* u.arcsec"),
        ({"instrument": "spire9000"}, ValueError, "unknown instrument"),
    ],
)
def test_an_unusable_beam_fails_when_the_remover_is_made(keywords, error, match):
    with pytest.raises(error, match=match):
        CompactSourceRemover(**keywords)
    with pytest.raises(error, match=match):
        PConvBackground(sky_map(), (16, 16), **keywords)


@pytest.mark.parametrize("keywords", [{"n_threads": 0}, {"batch_size": -2}, {"n_threads": 1.5}])
def test_unusable_engine_settings_fail_when_the_remover_is_made(keywords):
    with pytest.raises(ValueError, match=f"{next(iter(keywords))} must be a positive number"):
        CompactSourceRemover(beam_fwhm=3.0, **keywords)


def test_header_of_an_unknown_instrument(reference):
    data, _ = reference
    header = celestial_wcs().to_header()
    header["INSTRUME"], header["WAVELNTH"] = "SCUBA-2", 850.0
    with pytest.raises(ValueError, match="cannot tell the beam.*instrument=.*beam_fwhm="):
        remover(beam_fwhm=None).remove(CCDData(data, unit="Jy/beam", wcs=celestial_wcs(),
                                               meta=header))


# --- uncertainties and masks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uncertainty", "match"),
    [
        (StdDevUncertainty(np.zeros((64, 64))), "0 at 4096 covered pixels"),
        (StdDevUncertainty(np.where(np.eye(64, dtype=bool), 0.0, NOISE)), "0 at 64 covered"),
        (StdDevUncertainty(np.where(np.eye(64, dtype=bool), np.nan, NOISE)), "NaN or inf at 64"),
        (StdDevUncertainty(np.full((64, 64), -NOISE)), "StdDevUncertainty has negative"),
        (VarianceUncertainty(np.full((64, 64), -NOISE**2)), "VarianceUncertainty has negative"),
        (np.full((64, 64), -NOISE), "negative values"),
        (InverseVariance(np.where(np.eye(64, dtype=bool), 0.0, 100.0)), "NaN or inf at 64"),
        (StdDevUncertainty(np.full((32, 32), NOISE)), "shape"),
    ],
)
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_bad_uncertainties(reference, uncertainty, match):
    data, _ = reference
    with pytest.raises(ValueError, match=match):
        remove(NDData(data, uncertainty=uncertainty))


def test_uncertainty_nan_where_there_is_no_data(reference):
    data, _ = reference
    data = data.copy()
    data[:4] = np.nan
    error = np.full(data.shape, NOISE)
    error[:4] = np.nan
    result = remove(NDData(data, uncertainty=StdDevUncertainty(error)))
    assert_sound(result, data)
    covered = np.isfinite(data)
    assert (result.background.uncertainty.array[covered & ~result.source_mask] == NOISE).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mask": np.zeros((10, 10), bool)}, "mask has shape"),
        ({"mask": np.zeros((64, 63), bool)}, "mask has shape"),
        ({"mask": np.full((64, 64), np.nan)}, "NaN or inf"),
    ],
)
def test_masks_of_the_wrong_shape(reference, kwargs, match):
    data, _ = reference
    with pytest.raises(ValueError, match=match):
        remove(data, **kwargs)
    with pytest.raises(ValueError, match=match):
        PConvBackground(data, (16, 16), beam_fwhm=FWHM, model=NETWORK, device="cpu", **kwargs)


def test_nddata_and_coverage_masks_of_the_wrong_shape(reference):
    data, _ = reference
    with pytest.raises(ValueError, match="NDData mask has shape"):
        remove(NDData(data, mask=np.zeros((64, 32), bool)))
    with pytest.raises(ValueError, match="coverage_mask has shape"):
        PConvBackground(data, (16, 16), coverage_mask=np.zeros((3, 3), bool), beam_fwhm=FWHM,
                        model=NETWORK, device="cpu")


# --- catalogues and region files --------------------------------------------------------------


def test_catalogue_with_positions_off_the_map(reference):
    data, _ = reference
    catalog = Table({"x": [10.0, 500.0, -40.0], "y": [12.0, 5.0, 30.0]})
    with pytest.warns(AstropyUserWarning, match=r"rows \[1, 2\] fall off the map"):
        result = remove(data, catalog=catalog)
    assert result.source_mask[12, 10]
    assert list(result.catalog["origin"]).count("catalog") == 1


@pytest.mark.parametrize(
    "catalog",
    [
        Table({"x": [10.0, np.nan], "y": [12.0, 5.0]}),
        Table({"ra": [83.8, 83.8], "dec": [-5.4, np.nan]}),
        # The far side of the sky, where the tangent projection is undefined.
        SkyCoord([83.8, 263.8] * u.deg, [-5.4, 5.4] * u.deg),
    ],
)
def test_catalogue_with_nan_or_undefined_positions(reference, catalog):
    data, _ = reference
    with pytest.raises(ValueError, match=r"rows \[1\] have NaN or infinite positions"):
        remove(NDData(data, wcs=celestial_wcs()), catalog=catalog)


def test_catalogue_with_an_empty_cell(reference):
    data, _ = reference
    catalog = Table({"x": [10.0, 20.0], "y": MaskedColumn([12.0, 0.0], mask=[False, True])})
    with pytest.raises(ValueError, match="NaN"):
        remove(data, catalog=catalog)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("# Region file format: DS9\nimage\ncircle(10,10,3)\nfoo bar\n", "cannot be parsed"),
        ("\x00\x01garbage", "cannot parse"),
        ("", "holds no region"),
        ("# Region file format: DS9\nimage\n", "holds no region"),
    ],
)
def test_malformed_region_files(reference, tmp_path, text, match):
    data, _ = reference
    path = tmp_path / "bad.reg"
    path.write_text(text)
    for argument in ("regions", "protect"):
        with pytest.raises(ValueError, match=match):
            remove(data, **{argument: str(path)})


def test_missing_region_file_and_sky_regions_without_wcs(reference, tmp_path):
    data, _ = reference
    with pytest.raises(FileNotFoundError, match="does not exist"):
        remove(data, regions=str(tmp_path / "missing.reg"))
    sky = CircleSkyRegion(SkyCoord(83.8 * u.deg, -5.4 * u.deg), 10 * u.arcsec)
    with pytest.raises(ValueError, match="no celestial WCS"):
        remove(data, regions=Regions([sky]))
    with pytest.raises(TypeError, match="regions.Regions"):
        remove(data, regions=42)
    # A good file still works.
    path = tmp_path / "ok.reg"
    Regions([CirclePixelRegion(PixCoord(10, 12), 3.0)]).write(path, format="ds9")
    assert remove(data, regions=str(path)).source_mask[12, 10]


def test_read_image_rejects_what_it_cannot_use():
    with pytest.raises(TypeError, match="real numbers"):
        read_image(np.ones((8, 8), complex))
    with pytest.raises(ValueError, match="did not parse as unit|not a valid unit"):
        read_image(np.ones((8, 8)), unit="furlongs per fortnight")
