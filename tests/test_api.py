"""The public classes on whole maps: drop-in use, NDData in and out, FITS."""

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.stats import SigmaClip
from astropy.utils.exceptions import AstropyUserWarning
from photutils.background import MedianBackground, StdBackgroundRMS
from photutils.segmentation import SourceCatalog, SourceFinder, make_2dgaussian_kernel
from regions import CirclePixelRegion, CircleSkyRegion, PixCoord, Regions

from nemesis_bkg import CompactSourceRemover, PConvBackground
from nemesis_bkg.simulate import simulate_map


@pytest.fixture(scope="module")
def sim():
    return simulate_map(
        (160, 160), instrument="spire250", regime="filamentary", n_sources=12, seed=11
    )


@pytest.fixture(scope="module")
def result(sim):
    return CompactSourceRemover(device="cpu").remove(sim.data)


def photutils_script(background_class, data):
    """A typical photutils user script; only the class name changes."""
    sigma_clip = SigmaClip(sigma=3.0)
    bkg = background_class(
        data,
        (32, 32),
        filter_size=(3, 3),
        sigma_clip=sigma_clip,
        bkg_estimator=MedianBackground(),
        bkg_rms_estimator=StdBackgroundRMS(),
    )
    data_sub = data - bkg.background
    threshold = 2.0 * bkg.background_rms
    kernel = make_2dgaussian_kernel(3.0, size=5)
    from astropy.convolution import convolve

    convolved = convolve(data_sub, kernel)
    finder = SourceFinder(n_pixels=10, progress_bar=False)
    segment_map = finder(convolved, threshold)
    return SourceCatalog(data_sub, segment_map, convolved_data=convolved).to_table()


def test_drop_in_for_background2d_in_a_photutils_script(sim):
    from photutils.background import Background2D

    data = np.nan_to_num(np.asarray(sim.data.data), nan=0.0)
    ours = photutils_script(
        lambda *args, **kwargs: PConvBackground(
            *args, **kwargs, instrument="spire250", wcs=sim.data.wcs, device="cpu"
        ),
        data,
    )
    theirs = photutils_script(Background2D, data)
    assert len(ours) > 0 and len(theirs) > 0
    assert set(ours.colnames) == set(theirs.colnames)


def test_background_equals_input_outside_holes(sim):
    bkg = PConvBackground(sim.data, (32, 32), device="cpu")
    covered = np.isfinite(sim.data.data)
    outside = covered & ~bkg.source_mask
    assert bkg.source_mask.any()
    assert isinstance(bkg.background, u.Quantity) and bkg.background.unit == sim.data.unit
    np.testing.assert_array_equal(bkg.background.value[outside], sim.data.data[outside])
    assert np.all(bkg.background_error.value[outside] == 0)
    assert np.all(bkg.background_error.value[bkg.source_mask & covered] > 0)
    assert np.all(bkg.background.value[~covered] == 0.0)  # fill_value
    assert bkg.background_rms.shape == sim.data.shape
    assert np.isfinite(bkg.background_median.value) and bkg.background_rms_median.value > 0
    assert len(bkg.catalog) >= 1


def test_detect_false_inpaints_exactly_the_mask(sim):
    mask = np.zeros(sim.data.shape, bool)
    mask[70:76, 80:86] = True
    bkg = PConvBackground(
        np.asarray(sim.data.data),
        (32, 32),
        mask=mask,
        detect=False,
        beam_fwhm=sim.fwhm_pixels,
        device="cpu",
    )
    covered = np.isfinite(sim.data.data)
    np.testing.assert_array_equal(bkg.source_mask, mask & covered)
    assert not isinstance(bkg.background, u.Quantity)


def test_nddata_mask_is_honoured(sim):
    mask = np.zeros(sim.data.shape, bool)
    mask[40:44, 40:44] = True
    masked = CCDData(
        sim.data.data, unit=sim.data.unit, wcs=sim.data.wcs, mask=mask, meta=sim.data.meta
    )
    bkg = PConvBackground(masked, (32, 32), device="cpu")
    covered = np.isfinite(sim.data.data)
    assert np.all(bkg.source_mask[mask & covered])


def test_remove_returns_nddata_of_the_input_class(sim, result):
    assert isinstance(result.background, CCDData) and isinstance(result.sources, CCDData)
    assert result.background.unit == sim.data.unit
    assert result.background.wcs.has_celestial
    assert isinstance(result.background.uncertainty, StdDevUncertainty)
    np.testing.assert_allclose(result.background.data + result.sources.data, sim.data.data)
    assert result.background.mask.dtype == bool
    np.testing.assert_array_equal(result.background.mask, ~np.isfinite(sim.data.data))
    holes = result.source_mask
    assert np.all(
        result.sources.uncertainty.array[holes] >= result.background.uncertainty.array[holes]
    )
    assert sim.data.data is not result.background.data


