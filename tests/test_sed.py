"""Several bands of one field: SED table and specutils spectra."""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import CCDData

from nemesis_bkg.sed import remove_bands
from nemesis_bkg.simulate import simulate_map


@pytest.fixture(scope="module")
def multiband():
    # The same sky in two bands: one simulation's catalogue re-observed at 350 um would need
    # a sky model; two maps of the same field centre suffice to exercise the machinery.
    maps = {band: simulate_map((128, 128), instrument=band, n_sources=6, seed=5).data
            for band in ("spire350", "pacs160")}
    return remove_bands(maps, device="cpu")


def test_bands_are_ordered_and_reference_is_sharpest(multiband):
    assert list(multiband.results) == ["pacs160", "spire350"]
    assert multiband.reference_band == "pacs160"
    assert multiband.wavelengths.unit == u.um and np.all(np.diff(multiband.wavelengths) > 0)


def test_sed_table_has_fluxes_and_errors_per_band(multiband):
    sed = multiband.sed
    assert len(sed) == len(multiband.results["pacs160"].catalog) > 0
    for band in ("pacs160", "spire350"):
        assert sed[f"flux_{band}"].unit == u.Jy
        assert np.all(sed[f"flux_err_{band}"].value[np.isfinite(sed[f"flux_err_{band}"])] > 0)


def test_spectra_are_specutils_objects(multiband):
    from specutils import Spectrum

    spectra = multiband.spectra()
    assert len(spectra) == len(multiband.sed)
    spectrum = spectra[0]
    assert isinstance(spectrum, Spectrum)
    assert spectrum.spectral_axis.unit == u.um and spectrum.flux.unit == u.Jy
    assert spectrum.uncertainty.array.shape == (2,)


def test_bad_band_inputs():
    with pytest.raises(ValueError, match="at least one band"):
        remove_bands({})
    ccd = CCDData(np.zeros((32, 32)), unit="Jy/beam")
    with pytest.raises(ValueError, match="reference_band"):
        remove_bands({"spire250": ccd}, reference_band="pacs70")


def test_every_reference_source_is_inpainted_in_every_band(multiband):
    # A source without a hole in a band would read exactly 0 on its compact-only map.
    other = multiband.results["spire350"]
    assert len(other.catalog) >= len(multiband.sed)
    assert np.all(multiband.sed["flux_spire350"].value != 0)


def test_two_keys_for_one_band_are_refused():
    ccd = CCDData(np.zeros((32, 32)), unit="Jy/beam")
    with pytest.raises(ValueError, match="'spire250' and 'PSW' are both the band spire250"):
        remove_bands({"spire250": ccd, "PSW": ccd})


@pytest.mark.parametrize(
    ("unit", "wcs", "match"),
    [("Jy/beam", False, "no celestial WCS"), ("adu", True, "cannot be turned into a flux")],
)
def test_unusable_maps_are_refused_before_any_removal(monkeypatch, unit, wcs, match):
    from nemesis_bkg import CompactSourceRemover

    def removal_must_not_run(*args, **kwargs):
        raise AssertionError("a removal ran before every map was checked")

    monkeypatch.setattr(CompactSourceRemover, "_remove_image", removal_must_not_run)
    good = simulate_map((64, 64), instrument="pacs160", n_sources=2, seed=5).data
    other = simulate_map((64, 64), instrument="spire350", n_sources=2, seed=5).data
    bad = CCDData(other.data, unit=unit, wcs=other.wcs if wcs else None)
    with pytest.raises(ValueError, match=match):
        remove_bands({"pacs160": good, "spire350": bad}, device="cpu")


def test_spectra_mask_bands_without_a_measurement():
    # specutils masks the NaN fluxes itself; the docstring of spectra() relies on it.
    from astropy.coordinates import SkyCoord
    from astropy.table import QTable

    from nemesis_bkg.sed import MultiBandResult

    sed = QTable({"id": [1], "sky_centroid": SkyCoord([10.0] * u.deg, [-5.0] * u.deg),
                  "flux_pacs160": [2.0] * u.Jy, "flux_err_pacs160": [0.1] * u.Jy,
                  "flux_spire250": [np.nan] * u.Jy, "flux_err_spire250": [np.nan] * u.Jy})
    multiband = MultiBandResult(results={"pacs160": None, "spire250": None},
                                reference_band="pacs160", sed=sed)
    (spectrum,) = multiband.spectra()
    np.testing.assert_array_equal(spectrum.mask, [False, True])
    assert spectrum.meta["id"] == 1


def test_holes_of_the_reference_mask_are_not_sources():
    reference = simulate_map((128, 128), instrument="pacs160", n_sources=6, seed=5).data
    covered = np.isfinite(reference.data)
    row, column = np.argwhere(covered)[covered.sum() // 3]
    bad_pixels = np.zeros(reference.shape, bool)
    bad_pixels[row:row + 4, column:column + 4] = True
    masked = CCDData(reference.data, unit=reference.unit, wcs=reference.wcs,
                     mask=bad_pixels, meta=reference.meta)
    other = simulate_map((128, 128), instrument="spire350", n_sources=6, seed=5).data
    multiband = remove_bands({"pacs160": masked, "spire350": other}, device="cpu")
    catalog = multiband.results["pacs160"].catalog
    assert "mask" in list(catalog["origin"])
    assert len(multiband.sed) == np.count_nonzero(catalog["origin"] == "detected")
    x, y = multiband.sed["sky_centroid"].to_pixel(reference.wcs)
    assert not bad_pixels[np.round(y).astype(int), np.round(x).astype(int)].any()
