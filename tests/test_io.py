import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, InverseVariance, NDData, StdDevUncertainty, VarianceUncertainty
from astropy.wcs import WCS

from nemesis_bkg.io import read_fits, read_image


def make_wcs(naxis=2):
    wcs = WCS(naxis=naxis)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN", "FREQ", "STOKES"][:naxis]
    wcs.wcs.cdelt = [-6 / 3600, 6 / 3600, 1e9, 1][:naxis]
    wcs.wcs.crval = [83.8, -5.4, 1.2e12, 1][:naxis]
    return wcs


@pytest.fixture
def image():
    return np.random.default_rng(0).normal(size=(20, 30))


def test_plain_array_is_copied_and_valid(image):
    original = image.copy()
    result = read_image(image)
    result.data[0, 0] = 99.0
    np.testing.assert_array_equal(image, original)
    assert result.data.dtype == np.float64
    assert result.coverage.all() and not result.mask.any()
    assert result.unit is None and result.wcs is None and result.input_type is np.ndarray


def test_nan_and_inf_become_invalid(image):
    image[0, :] = np.nan
    image[1, 1] = np.inf
    result = read_image(image)
    assert not result.coverage[0].any() and not result.coverage[1, 1]
    assert np.isnan(result.data[1, 1])
    assert np.isinf(image[1, 1])


def test_big_endian_and_integer_data(image):
    big = image.astype(">f4")
    result = read_image(big)
    assert result.data.dtype.byteorder in ("=", "<" if np.little_endian else ">")
    np.testing.assert_allclose(result.data, image.astype(np.float32))
    assert read_image(np.arange(12, dtype=">i2").reshape(3, 4)).data[2, 3] == 11.0


def test_quantity_keeps_unit(image):
    result = read_image(image * u.MJy / u.sr)
    assert result.unit == u.MJy / u.sr


def test_nddata_mask_uncertainty_wcs(image):
    mask = np.zeros(image.shape, bool)
    mask[5, 7] = True
    ccd = CCDData(image, unit="Jy/beam", mask=mask, wcs=make_wcs(),
                  uncertainty=VarianceUncertainty(np.full(image.shape, 4.0)))
    result = read_image(ccd, mask=np.eye(20, 30, dtype=bool))
    assert result.mask[5, 7] and result.mask[3, 3] and result.mask.sum() == 21
    np.testing.assert_allclose(result.error, 2.0)
    assert result.wcs.has_celestial and result.input_type is CCDData
    assert ccd.mask.sum() == 1


def test_inverse_variance_and_stddev(image):
    nd = NDData(image, uncertainty=InverseVariance(np.full(image.shape, 0.25)))
    np.testing.assert_allclose(read_image(nd).error, 2.0)
    stddev = StdDevUncertainty(np.full(image.shape, 3.0))
    np.testing.assert_allclose(read_image(image, uncertainty=stddev).error, 3.0)


def test_degenerate_axes_are_squeezed(image):
    cube = image[np.newaxis, np.newaxis]
    ccd = NDData(cube, wcs=make_wcs(4))
    result = read_image(ccd)
    assert result.shape == image.shape and result.wcs.naxis == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data": np.zeros((3, 4, 5))}, "2-D image"),
        ({"data": np.full((4, 4), np.nan)}, "no valid pixel"),
        ({"data": np.zeros((4, 4)), "mask": np.zeros((3, 3), bool)}, "shape"),
        ({"data": np.zeros((4, 4)), "uncertainty": -np.ones((4, 4))}, "negative"),
        ({"data": np.zeros((4, 4)), "uncertainty": np.full((4, 4), np.nan)}, "NaN or inf"),
        ({"data": np.array([["a", "b"], ["c", "d"]])}, "real numbers"),
        ({"data": np.zeros((1, 8))}, "too small"),
    ],
)
def test_bad_input_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        read_image(**kwargs)


def test_read_fits_cube_unknown_unit_and_error(tmp_path, image):
    header = make_wcs(3).to_header()
    header["BUNIT"] = "furlongs per fortnight squared"
    primary = fits.PrimaryHDU(image[np.newaxis].astype(">f4"), header=header)
    error = fits.ImageHDU(np.ones_like(image), name="ERROR")
    path = tmp_path / "cube.fits"
    fits.HDUList([primary, error]).writeto(path)
    with pytest.warns(UserWarning, match="not a unit"):
        nd = read_fits(path)
    assert not isinstance(nd, CCDData) and nd.data.shape == image.shape
    assert nd.wcs.naxis == 2
    np.testing.assert_allclose(nd.uncertainty.array, 1.0)
    assert read_image(nd).error is not None


def test_read_fits_known_unit_gives_ccddata(tmp_path, image):
    header = make_wcs().to_header()
    header["BUNIT"] = "MJy/sr"
    path = tmp_path / "map.fits"
    fits.PrimaryHDU(image, header=header).writeto(path)
    ccd = read_fits(path)
    assert isinstance(ccd, CCDData) and ccd.unit == u.MJy / u.sr
    assert read_image(str(path)).unit == u.MJy / u.sr


def test_read_fits_truncated(tmp_path, image):
    path = tmp_path / "map.fits"
    fits.PrimaryHDU(image).writeto(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match="truncated|complete"):
        read_fits(path)


def test_write_never_replaces_a_file_that_appears_while_writing(tmp_path):
    from nemesis_bkg.io import write_fits_atomically

    target = tmp_path / "out.fits"

    class RacedHDUList(fits.HDUList):
        """Another process creates the output while this one writes its temporary file."""

        def writeto(self, name, **kwargs):
            target.write_text("another process's product")
            super().writeto(name, **kwargs)

    with pytest.raises(FileExistsError, match="overwrite"):
        write_fits_atomically(RacedHDUList([fits.PrimaryHDU()]), target)
    assert target.read_text() == "another process's product"
    assert [path.name for path in tmp_path.iterdir()] == ["out.fits"]
    write_fits_atomically(fits.HDUList([fits.PrimaryHDU(np.ones((2, 2)))]), target,
                          overwrite=True)
    np.testing.assert_array_equal(fits.getdata(target), 1.0)


def test_check_output_path(tmp_path):
    from nemesis_bkg.io import check_output_path

    existing = tmp_path / "exists.fits"
    existing.write_bytes(b"")
    with pytest.raises(FileExistsError, match="overwrite"):
        check_output_path(existing)
    check_output_path(existing, overwrite=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "out.fits")


def test_error_extension_of_another_shape_is_reported(tmp_path, image):
    path = tmp_path / "map.fits"
    error = fits.ImageHDU(np.ones((5, 5)), name="ERROR")
    fits.HDUList([fits.PrimaryHDU(image), error]).writeto(path)
    with pytest.warns(UserWarning, match="ERROR extension .* does not have the image's shape"):
        nd = read_fits(path)
    assert nd.uncertainty is None
    # A later extension of the right shape is used.
    stddev = fits.ImageHDU(np.full(image.shape, 2.0), name="STDDEV")
    fits.HDUList([fits.PrimaryHDU(image), error, stddev]).writeto(path, overwrite=True)
    np.testing.assert_array_equal(read_fits(path).uncertainty.array, 2.0)