def test_input_is_not_modified(sim):
    before = sim.data.data.copy()
    CompactSourceRemover(device="cpu").remove(sim.data)
    np.testing.assert_array_equal(sim.data.data, before)


def test_plain_array_needs_a_beam(sim):
    with pytest.raises(ValueError, match="beam_fwhm"):
        CompactSourceRemover(device="cpu").remove(np.asarray(sim.data.data))
    out = CompactSourceRemover(beam_fwhm=sim.fwhm_pixels, device="cpu").remove(
        NDData(np.asarray(sim.data.data))
    )
    assert type(out.background) is NDData and out.background.unit is None


def test_regions_are_sky_circles(result):
    regions = result.regions()
    assert isinstance(regions, Regions) and len(regions) == len(result.catalog)
    assert all(isinstance(region, CircleSkyRegion) for region in regions)


def test_write_multi_extension_fits(result, tmp_path):
    path = tmp_path / "out.fits"
    result.write(path)
    with fits.open(path) as hdul:
        names = [hdu.name for hdu in hdul]
        assert names[1:] == [
            "BACKGROUND",
            "BACKGROUND_ERR",
            "SOURCES",
            "SOURCES_ERR",
            "SOURCE_MASK",
            "COVERAGE",
            "CATALOG",
        ]
        assert hdul[0].header["NEMVERS"]
        assert hdul[0].header["BEAMPIX"] == pytest.approx(result.fwhm_pixels)
        assert len(hdul["CATALOG"].data) == len(result.catalog)
        np.testing.assert_array_equal(hdul["BACKGROUND"].data, result.background.data)
        assert hdul["BACKGROUND"].header["CTYPE1"].startswith("RA")
    with pytest.raises(FileExistsError, match="overwrite"):
        result.write(path)
    result.write(path, overwrite=True)
    assert not list(tmp_path.glob("*.part"))


def test_psf_widens_the_holes_of_a_beam_with_sidelobes(sim):
    simulated = simulate_map((160, 160), instrument="spire250", regime="cirrus", n_sources=6,
                             realistic_beam=True, seed=12)
    psf = simulated.beam.stamp(0.0, 0.0)
    gaussian = CompactSourceRemover(device="cpu").remove(simulated.data)
    measured = CompactSourceRemover(device="cpu", psf=psf).remove(simulated.data)
    assert measured.source_mask.sum() > gaussian.source_mask.sum()
    assert np.all(measured.source_mask[gaussian.source_mask])
    with pytest.raises(ValueError, match="odd"):
        CompactSourceRemover(psf=np.ones((4, 4)))


def test_holes_in_every_mesh_box_do_not_break_the_background():
    from photutils.background import Background2D

    # Bright, dense sources: every 64x64 box loses more than exclude_percentile (10 %) of its
    # pixels to the holes, so photutils has no box left for the mesh of the holed map (it has
    # on the map itself); the background, which needs no mesh, must not care.
    dense = simulate_map((128, 128), instrument="spire250", n_sources=60, seed=3,
                         nan_border=False, snr_range=(200.0, 3000.0))
    assert Background2D(dense.data, (64, 64)).background_mesh.shape == (2, 2)
    bkg = PConvBackground(dense.data, (64, 64), device="cpu")
    assert bkg.source_mask.mean() > 0.1
    assert np.isfinite(bkg.background).all() and np.isfinite(bkg.background_median)
    with pytest.raises(ValueError, match="exclude_percentile"):
        _ = bkg.background_mesh


