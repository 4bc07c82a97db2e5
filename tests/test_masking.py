"""Tests of nemesis_bkg.masking: detection, compactness, holes, outputs."""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable
from astropy.wcs import WCS
from regions import CirclePixelRegion, CircleSkyRegion, Regions

from nemesis_bkg.io import read_image
from nemesis_bkg.masking import (
    FLAG_EDGE,
    FLAG_MERGED,
    SourceMask,
    SourceMasker,
    build_source_mask,
    hole_radius,
)
from nemesis_bkg.masking.detection import refine_peaks
from nemesis_bkg.masking.result import FLAG_TENTATIVE

FWHM = 3.5
SIGMA = FWHM / np.sqrt(8 * np.log(2))


def gaussians(shape, positions, peaks, sigma=SIGMA):
    y, x = np.indices(shape, dtype=float)
    image = np.zeros(shape)
    for (x0, y0), peak in zip(positions, peaks, strict=True):
        image += peak * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
    return image


def noise(shape, seed=0):
    return np.random.default_rng(seed).normal(0.0, 1.0, shape)


def celestial_wcs(shape):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [83.8, -5.4]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cdelt = [-6 / 3600, 6 / 3600]
    wcs.wcs.cunit = ["deg", "deg"]
    return wcs


ISOLATED = [(30.3, 40.7), (90.6, 30.2), (140.1, 50.5), (50.4, 120.9), (120.8, 130.3),
            (80.2, 85.6)]


def test_isolated_sources_at_snr_10_are_detected_and_masked():
    shape = (170, 170)
    data = gaussians(shape, ISOLATED, [10.0] * len(ISOLATED)) + noise(shape)
    result = build_source_mask(read_image(data), FWHM)
    catalog = result.catalog
    assert len(catalog) == len(ISOLATED)
    for x0, y0 in ISOLATED:
        distance = np.hypot(catalog["x"] - x0, catalog["y"] - y0)
        nearest = np.argmin(distance)
        assert distance[nearest] < 0.7
        assert 6.0 < catalog["peak_snr"][nearest] < 14.0
        assert result.mask[int(round(y0)), int(round(x0))]
    assert set(catalog["origin"]) == {"detected"}
    # Each hole is about the rule's radius: about pi r**2 pixels per source.
    expected_area = np.pi * hole_radius(10.0, FWHM) ** 2 * len(ISOLATED)
    assert 0.7 * expected_area < result.mask.sum() < 1.5 * expected_area


def test_brighter_sources_get_bigger_holes():
    shape = (100, 160)
    data = gaussians(shape, [(40.0, 50.0), (120.0, 50.0)], [15.0, 1500.0]) + noise(shape)
    catalog = build_source_mask(data, FWHM).catalog
    catalog.sort("x")
    assert len(catalog) == 2
    assert catalog["hole_radius"][1] > catalog["hole_radius"][0] + 1.5 * u.pix
    assert catalog["hole_radius"].unit == u.pix


def filament_map(shape, amplitude=60.0, width_beams=2.0, seed=1):
    """A straight Plummer-like ridge across the map, plus noise."""
    y, x = np.indices(shape, dtype=float)
    distance = (x - 0.3 * y - 40.0) / np.hypot(1.0, 0.3)
    flat = width_beams * FWHM / 2
    ridge = amplitude * (1 + (distance / flat) ** 2) ** -0.75
    # Slow changes along the crest, as in real filaments.
    ridge *= 1 + 0.2 * np.sin(y / 25.0)
    return ridge + noise(shape, seed)


def test_filament_is_not_masked():
    shape = (160, 160)
    data = filament_map(shape)
    result = build_source_mask(data, FWHM)
    assert result.mask.sum() == 0
    assert len(result.catalog) == 0


