"""Tests of writing, previewing, the command and real-map backgrounds of nemesis_bkg.simulate."""

import argparse
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.stats import mad_std
from astropy.table import QTable
from astropy.wcs import WCS

from nemesis_bkg.instruments import instrument_from_header
from nemesis_bkg.simulate import command as simulate_command
from nemesis_bkg.simulate import (
    load_real_map,
    plot_preview,
    real_map_paths,
    simulate_map,
    write_simulated_map,
)
from nemesis_bkg.simulate.maps import REGIMES
from nemesis_bkg.simulate.real_maps import real_background


@pytest.fixture(scope="module")
def small_map():
    return simulate_map((64, 80), instrument="spire350", n_sources=6, seed=9)


def test_writer_round_trips_the_map_and_truth(small_map, tmp_path):
    path = write_simulated_map(small_map, tmp_path / "sim.fits")
    assert [p.name for p in tmp_path.iterdir()] == ["sim.fits"]  # no temporary left behind
    ccd = CCDData.read(path)
    np.testing.assert_array_equal(ccd.data, small_map.data.data)
    np.testing.assert_array_equal(ccd.uncertainty.array, small_map.data.uncertainty.array)
    assert ccd.unit == small_map.data.unit
    assert instrument_from_header(ccd.header).name == "spire350"
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(hdul["BACKGROUND"].data, small_map.background)
        np.testing.assert_array_equal(hdul["SOURCES"].data, small_map.sources)
        np.testing.assert_array_equal(hdul["NOISE"].data, small_map.noise)
        np.testing.assert_array_equal(hdul["FILMASK"].data.astype(bool), small_map.filament_mask)
        assert hdul["BACKGROUND"].header["CTYPE1"] == "RA---TAN"
    catalog = QTable.read(path, hdu="CATALOG")
    for column in ("x", "y", "flux", "peak", "peak_snr", "fwhm"):
        np.testing.assert_array_equal(catalog[column], small_map.catalog[column])
    assert catalog["flux"].unit == small_map.catalog["flux"].unit
    assert catalog["sky_centroid"].separation(small_map.catalog["sky_centroid"]).max().value < 1e-9


def test_writer_refuses_to_overwrite_unless_asked(small_map, tmp_path):
    path = tmp_path / "sim.fits"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_simulated_map(small_map, path)
    assert path.read_bytes() == b"keep me"
    write_simulated_map(small_map, path, overwrite=True)
    assert fits.getheader(path)["INSTRUME"] == "SPIRE"


def test_writer_rejects_other_objects(tmp_path):
    with pytest.raises(TypeError, match="SimulatedMap"):
        write_simulated_map(np.zeros((4, 4)), tmp_path / "x.fits")


def test_preview_writes_a_png(small_map, tmp_path):
    path = plot_preview(small_map, tmp_path / "sim.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError):
        plot_preview(small_map, path)


def _parse(argv):
    parser = argparse.ArgumentParser()
    simulate_command.add_arguments(parser)
    return parser.parse_args(argv)


def test_command_writes_fits_and_png_and_prints_one_line(tmp_path, capsys):
    fits_path, png_path = tmp_path / "out.fits", tmp_path / "out.png"
    args = _parse(
        [
            "--shape",
            "64x96",
            "--instrument",
            "pacs70",
            "--regime",
            "cirrus",
            "--n-sources",
            "7",
            "--seed",
            "3",
            "-o",
            str(fits_path),
            "--png",
            str(png_path),
        ]
    )
    assert simulate_command.run(args) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "pacs70" in summary[0] and "7 sources" in summary[0]
    assert fits.getdata(fits_path).shape == (64, 96)
    assert len(QTable.read(fits_path, hdu="CATALOG")) == 7
    assert png_path.exists()
    with pytest.raises(FileExistsError, match="--overwrite"):
        simulate_command.run(args)
    args.overwrite = True
    assert simulate_command.run(args) == 0


@pytest.mark.parametrize("text", ["8", "12x", "axb", "64x64x64"])
def test_command_rejects_bad_shapes(text):
    with pytest.raises(SystemExit):
        _parse(["--shape", text])


def test_load_real_map_flags_and_squeezes(tmp_path):
    image = np.arange(48.0).reshape(1, 6, 8)
    image[0, 0, 0] = 1e25
    image[0, 1, 1] = np.inf
    path = tmp_path / "real.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image.astype(">f4"))]).writeto(path)
    loaded = load_real_map(path)
    assert loaded.shape == (6, 8) and loaded.dtype == np.float64
    assert loaded.dtype.byteorder in ("=", "<")
    assert np.isnan(loaded[0, 0]) and np.isnan(loaded[1, 1])
    assert np.isfinite(loaded).sum() == 46


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (7, 7)])
def test_real_map_halves_split_the_longer_axis_without_overlap(tmp_path, shape):
    image = np.arange(np.prod(shape), dtype=float).reshape(shape)
    path = tmp_path / "map.fits"
    fits.writeto(path, image)
    training = load_real_map(path, part="training")
    evaluation = load_real_map(path, part="evaluation")
    axis = int(shape[1] > shape[0])
    assert training.shape[1 - axis] == evaluation.shape[1 - axis] == shape[1 - axis]
    assert training.shape[axis] + evaluation.shape[axis] == shape[axis]
    assert np.array_equal(np.concatenate([training, evaluation], axis=axis), image)
    with pytest.raises(ValueError, match="part must be"):
        load_real_map(path, part="test")