def test_mesh_keywords_are_attributes_as_in_background2d(sim):
    from photutils.background import Background2D

    data = np.nan_to_num(np.asarray(sim.data.data), nan=0.0)
    coverage = np.zeros(data.shape, bool)
    coverage[:5] = True
    keywords = {"coverage_mask": coverage, "fill_value": -1.0, "exclude_percentile": 50.0,
                "filter_size": 5, "filter_threshold": 0.1, "sigma_clip": SigmaClip(sigma=2.5)}
    ours = PConvBackground(data, (32, 200), beam_fwhm=sim.fwhm_pixels, device="cpu", **keywords)
    theirs = Background2D(data, (32, 200), **keywords)
    for name in ("box_size", "filter_size", "coverage_mask"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
    for name in ("fill_value", "exclude_percentile", "filter_threshold", "sigma_clip"):
        assert getattr(ours, name) == getattr(theirs, name)
    assert ours.background_mesh.shape == theirs.background_mesh.shape
    np.testing.assert_array_equal(ours.background[coverage], -1.0)


@pytest.mark.parametrize(
    ("keywords", "match"),
    [
        ({"box_size": 0}, "box_size"),
        ({"box_size": (32.5, 32)}, "box_size"),
        ({"box_size": 32, "filter_size": (2, 2)}, "odd"),
        ({"box_size": 32, "exclude_percentile": 120.0}, "exclude_percentile"),
    ],
)
def test_bad_mesh_keywords_fail_before_the_removal(sim, monkeypatch, keywords, match):
    def removal_must_not_run(*args, **kwargs):
        raise AssertionError("the removal ran before the keywords were checked")

    monkeypatch.setattr(CompactSourceRemover, "_remove_image", removal_must_not_run)
    box_size = keywords.pop("box_size")
    with pytest.raises(ValueError, match=match):
        PConvBackground(sim.data, box_size, device="cpu", **keywords)


def test_medians_of_a_dask_background_say_why_they_are_missing(sim):
    dask_array = pytest.importorskip("dask.array")
    lazy = dask_array.from_array(np.asarray(sim.data.data), chunks=80)
    bkg = PConvBackground(lazy, (32, 32), wcs=sim.data.wcs, instrument="spire250", device="cpu")
    for name in ("background_median", "background_rms_median", "background_mesh"):
        with pytest.raises(TypeError, match="dask array"):
            getattr(bkg, name)


def test_user_masked_pixels_kept_out_of_the_holes_are_masked_in_the_background(sim):
    covered = np.isfinite(sim.data.data)
    row, column = np.argwhere(covered)[covered.sum() // 2]
    mask = np.zeros(sim.data.shape, bool)
    mask[row:row + 3, column:column + 3] = True
    protect = Regions([CirclePixelRegion(PixCoord(column + 1, row + 1), 5.0)])
    with pytest.warns(AstropyUserWarning, match="protect"):
        result = CompactSourceRemover(device="cpu").remove(sim.data, mask=mask, protect=protect)
    # Not inpainted (protected), so the background there is the untrusted input itself.
    assert not result.source_mask[mask].any()
    assert result.background.mask[mask].all() and result.sources.mask[mask].all()
    np.testing.assert_array_equal(result.background.mask[~mask], ~covered[~mask])


def test_written_products_read_back_with_their_uncertainty(result, tmp_path):
    from nemesis_bkg.io import read_fits

    path = tmp_path / "products.fits"
    result.write(path)
    for name, product in (("BACKGROUND", result.background), ("SOURCES", result.sources)):
        nddata = read_fits(path, hdu=name)
        assert isinstance(nddata, CCDData) and nddata.unit == product.unit
        np.testing.assert_array_equal(nddata.data, product.data)
        np.testing.assert_array_equal(nddata.uncertainty.array, product.uncertainty.array)
        assert nddata.wcs.has_celestial


def test_photutils_aperture_photometry_on_the_sources_gives_the_injected_flux():
    # result.sources goes to photutils as it is (its uncertainty becomes the error); on a
    # Jy/pixel map the aperture sum over the encircled energy is the injected flux.
    from photutils.aperture import CircularAperture, aperture_photometry
    from scipy.spatial import cKDTree

    from nemesis_bkg.photometry import gaussian_aperture_correction

    sim = simulate_map((256, 256), instrument="pacs160", n_sources=40, seed=11)
    result = CompactSourceRemover(device="cpu").remove(sim.data)
    positions = np.column_stack([result.catalog["x"], result.catalog["y"]])
    phot = aperture_photometry(result.sources, CircularAperture(positions, r=result.fwhm_pixels))
    encircled = gaussian_aperture_correction(result.fwhm_pixels, result.fwhm_pixels)
    flux = (phot["aperture_sum"] * u.pix / encircled).to(u.Jy)
    flux_err = (phot["aperture_sum_err"] * u.pix / encircled).to(u.Jy)
    distance, index = cKDTree(np.column_stack([sim.catalog["x"], sim.catalog["y"]])).query(
        positions)
    matched = distance < 2
    true_flux = sim.catalog["flux"][index].to(u.Jy)
    assert matched.sum() >= 5
    relative = ((flux - true_flux) / true_flux)[matched]
    assert abs(np.median(relative)) < 0.1 and np.all(np.abs(relative) < 0.5)
    assert np.all(flux_err[matched] > 0) and np.all(np.isfinite(flux_err))