def test_source_on_filament_is_masked_but_not_the_filament():
    shape = (160, 160)
    on_crest = (40.0 + 0.3 * 80.0, 80.0)
    data = filament_map(shape) + gaussians(shape, [on_crest], [40.0])
    result = build_source_mask(data, FWHM)
    assert result.mask[80, int(round(on_crest[0]))]
    assert len(result.catalog) == 1
    # The filament's crest segmented with the source does not join the hole: the hole is
    # the rule's disk only.
    row = result.catalog[0]
    assert row["hole_radius"].value == pytest.approx(hole_radius(row["peak_snr"], FWHM))
    assert result.mask.sum() <= np.pi * (row["hole_radius"].value + 0.5) ** 2


def test_extended_clump_is_not_masked():
    shape = (128, 128)
    data = gaussians(shape, [(64.0, 64.0)], [80.0], sigma=3 * SIGMA) + noise(shape)
    assert build_source_mask(data, FWHM).mask.sum() == 0
    with_limit = build_source_mask(data, FWHM, max_size_ratio=4.0)
    assert with_limit.mask[64, 64]


def test_map_without_sources_gives_empty_mask_and_typed_catalog():
    shape = (96, 96)
    result = build_source_mask(noise(shape, seed=4), FWHM)
    assert result.mask.dtype == bool and not result.mask.any()
    catalog = result.catalog
    assert isinstance(catalog, QTable) and len(catalog) == 0
    assert catalog.colnames == ["id", "x", "y", "sky_centroid", "peak_snr", "hole_radius",
                                "segment_area", "flags", "origin"]
    assert catalog["hole_radius"].unit == u.pix
    assert catalog["segment_area"].unit == u.pix**2
    assert len(result.regions()) == 0


def test_constant_map_gives_no_holes():
    result = build_source_mask(np.full((64, 64), 3.0), FWHM)
    assert not result.mask.any() and len(result.catalog) == 0


def test_nan_border_is_never_a_hole_and_edge_sources_are_flagged():
    shape = (128, 128)
    data = gaussians(shape, [(64.0, 64.0), (20.0, 64.0)], [50.0, 50.0]) + noise(shape)
    data[:, :18] = np.nan
    result = build_source_mask(data, FWHM)
    assert not result.mask[:, :18].any()
    assert np.all(np.isfinite(result.background)) and np.all(result.background_rms > 0)
    catalog = result.catalog
    assert len(catalog) == 2
    edge = catalog[np.argmin(catalog["x"])]
    centre = catalog[np.argmax(catalog["x"])]
    assert edge["flags"] & FLAG_EDGE and not centre["flags"] & FLAG_EDGE
    assert result.mask[64, 20] and result.mask[64, 64]


def test_close_pair_holes_merge():
    shape = (96, 96)
    data = gaussians(shape, [(44.0, 48.0), (44.0 + 1.8 * FWHM, 48.0)], [80.0, 60.0])
    result = build_source_mask(data + noise(shape), FWHM)
    # A noise peak lifted by the pair's over-subtraction is masked too, flagged tentative.
    sources = result.catalog[(result.catalog["flags"] & FLAG_TENTATIVE) == 0]
    assert len(sources) == 2
    assert np.all(sources["flags"] & FLAG_MERGED)


def test_faint_companion_of_a_bright_source_gets_a_hole():
    shape = (96, 96)
    bright, faint = (40.0, 48.0), (40.0 + 1.4 * FWHM, 48.0)
    data = gaussians(shape, [bright, faint], [3000.0, 600.0]) + noise(shape)
    catalog = build_source_mask(data, FWHM).catalog
    distance = np.hypot(catalog["x"] - faint[0], catalog["y"] - faint[1])
    assert distance.min() < 1.0


def test_without_wcs_regions_are_pixel_circles():
    shape = (96, 96)
    data = gaussians(shape, [(48.0, 40.0)], [30.0]) + noise(shape)
    result = build_source_mask(data, FWHM)
    assert result.catalog["sky_centroid"][0] is None
    shapes = result.regions()
    assert isinstance(shapes, Regions) and len(shapes) == 1
    assert isinstance(shapes[0], CirclePixelRegion)
    assert shapes[0].radius == pytest.approx(result.catalog["hole_radius"][0].value)