def test_real_map_half_without_data_fails_clearly(tmp_path):
    image = np.ones((4, 8))
    image[:, 4:] = np.nan
    path = tmp_path / "half.fits"
    fits.writeto(path, image)
    assert load_real_map(path, part="training").shape == (4, 4)
    with pytest.raises(ValueError, match="evaluation half"):
        load_real_map(path, part="evaluation")


def test_load_real_map_rejects_files_without_an_image(tmp_path):
    path = tmp_path / "table.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.BinTableHDU.from_columns([fits.Column(name="a", format="D", array=np.zeros(3))]),
        ]
    ).writeto(path)
    with pytest.raises(ValueError, match="2-D image"):
        load_real_map(path)


def test_real_background_rescales_rotates_and_keeps_nans():
    rng = np.random.default_rng(0)
    image = 5.0 + rng.normal(size=(100, 100)).cumsum(axis=1)
    image[:, :10] = np.nan
    view = real_background(image, (100, 100), np.random.default_rng(1), target_std=40.0)
    finite = np.isfinite(view)
    assert mad_std(view[finite]) == pytest.approx(40.0)
    # Rotated or flipped, the NaN strip is still a 10-pixel band along one edge.
    assert (~finite).sum() == 1000
    assert (~finite).all(axis=0).sum() == 10 or (~finite).all(axis=1).sum() == 10
    # Scaled about zero, nothing added: the same values times one factor.
    values = image[np.isfinite(image)]
    np.testing.assert_allclose(
        np.sort(view[finite]), np.sort(values) * 40.0 / mad_std(values), rtol=1e-10
    )


def test_real_background_crops_at_random():
    image = np.random.default_rng(0).normal(size=(300, 300))
    views = [
        real_background(image, (64, 64), np.random.default_rng(seed), target_std=1.0)
        for seed in range(3)
    ]
    assert not np.allclose(views[0], views[1]) and not np.allclose(views[1], views[2])


def test_real_background_resamples_small_maps_with_a_warning():
    image = np.random.default_rng(0).normal(size=(40, 50))
    with pytest.warns(UserWarning, match="resampling"):
        view = real_background(image, (100, 64), np.random.default_rng(0), target_std=1.0)
    assert view.shape == (100, 64)


def test_real_background_rejects_flat_or_empty_maps():
    with pytest.raises(ValueError, match="flat"):
        real_background(np.ones((50, 50)), (32, 32), np.random.default_rng(0), target_std=1.0)
    with pytest.raises(ValueError, match="finite"):
        real_background(
            np.full((50, 50), np.nan), (32, 32), np.random.default_rng(0), target_std=1.0
        )


@pytest.fixture(scope="module")
def shared_real_maps():
    paths = real_map_paths()
    if not paths:
        pytest.skip("the shared real maps (../shared/data/real_maps) are not present")
    return paths


def test_shared_real_maps_load_clean(shared_real_maps):
    for path in shared_real_maps:
        image = load_real_map(path)
        assert image.ndim == 2 and np.isfinite(image).any()
        assert not (np.abs(image[np.isfinite(image)]) >= 1e24).any()


def test_simulate_on_a_shared_real_map(shared_real_maps):
    path = next((p for p in shared_real_maps if "Fil8" in p.name), shared_real_maps[0])
    sim = simulate_map(
        (256, 256),
        background=path,
        background_contrast=100.0,
        noise_std=0.5,
        n_sources=30,
        seed=4,
        nan_border=False,
    )
    covered = sim.coverage
    assert mad_std(sim.background[covered]) == pytest.approx(50.0, rel=1e-6)
    assert np.array_equal(covered, np.isfinite(sim.background))
    rows = np.round(sim.catalog["y"]).astype(int)
    cols = np.round(sim.catalog["x"]).astype(int)
    assert covered[rows, cols].all()


def test_real_background_of_its_own_shape_is_not_resampled():
    image = np.random.default_rng(0).normal(size=(60, 90))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed in range(6):
            view = real_background(image, (60, 90), np.random.default_rng(seed), target_std=1.0)
            np.testing.assert_allclose(
                np.sort(view.ravel()), np.sort(image.ravel()) / mad_std(image)
            )


def test_uncertainty_extension_has_the_wcs_and_unit(small_map, tmp_path):
    path = write_simulated_map(small_map, tmp_path / "sim.fits")
    with fits.open(path) as hdul:
        header = hdul["UNCERT"].header
        assert header["BUNIT"] == hdul[0].header["BUNIT"]
        assert WCS(header).wcs.compare(WCS(hdul[0].header).wcs)
    assert CCDData.read(path).uncertainty.unit == small_map.data.unit


def test_preview_failure_leaves_no_file(small_map, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as stream:
            stream.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_preview(small_map, tmp_path / "sim.png")
    assert list(tmp_path.iterdir()) == []


def test_preview_rejects_other_objects(tmp_path):
    with pytest.raises(TypeError, match="SimulatedMap"):
        plot_preview(np.zeros((4, 4)), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_command_offers_every_regime():
    assert set(simulate_command._REGIME_NAMES) == set(REGIMES)


def test_command_checks_output_folders_before_simulating(tmp_path, monkeypatch):
    import nemesis_bkg.simulate as simulate_package

    def no_simulation(*args, **kwargs):
        raise AssertionError("simulated although the output cannot be written")

    monkeypatch.setattr(simulate_package, "simulate_map", no_simulation)
    for option in ("-o", "--png"):
        args = _parse(["--shape", "32", option, str(tmp_path / "missing" / "out.fits")])
        with pytest.raises(FileNotFoundError, match="does not exist"):
            simulate_command.run(args)
