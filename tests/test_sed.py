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
