"""Tests of nemesis_bkg.simulate.simulate_map against its contract (notes/SIMULATE_API.md)."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.table import QTable

from nemesis_bkg.instruments import INSTRUMENTS, get_instrument, instrument_from_header
from nemesis_bkg.simulate import REGIMES, SimulatedMap, simulate_map
from nemesis_bkg.simulate.fields import gaussian_beam_transfer

FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))


@pytest.fixture(scope="module")
def filamentary():
    return simulate_map(
        (192, 160), instrument="pacs160", regime="filamentary", n_sources=60, seed=11
    )


def test_same_seed_gives_identical_maps():
    first = simulate_map((96, 96), n_sources=20, seed=5)
    second = simulate_map((96, 96), n_sources=20, seed=5)
    other = simulate_map((96, 96), n_sources=20, seed=6)
    for name in ("background", "sources", "noise", "filament_mask", "coverage"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    np.testing.assert_array_equal(first.data.data, second.data.data)
    for column in ("x", "y", "flux", "peak_snr"):
        np.testing.assert_array_equal(first.catalog[column], second.catalog[column])
    assert not np.array_equal(first.sources, other.sources)
    assert not np.allclose(first.noise, other.noise, equal_nan=True)


def test_shapes_and_dtypes(filamentary):
    sim = filamentary
    assert isinstance(sim, SimulatedMap)
    assert isinstance(sim.data, CCDData)
    assert sim.data.shape == (192, 160)
    assert sim.data.data.dtype == np.float64
    for name in ("background", "sources", "noise"):
        array = getattr(sim, name)
        assert array.shape == (192, 160) and array.dtype == np.float64
    for name in ("filament_mask", "coverage"):
        assert getattr(sim, name).dtype == bool
    assert sim.data.unit == u.Unit(get_instrument("pacs160").bunit)
    assert isinstance(sim.data.uncertainty, StdDevUncertainty)
    np.testing.assert_array_equal(sim.data.uncertainty.array, sim.noise_std)
    assert sim.data.wcs.has_celestial


def test_data_is_the_sum_of_the_truth(filamentary):
    sim = filamentary
    covered = sim.coverage
    np.testing.assert_allclose(
        sim.data.data[covered], (sim.background + sim.sources + sim.noise)[covered], rtol=1e-12
    )
    assert np.isnan(sim.data.data[~covered]).all()
    assert np.isnan(sim.background[~covered]).all()
    assert np.isfinite(sim.sources).all()


def test_catalog_columns_and_units(filamentary):
    catalog = filamentary.catalog
    unit = filamentary.data.unit
    assert isinstance(catalog, QTable)
    for column in (
        "id",
        "x",
        "y",
        "sky_centroid",
        "flux",
        "peak",
        "peak_snr",
        "fwhm",
        "on_filament",
    ):
        assert column in catalog.colnames
    assert len(catalog) == 60
    assert catalog["flux"].unit == unit * u.pix
    assert catalog["peak"].unit == unit
    assert catalog["fwhm"].unit == u.pix
    assert isinstance(catalog["sky_centroid"], SkyCoord)
    assert catalog["on_filament"].dtype == bool
    np.testing.assert_allclose(catalog["fwhm"].value, filamentary.fwhm_pixels)
    np.testing.assert_allclose(
        catalog["peak_snr"], catalog["peak"].value / filamentary.noise_std, rtol=1e-12
    )
    x, y = filamentary.data.wcs.world_to_pixel(catalog["sky_centroid"])
    np.testing.assert_allclose(x, catalog["x"], atol=1e-6)
    np.testing.assert_allclose(y, catalog["y"], atol=1e-6)


def test_sources_sit_on_covered_pixels(filamentary):
    catalog = filamentary.catalog
    rows = np.round(catalog["y"]).astype(int)
    cols = np.round(catalog["x"]).astype(int)
    assert filamentary.coverage[rows, cols].all()


@pytest.mark.parametrize("instrument", ["pacs70", "pacs160", "spire500"])
def test_gaussian_flux_is_peak_times_beam_area(instrument):
    sim = simulate_map((128, 128), instrument=instrument, n_sources=25, seed=3)
    sigma = sim.fwhm_pixels * FWHM_TO_SIGMA
    expected = sim.catalog["peak"].value * 2 * np.pi * sigma**2
    np.testing.assert_allclose(sim.catalog["flux"].value, expected, rtol=1e-4)


def test_total_injected_flux_equals_source_map_sum(filamentary):
    total = filamentary.catalog["flux"].value.sum()
    assert abs(filamentary.sources.sum() / total - 1) < 0.005


@pytest.mark.parametrize("instrument", ["pacs100", "spire250"])
def test_source_fwhm_matches_the_beam(instrument):
    sim = simulate_map((96, 96), instrument=instrument, n_sources=1, seed=2)
    row, col = np.unravel_index(np.argmax(sim.sources), sim.sources.shape)
    half = int(3 * sim.fwhm_pixels)
    stamp = sim.sources[row - half : row + half + 1, col - half : col + half + 1]
    y, x = np.indices(stamp.shape)
    x_mean = np.sum(x * stamp) / stamp.sum()
    variance_x = np.sum((x - x_mean) ** 2 * stamp) / stamp.sum()
    measured_fwhm = np.sqrt(variance_x) / FWHM_TO_SIGMA
    instrument_fwhm = get_instrument(instrument).beam_fwhm / get_instrument(instrument).pixel_scale
    assert abs(measured_fwhm / instrument_fwhm.decompose().value - 1) < 0.05


def test_snr_range_is_respected():
    sim = simulate_map((128, 128), n_sources=200, snr_range=(10.0, 20.0), seed=4)
    assert sim.catalog["peak_snr"].min() >= 10.0
    assert sim.catalog["peak_snr"].max() <= 20.0
    wide = simulate_map((128, 128), n_sources=300, seed=4)
    assert wide.catalog["peak_snr"].min() >= 3.0
    assert wide.catalog["peak_snr"].max() <= 3000.0
    # More faint than bright sources.
    assert np.median(wide.catalog["peak_snr"]) < np.sqrt(3.0 * 3000.0)


def test_nan_border_present_or_absent():
    with_border = simulate_map((128, 128), n_sources=5, seed=8)
    assert 0.5 < with_border.coverage.mean() < 1.0
    assert np.isnan(with_border.data.data).any()
    without = simulate_map((128, 128), n_sources=5, seed=8, nan_border=False)
    assert without.coverage.all()
    assert np.isfinite(without.data.data).all()


@pytest.mark.parametrize("name", sorted(INSTRUMENTS))
def test_header_is_recognised_for_every_band(name):
    sim = simulate_map((64, 64), instrument=name, n_sources=2, seed=0)
    header = sim.data.meta
    assert header["TELESCOP"] == "Herschel"
    assert instrument_from_header(header) is INSTRUMENTS[name]
    expected = (INSTRUMENTS[name].beam_fwhm / INSTRUMENTS[name].pixel_scale).decompose().value
    assert sim.fwhm_pixels == pytest.approx(expected, rel=1e-9)
    assert u.Unit(header["BUNIT"]) == u.Unit(INSTRUMENTS[name].bunit)


def test_pixels_per_beam_sets_the_sampling():
    sim = simulate_map((64, 64), instrument="spire350", pixels_per_beam=2.0, n_sources=2, seed=0)
    assert sim.fwhm_pixels == pytest.approx(2.0)
    pixel_scale = (abs(sim.data.wcs.wcs.cdelt[0]) * u.deg).to_value(u.arcsec)
    assert pixel_scale == pytest.approx(get_instrument("spire350").beam_fwhm.to_value(u.arcsec) / 2)


@pytest.mark.parametrize("correlated", [0.0, 0.6])
def test_noise_has_the_requested_std(correlated):
    sim = simulate_map(
        (256, 256),
        noise_std=2.5,
        correlated_noise=correlated,
        nan_border=False,
        seed=1,
        n_sources=0,
    )
    assert sim.noise_std == 2.5
    assert np.std(sim.noise) == pytest.approx(2.5, rel=0.03)


def test_correlated_noise_makes_stripes():
    def neighbour_correlation(noise):
        along_x = np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]
        along_y = np.corrcoef(noise[:-1].ravel(), noise[1:].ravel())[0, 1]
        return max(along_x, along_y)

    white = simulate_map((128, 128), correlated_noise=0.0, nan_border=False, n_sources=0)
    striped = simulate_map((128, 128), correlated_noise=0.8, nan_border=False, n_sources=0)
    assert abs(neighbour_correlation(white.noise)) < 0.05
    assert neighbour_correlation(striped.noise) > 0.3


@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_regime_sets_the_background_contrast(regime):
    sim = simulate_map((128, 128), regime=regime, n_sources=0, noise_std=0.5, seed=2)
    contrast = np.std(sim.background[sim.coverage]) / sim.noise_std
    assert contrast == pytest.approx(REGIMES[regime].contrast, rel=1e-6)
    custom = simulate_map((128, 128), regime=regime, background_contrast=50.0, n_sources=0)
    assert np.std(custom.background[custom.coverage]) == pytest.approx(50.0, rel=1e-6)


def test_regime_defaults_are_ordered():
    assert REGIMES["cirrus"].contrast < REGIMES["filamentary"].contrast
    assert REGIMES["filamentary"].contrast < REGIMES["confusion"].contrast
    for regime in REGIMES.values():
        assert -3.5 <= regime.slope_range[0] <= regime.slope_range[1] <= -2.5


def _spectral_slope(image, fwhm_pixels, k_low, k_high):
    window = np.outer(np.hanning(image.shape[0]), np.hanning(image.shape[1]))
    power = np.abs(np.fft.rfft2((image - image.mean()) * window)) ** 2
    power /= gaussian_beam_transfer(image.shape, fwhm_pixels) ** 2
    k = np.hypot(np.fft.fftfreq(image.shape[0])[:, None], np.fft.rfftfreq(image.shape[1])[None, :])
    edges = np.geomspace(k_low, k_high, 10)
    bins = np.digitize(k.ravel(), edges)
    k_mean = [k.ravel()[bins == i].mean() for i in range(1, len(edges))]
    power_mean = [power.ravel()[bins == i].mean() for i in range(1, len(edges))]
    return np.polyfit(np.log(k_mean), np.log(power_mean), 1)[0]


@pytest.mark.parametrize("slope", [-2.6, -3.4])
def test_background_power_spectrum_slope(slope):
    # Cirrus: the cloud alone (no bright filaments), beam divided out.
    measured = [
        _spectral_slope(sim.background, sim.fwhm_pixels, 4 / 256, 1 / (2 * sim.fwhm_pixels))
        for sim in (
            simulate_map(
                (256, 256), regime="cirrus", slope=slope, nan_border=False, n_sources=0, seed=seed
            )
            for seed in range(3)
        )
    ]
    assert abs(np.mean(measured) - slope) < 0.2


def test_filament_mask_marks_bright_filament_cores(filamentary):
    mask = filamentary.filament_mask
    filaments = filamentary.filaments
    bright = filaments > 3 * filamentary.noise_std
    assert mask.any()
    assert not (mask & ~bright).any()
    assert not (mask & ~filamentary.coverage).any()
    # The cores, not the faint wings: brighter than the bright pixels left out.
    assert filaments[mask].mean() > filaments[bright & ~mask].mean()


def test_sources_fall_on_filaments_and_in_close_pairs(filamentary):
    catalog = filamentary.catalog
    assert catalog["on_filament"].any()
    paired = catalog[catalog["close_pair"]]
    assert len(paired) >= 2
    positions = np.stack([paired["x"], paired["y"]], axis=1)
    separation = np.hypot(*(positions[:, None, :] - positions[None, :, :]).T)
    np.fill_diagonal(separation, np.inf)
    nearest = separation.min(axis=0) / filamentary.fwhm_pixels
    assert (nearest <= 2.5 + 1e-9).all()
    assert (nearest >= 1.0 - 1e-9).any()


def test_realistic_beam_has_elongation_and_sidelobes():
    sim = simulate_map((128, 128), instrument="pacs70", realistic_beam=True, n_sources=10, seed=2)
    assert not sim.beam.is_gaussian
    assert sim.beam.axis_ratio > 1.0 and sim.beam.sidelobe_level > 0
    # Sidelobes carry flux beyond the Gaussian core; the peak stays the catalogue's.
    gaussian_flux = sim.catalog["peak"].value * sim.beam.gaussian_area
    assert (sim.catalog["flux"].value > 1.01 * gaussian_flux).all()


def test_real_array_background_has_no_filament_truth():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(200, 200)).cumsum(axis=0)
    image[:20] = np.nan
    sim = simulate_map((128, 128), background=image, n_sources=10, seed=1, nan_border=False)
    assert not sim.filament_mask.any()
    assert not sim.catalog["on_filament"].any()
    assert np.array_equal(sim.coverage, np.isfinite(sim.background))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"regime": "galaxy"}, ValueError),
        ({"noise_std": -1.0}, ValueError),
        ({"noise_std": np.nan}, ValueError),
        ({"n_sources": -3}, ValueError),
        ({"instrument": "iras60"}, ValueError),
        ({"snr_range": (10.0, 5.0)}, ValueError),
        ({"correlated_noise": 1.5}, ValueError),
        ({"background_contrast": 0.0}, ValueError),
        ({"pixels_per_beam": 0.0}, ValueError),
        ({"shape": (8, 8)}, ValueError),
        ({"shape": "big"}, TypeError),
        ({"seed": 2.5}, TypeError),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, error):
    kwargs = {"shape": (64, 64), "n_sources": 5, **kwargs}
    shape = kwargs.pop("shape")
    with pytest.raises(error):
        simulate_map(shape, **kwargs)


@pytest.mark.parametrize("container", [NDData, CCDData, np.ma.MaskedArray])
def test_masked_background_pixels_are_uncovered(container):
    image = np.random.default_rng(0).normal(size=(64, 64)).cumsum(axis=0)
    mask = np.zeros(image.shape, dtype=bool)
    mask[:, :20] = True
    kwargs = {"unit": "Jy"} if container is CCDData else {}
    sim = simulate_map(
        (64, 64), background=container(image, mask=mask, **kwargs), n_sources=3, seed=1,
        nan_border=False,
    )
    # Rotated or flipped, the masked band is uncovered and nothing else is.
    assert (~sim.coverage).sum() == mask.sum()
    assert np.isnan(sim.data.data[~sim.coverage]).all()


def test_noise_std_quantity_is_taken_in_the_map_unit():
    sim = simulate_map(
        (64, 64), instrument="spire250", noise_std=20 * u.mJy / u.beam, n_sources=2, seed=0
    )
    assert sim.noise_std == pytest.approx(0.02)
    assert sim.data.meta["NOISESTD"] == pytest.approx(0.02)
    np.testing.assert_allclose(sim.data.uncertainty.array, 0.02)


@pytest.mark.parametrize("realistic_beam", [False, True])
def test_header_beam_keywords_describe_the_injected_beam(realistic_beam):
    sim = simulate_map(
        (64, 64), instrument="pacs160", realistic_beam=realistic_beam, n_sources=2, seed=3
    )
    header, beam, wcs = sim.data.meta, sim.beam, sim.data.wcs
    pixel_deg = abs(wcs.wcs.cdelt[0])
    assert header["BMAJ"] == pytest.approx(beam.fwhm * np.sqrt(beam.axis_ratio) * pixel_deg)
    assert header["BMIN"] == pytest.approx(beam.fwhm / np.sqrt(beam.axis_ratio) * pixel_deg)
    assert header["BEAMFWHM"] == beam.fwhm
    if not realistic_beam:
        nominal = get_instrument("pacs160").beam_fwhm.to_value(u.deg)
        assert header["BMAJ"] == pytest.approx(nominal) and header["BPA"] == 0.0
        return
    # The major axis seen on the sky: its position angle, east of north, is BPA.
    centre = np.array([31.5, 31.5])
    step = 5 * np.array([np.cos(beam.position_angle), np.sin(beam.position_angle)])
    start, end = wcs.pixel_to_world(*centre), wcs.pixel_to_world(*(centre + step))
    sky_angle = start.position_angle(end).to_value(u.deg) % 180.0
    difference = (sky_angle - header["BPA"] + 90.0) % 180.0 - 90.0
    assert abs(difference) < 0.01


_REAL_BACKGROUND = np.random.default_rng(0).normal(size=(64, 64)).cumsum(axis=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shape": (64.5, 64)}, ValueError, "whole numbers"),
        ({"seed": np.random.default_rng(1)}, TypeError, "seed must be an integer"),
        ({"on_filament_fraction": 1.5}, ValueError, "on_filament_fraction"),
        ({"on_filament_fraction": np.nan}, ValueError, "on_filament_fraction"),
        ({"slope": 1.0}, ValueError, "slope must be negative"),
        ({"slope": np.nan}, ValueError, "slope must be negative"),
        ({"background_contrast": np.inf}, ValueError, "background_contrast"),
        ({"n_sources": None}, TypeError, "n_sources"),
        ({"n_sources": np.inf}, ValueError, "n_sources"),
        ({"noise_std": 1.0 * u.K}, u.UnitConversionError, "Jy"),
        ({"background": _REAL_BACKGROUND, "slope": -3.0}, ValueError, "slope shapes"),
        ({"background": _REAL_BACKGROUND, "on_filament_fraction": 0.5}, ValueError,
         "on_filament_fraction shapes"),
    ],
)
def test_bad_options_are_refused_with_what_to_do(kwargs, error, match):
    # Each of these used to be accepted silently, or failed deep inside with an unrelated message.
    kwargs = {"shape": (64, 64), "n_sources": 5, "nan_border": False, **kwargs}
    shape = kwargs.pop("shape")
    with pytest.raises(error, match=match):
        simulate_map(shape, **kwargs)