def test_with_wcs_regions_are_sky_circles_and_write_to_ds9(tmp_path):
    shape = (96, 96)
    data = gaussians(shape, [(48.0, 40.0)], [30.0]) + noise(shape)
    wcs = celestial_wcs(shape)
    ccd = CCDData(data, unit="Jy/beam", wcs=wcs)
    result = build_source_mask(ccd, 18.0 * u.arcsec)
    assert result.fwhm_pixels == pytest.approx(3.0)
    sky = result.catalog["sky_centroid"][0]
    assert sky.separation(wcs.pixel_to_world(48.0, 40.0)) < 6 * u.arcsec
    shapes = result.regions()
    assert isinstance(shapes[0], CircleSkyRegion)
    radius_pixels = result.catalog["hole_radius"][0].value
    assert shapes[0].radius.to_value(u.arcsec) == pytest.approx(6.0 * radius_pixels, rel=1e-3)
    path = tmp_path / "holes.reg"
    shapes.write(path, format="ds9")
    assert len(Regions.read(path, format="ds9")) == 1


def test_input_is_not_modified():
    shape = (96, 96)
    data = gaussians(shape, [(48.0, 40.0)], [30.0]) + noise(shape)
    data[:5] = np.nan
    mask = np.zeros(shape, bool)
    mask[70:74, 70:74] = True
    ccd = CCDData(data.copy(), unit="Jy/beam", mask=mask.copy(),
                  uncertainty=StdDevUncertainty(np.ones(shape)))
    image = read_image(ccd)
    before = image.data.copy()
    build_source_mask(ccd, FWHM)
    build_source_mask(image, FWHM)
    np.testing.assert_array_equal(ccd.data, data)
    np.testing.assert_array_equal(ccd.mask, mask)
    np.testing.assert_array_equal(image.data, before)


def test_user_mask_becomes_holes_with_catalog_rows():
    shape = (96, 96)
    mask = np.zeros(shape, bool)
    mask[10:14, 60:66] = True
    data = noise(shape)
    data[:, :3] = np.nan
    mask[40:44, 0:6] = True  # partly without coverage: only covered pixels become holes
    result = build_source_mask(read_image(data, mask=mask), FWHM)
    expected = mask & np.isfinite(data)
    np.testing.assert_array_equal(result.mask, expected)
    rows = result.catalog[result.catalog["origin"] == "mask"]
    assert len(rows) == 2
    assert sorted(rows["segment_area"].value.tolist()) == [12.0, 24.0]


def test_uncertainty_is_the_noise_map():
    shape = (64, 64)
    error = np.full(shape, 2.0)
    result = build_source_mask(read_image(2.0 * noise(shape), uncertainty=error), FWHM)
    np.testing.assert_allclose(result.background_rms, 2.0)


def test_noise_is_estimated_without_uncertainty():
    shape = (128, 128)
    y, x = np.indices(shape, dtype=float)
    data = 100 + 0.5 * x + 3.0 * noise(shape)
    result = build_source_mask(data, FWHM)
    assert np.median(result.background_rms) == pytest.approx(3.0, rel=0.15)
    assert np.median(np.abs(result.background - (100 + 0.5 * x))) < 1.5


def test_detect_false_uses_only_user_inputs():
    shape = (96, 96)
    data = gaussians(shape, [(48.0, 40.0)], [100.0]) + noise(shape)
    result = build_source_mask(data, FWHM, detect=False)
    assert not result.mask.any() and len(result.catalog) == 0


def test_result_is_a_source_mask():
    result = SourceMasker()(noise((48, 48)), FWHM)
    assert isinstance(result, SourceMask)
    assert result.mask.shape == result.background.shape == result.background_rms.shape


@pytest.mark.parametrize(
    "options",
    [{"snr_threshold": 0}, {"max_size_ratio": 1.0}, {"dilate": -1}, {"dilate": 1.5},
     {"k": np.nan}, {"structure_box": 0}, {"margin": -1.0}, {"margin": np.inf},
     {"min_curvature_snr": np.nan}, {"min_curvature_snr": -1.0}],
)
def test_bad_options_are_rejected(options):
    with pytest.raises(ValueError, match=next(iter(options))):
        SourceMasker(**options)


