"""Tests of the user inputs of nemesis_bkg.masking: catalog=, regions=, protect=."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData
from astropy.table import Column, MaskedColumn, QTable, Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from regions import (
    CirclePixelRegion,
    CircleSkyRegion,
    LinePixelRegion,
    PixCoord,
    PointPixelRegion,
    RectanglePixelRegion,
    Regions,
)

from nemesis_bkg.masking import FLAG_PROTECTED, build_source_mask

FWHM = 3.0
SHAPE = (96, 96)


def noise(seed=0):
    return np.random.default_rng(seed).normal(0.0, 1.0, SHAPE)


def source(x0, y0, peak):
    y, x = np.indices(SHAPE, dtype=float)
    sigma = FWHM / np.sqrt(8 * np.log(2))
    return peak * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))


def wcs():
    result = WCS(naxis=2)
    result.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    result.wcs.crval = [10.0, 20.0]
    result.wcs.crpix = [48, 48]
    result.wcs.cdelt = [-6 / 3600, 6 / 3600]
    return result


def test_catalog_table_of_pixels_adds_holes():
    catalog = Table({"x": [20.0, 70.0], "y": [30.0, 60.0]})
    result = build_source_mask(noise(), FWHM, detect=False, catalog=catalog)
    assert result.mask[30, 20] and result.mask[60, 70]
    assert result.catalog["origin"].tolist() == ["catalog", "catalog"]
    # A position with no source still gets the hole of a threshold source.
    assert np.all(result.catalog["hole_radius"].value >= 2.9)


def test_catalog_hole_radius_column_is_honoured():
    catalog = QTable({"x": [40.0], "y": [40.0], "hole_radius": [8.0] * u.pix})
    result = build_source_mask(noise(), FWHM, detect=False, catalog=catalog)
    assert result.mask.sum() == pytest.approx(np.pi * 64, rel=0.05)
    angular = QTable({"x": [40.0], "y": [40.0], "hole_radius": [48.0] * u.arcsec})
    on_sky = build_source_mask(CCDData(noise(), unit="Jy", wcs=wcs()), FWHM, detect=False,
                               catalog=angular)
    np.testing.assert_array_equal(on_sky.mask, result.mask)


def test_catalog_hole_follows_the_measured_snr():
    data = noise() + source(40.0, 50.0, 500.0)
    result = build_source_mask(data, FWHM, detect=False, catalog=Table({"x": [40.0],
                                                                        "y": [50.0]}))
    assert result.catalog["peak_snr"][0] == pytest.approx(500.0, rel=0.1)


def test_catalog_in_sky_coordinates():
    the_wcs = wcs()
    position = the_wcs.pixel_to_world(30.0, 60.0)
    ccd = CCDData(noise(), unit="Jy", wcs=the_wcs)
    for catalog in (
        position,
        SkyCoord([position.ra], [position.dec]),
        QTable({"sky_centroid": SkyCoord([position.ra], [position.dec])}),
        Table({"ra": [position.ra.deg], "dec": [position.dec.deg]}),
        QTable({"ra": [position.ra.deg] * u.deg, "dec": [position.dec.deg] * u.deg}),
    ):
        result = build_source_mask(ccd, FWHM, detect=False, catalog=catalog)
        assert len(result.catalog) == 1 and result.mask[60, 30]
        assert result.catalog["x"][0] == pytest.approx(30.0)


def test_sky_catalog_without_wcs_is_an_error():
    with pytest.raises(ValueError, match="WCS"):
        build_source_mask(noise(), FWHM, catalog=SkyCoord(10 * u.deg, 20 * u.deg))


def test_catalog_off_map_rows_are_listed_in_a_warning():
    catalog = Table({"x": [20.0, -40.0, 500.0], "y": [30.0, 10.0, 10.0]})
    with pytest.warns(AstropyUserWarning, match=r"rows \[1, 2\] fall off the map"):
        result = build_source_mask(noise(), FWHM, detect=False, catalog=catalog)
    assert len(result.catalog) == 1


def test_catalog_nan_positions_are_an_error():
    with pytest.raises(ValueError, match=r"rows \[1\] have NaN"):
        build_source_mask(noise(), FWHM, catalog=Table({"x": [2.0, np.nan], "y": [3.0, 4.0]}))


@pytest.mark.parametrize(
    ("catalog", "error"),
    [(Table({"a": [1.0]}), ValueError), ([(1.0, 2.0)], TypeError),
     (Table({"x": [5.0], "y": [5.0], "hole_radius": [-1.0]}), ValueError)],
)
def test_bad_catalogs_are_rejected(catalog, error):
    with pytest.raises(error):
        build_source_mask(noise(), FWHM, catalog=catalog)


def test_regions_objects_add_holes():
    circle = CirclePixelRegion(PixCoord(30.0, 40.0), 5.0)
    box = RectanglePixelRegion(PixCoord(70.0, 70.0), width=6.0, height=4.0)
    result = build_source_mask(noise(), FWHM, detect=False, regions=Regions([circle, box]))
    expected = circle.to_mask(mode="center").to_image(SHAPE).astype(bool)
    expected |= box.to_mask(mode="center").to_image(SHAPE).astype(bool)
    np.testing.assert_array_equal(result.mask, expected)
    assert result.catalog["origin"].tolist() == ["region", "region"]
    shapes = result.regions()
    assert shapes[0] is circle and shapes[1] is box


def test_point_region_is_a_position():
    result = build_source_mask(noise(), FWHM, detect=False,
                               regions=PointPixelRegion(PixCoord(50.0, 20.0)))
    assert result.mask[20, 50] and len(result.catalog) == 1
    assert isinstance(result.regions()[0], CirclePixelRegion)


def test_region_file_ds9(tmp_path):
    path = tmp_path / "user.reg"
    path.write_text("# Region file format: DS9\nimage\ncircle(31,41,5)\n")
    result = build_source_mask(noise(), FWHM, detect=False, regions=str(path))
    assert result.mask[40, 30] and result.mask[40, 34] and not result.mask[40, 36]


def test_sky_region_needs_and_uses_the_wcs():
    the_wcs = wcs()
    region = CircleSkyRegion(the_wcs.pixel_to_world(30.0, 40.0), 30 * u.arcsec)
    result = build_source_mask(CCDData(noise(), unit="Jy", wcs=the_wcs), FWHM, detect=False,
                               regions=region)
    assert result.mask[40, 30] and result.mask[40, 34] and not result.mask[40, 36]
    assert isinstance(result.regions()[0], CircleSkyRegion)
    with pytest.raises(ValueError, match="WCS"):
        build_source_mask(noise(), FWHM, regions=region)


def test_malformed_region_file_is_an_error(tmp_path):
    path = tmp_path / "bad.reg"
    path.write_text("# Region file format: DS9\nimage\ncircle(31,41,5)\nblob(1,2,3\n")
    with pytest.raises(ValueError, match="cannot be parsed"):
        build_source_mask(noise(), FWHM, regions=path)
    empty = tmp_path / "empty.reg"
    empty.write_text("# nothing here\n")
    with pytest.raises(ValueError, match="no region"):
        build_source_mask(noise(), FWHM, regions=empty)


def test_missing_region_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        build_source_mask(noise(), FWHM, protect=tmp_path / "none.reg")


def test_regions_without_area_are_rejected():
    line = LinePixelRegion(PixCoord(1.0, 1.0), PixCoord(20.0, 20.0))
    with pytest.raises(ValueError, match="no area"):
        build_source_mask(noise(), FWHM, regions=line)
    with pytest.raises(TypeError):
        build_source_mask(noise(), FWHM, regions=42)


def test_protect_keeps_a_source_unmasked():
    data = noise() + source(30.0, 30.0, 100.0) + source(70.0, 60.0, 100.0)
    protect = CirclePixelRegion(PixCoord(30.0, 30.0), 12.0)
    result = build_source_mask(data, FWHM, protect=protect)
    assert not result.mask[18:43, 18:43].any()
    assert result.mask[60, 70]
    assert len(result.catalog) == 1


def test_protect_clips_user_holes_with_a_warning():
    protect = CirclePixelRegion(PixCoord(40.0, 40.0), 4.0)
    catalog = Table({"x": [40.0], "y": [40.0], "hole_radius": [8.0]})
    with pytest.warns(AstropyUserWarning, match="protect"):
        result = build_source_mask(noise(), FWHM, detect=False, catalog=catalog,
                                   protect=protect)
    assert not result.mask[40, 40] and result.mask[40, 46]
    assert result.catalog["flags"][0] & FLAG_PROTECTED


def test_catalog_position_without_coverage_is_harmless():
    data = noise()
    data[:, :30] = np.nan
    result = build_source_mask(data, FWHM, detect=False,
                               catalog=Table({"x": [10.0, 31.0], "y": [40.0, 40.0]}))
    assert len(result.catalog) == 2
    assert not result.mask[:, :30].any() and result.mask[40, 31]


def test_region_off_the_map_is_ignored_with_a_warning():
    off_map = CirclePixelRegion(PixCoord(200.0, 30.0), 3.0)
    with pytest.warns(AstropyUserWarning, match="covers no pixel centre"):
        result = build_source_mask(noise(), FWHM, detect=False,
                                   regions=[off_map, CirclePixelRegion(PixCoord(30.0, 40.0), 3.0)])
    assert result.catalog["origin"].tolist() == ["region"] and result.mask[40, 30]
    assert len(result.regions()) == 1


def test_region_between_pixel_centres_is_not_said_to_be_off_the_map():
    between = CirclePixelRegion(PixCoord(40.5, 30.5), 0.3)
    with pytest.warns(AstropyUserWarning, match="between pixel centres"):
        result = build_source_mask(noise(), FWHM, detect=False, regions=between)
    assert len(result.catalog) == 0 and not result.mask.any()


def test_protect_region_off_the_map_is_reported():
    with pytest.warns(AstropyUserWarning, match="protect region .* covers no pixel centre"):
        build_source_mask(noise(), FWHM, detect=False,
                          protect=CirclePixelRegion(PixCoord(-50.0, 30.0), 5.0))


def test_point_in_protect_is_an_error():
    data = noise() + source(40.0, 30.0, 100.0)
    with pytest.raises(ValueError, match="point region .* protects nothing"):
        build_source_mask(data, FWHM, protect=PointPixelRegion(PixCoord(40.0, 30.0)))


def test_point_region_far_off_the_map_is_ignored_with_a_warning():
    far = PointPixelRegion(PixCoord(200.0, 30.0))
    with pytest.warns(AstropyUserWarning, match="off the map"):
        result = build_source_mask(noise(), FWHM, detect=False, regions=far)
    assert len(result.catalog) == 0 and len(result.regions()) == 0


def test_point_region_just_off_the_map_keeps_the_part_of_its_hole_on_it():
    result = build_source_mask(noise(), FWHM, detect=False,
                               regions=PointPixelRegion(PixCoord(-1.0, 30.0)))
    assert len(result.catalog) == 1 and result.mask[30, 0]


@pytest.mark.parametrize(
    "catalog",
    [QTable({"x": [40.0] * u.deg, "y": [30.0] * u.deg}),
     Table({"x": Column([40.0], unit="arcsec"), "y": Column([30.0], unit="arcsec")})],
)
def test_catalog_pixel_columns_in_another_unit_are_an_error(catalog):
    with pytest.raises(ValueError, match="in pixels"):
        build_source_mask(noise(), FWHM, detect=False, catalog=catalog)


def test_catalog_pixel_columns_may_carry_the_pixel_unit():
    catalog = QTable({"x": [40.0] * u.pix, "y": [30.0] * u.pix})
    result = build_source_mask(noise(), FWHM, detect=False, catalog=catalog)
    assert result.catalog["x"][0] == 40.0 and result.mask[30, 40]


def test_catalog_infinite_hole_radius_is_an_error():
    catalog = Table({"x": [40.0], "y": [30.0], "hole_radius": [np.inf]})
    with pytest.raises(ValueError, match="not positive and finite"):
        build_source_mask(noise(), FWHM, detect=False, catalog=catalog)


def test_catalog_masked_hole_radius_leaves_it_to_the_rule():
    radius = MaskedColumn([8.0, 0.0], mask=[False, True])
    catalog = Table({"x": [40.0, 70.0], "y": [30.0, 60.0], "hole_radius": radius})
    result = build_source_mask(noise(), FWHM, detect=False, catalog=catalog)
    rule = build_source_mask(noise(), FWHM, detect=False,
                             catalog=Table({"x": [70.0], "y": [60.0]}))
    assert result.catalog["hole_radius"][0].value == pytest.approx(8.0)
    assert result.catalog["hole_radius"][1] == rule.catalog["hole_radius"][0]


def test_catalog_hole_radius_column_unit_of_a_plain_table_is_honoured():
    # A Table (not QTable) keeps the unit on the Column: 48 arcsec is 8 pixels of 6 arcsec.
    catalog = Table({"x": [40.0], "y": [40.0], "hole_radius": Column([48.0], unit="arcsec")})
    result = build_source_mask(CCDData(noise(), unit="Jy", wcs=wcs()), FWHM, detect=False,
                               catalog=catalog)
    assert result.catalog["hole_radius"][0].value == pytest.approx(8.0)


def test_catalog_hole_radius_in_a_wrong_unit_says_what_to_give():
    catalog = QTable({"x": [40.0], "y": [40.0], "hole_radius": [3.0] * u.Jy})
    with pytest.raises(ValueError, match="give it in pixels"):
        build_source_mask(noise(), FWHM, detect=False, catalog=catalog)


def test_catalog_of_another_type_says_what_to_give():
    with pytest.raises(TypeError, match=r"Table\(\{'x': x, 'y': y\}\)"):
        build_source_mask(noise(), FWHM, catalog=np.array([[40.0, 30.0]]))
