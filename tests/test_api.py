"""The public classes on whole maps: drop-in use, NDData in and out, FITS."""

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.stats import SigmaClip
from photutils.background import MedianBackground, StdBackgroundRMS
from photutils.segmentation import SourceCatalog, SourceFinder, make_2dgaussian_kernel
from regions import CircleSkyRegion, Regions

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