@pytest.mark.parametrize("options", [{"snr_threshold": "5"}, {"dilate": "1"}, {"k": None}])
def test_options_that_are_no_numbers_are_a_type_error(options):
    with pytest.raises(TypeError, match=f"{next(iter(options))} must be a number"):
        SourceMasker(**options)


def test_bad_margin_is_refused_even_on_a_map_without_sources():
    # It used to be checked only when a source needed a hole.
    with pytest.raises(ValueError, match="margin"):
        build_source_mask(noise((48, 48)), FWHM, margin=-2.0)


@pytest.mark.parametrize("shape", [(20, 20), (12, 200)])
def test_maps_smaller_than_the_noise_boxes_are_masked(shape):
    # The noise boxes are 10 beams (35 pixels) wide: these maps could not fill half of one.
    centre = (shape[1] // 2, shape[0] // 2)
    data = gaussians(shape, [centre], [40.0]) + noise(shape, seed=2)
    result = build_source_mask(data, FWHM)
    assert len(result.catalog) == 1 and result.mask[centre[1], centre[0]]
    assert np.allclose(np.median(result.background_rms), 1.0, rtol=0.35)


def test_hole_cut_by_the_map_border_is_flagged_edge():
    shape = (96, 96)
    data = gaussians(shape, [(48.0, 1.0), (48.0, 48.0)], [60.0, 60.0]) + noise(shape)
    catalog = build_source_mask(data, FWHM).catalog
    assert len(catalog) == 2
    border = catalog[np.argmin(catalog["y"])]
    inner = catalog[np.argmax(catalog["y"])]
    assert border["flags"] & FLAG_EDGE and not inner["flags"] & FLAG_EDGE


def test_source_on_the_last_row_stays_on_the_map():
    # No parabola can be fitted across the map's last row: the refined position used to be
    # put on the map's border (y = 79.5) whatever the source's true position.
    shape = (80, 80)
    data = gaussians(shape, [(40.0, 78.8)], [100.0]) + noise(shape, seed=1)
    row = build_source_mask(data, FWHM).catalog[0]
    assert row["y"] == 79.0 and row["flags"] & FLAG_EDGE


def test_refine_peaks_keeps_edge_peaks_on_their_pixel():
    image = -((np.arange(9.0)[None, :] - 8.3) ** 2) - (np.arange(9.0)[:, None] - 4.2) ** 2
    y, x = refine_peaks(image, np.array([4]), np.array([8]))
    assert y[0] == pytest.approx(4.2) and x[0] == 8.0


def test_angular_beam_without_wcs_is_an_error():
    with pytest.raises(ValueError, match="WCS"):
        build_source_mask(noise((32, 32)), 18 * u.arcsec)


def test_unresolved_pair_about_a_beam_apart_is_masked():
    shape = (96, 96)
    pair = [(46.0, 48.0), (46.0 + 1.05 * FWHM, 48.0)]
    data = gaussians(shape, pair, [600.0, 650.0]) + noise(shape)
    result = build_source_mask(data, FWHM)
    assert len(result.catalog) >= 1
    for x0, y0 in pair:
        assert result.mask[int(round(y0)), int(round(x0))]


def test_ragged_nan_border_makes_no_holes():
    shape = (160, 160)
    y, x = np.indices(shape, dtype=float)
    angle = np.arctan2(y - 80, x - 80)
    covered = np.hypot(x - 80, y - 80) < 60 + 8 * np.sin(5 * angle) + 4 * np.sin(13 * angle)
    # A bright, curved background: the local background near the edge is extrapolated, so
    # the map does not end at zero residual.
    cloud = 200.0 + 0.02 * (x - 80) ** 2 + 0.01 * (y - 80) ** 2
    data = np.where(covered, cloud + noise(shape, seed=7), np.nan)
    result = build_source_mask(data, FWHM)
    assert len(result.catalog) == 0 and not result.mask.any()


def test_origin_must_be_whole_pixels():
    with pytest.raises(TypeError, match="origin must be a"):
        build_source_mask(noise((48, 48)), FWHM, origin=(0.5, 0))
