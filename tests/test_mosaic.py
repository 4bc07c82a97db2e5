"""Mosaics: chunked (dask) results equal the in-memory ones; FITS in and out."""

import argparse

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.nddata import NDData
from astropy.table import QTable, Table
from astropy.utils.exceptions import AstropyUserWarning
from dask.callbacks import Callback
from regions import (
    CirclePixelRegion,
    CircleSkyRegion,
    LinePixelRegion,
    PixCoord,
    PointPixelRegion,
    PolygonPixelRegion,
    RectanglePixelRegion,
    Regions,
    SkyRegion,
)

from nemesis_bkg import CompactSourceRemover, PConvBackground
from nemesis_bkg.cli import main
from nemesis_bkg.masking import FLAG_PROTECTED
from nemesis_bkg.model import PConvUNet
from nemesis_bkg.parallel import MosaicResult, mosaic_halo, open_mosaic, remove_mosaic
from nemesis_bkg.parallel.mosaic_fits import MosaicFitsWriter
from nemesis_bkg.simulate import simulate_map

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

SIZE, CHUNK, HALO = 384, 64, 100


def relative_difference(chunked, whole, valid):
    """max |chunked - whole| / max |whole| over the covered pixels."""
    scale = np.max(np.abs(whole[valid]))
    return float(np.max(np.abs(chunked - whole)[valid]) / (scale if scale > 0 else 1.0))


@pytest.fixture(scope="module")
def sky():
    """A PACS-like map (1.75 pixels per beam, NaN border) with sources on chunk borders."""
    sim = simulate_map((SIZE, SIZE), instrument="pacs70", pixels_per_beam=1.75, n_sources=60,
                       seed=4)
    data = np.asarray(sim.data.data, dtype=float)
    rows, cols = np.mgrid[:SIZE, :SIZE]
    sigma = sim.fwhm_pixels / 2.3548
    for y, x in ((CHUNK, 2 * CHUNK), (3 * CHUNK - 0.5, 3 * CHUNK + 0.4), (2 * CHUNK, 4 * CHUNK)):
        data += 200 * np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * sigma**2))
    return data, sim.fwhm_pixels


@pytest.fixture(scope="module")
def remover(sky):
    torch.manual_seed(0)
    return CompactSourceRemover(beam_fwhm=sky[1], device="cpu",
                                model=PConvUNet(channels=(8, 16)).eval())


@pytest.fixture(scope="module")
def whole(sky, remover):
    return remover.remove(sky[0])


@pytest.fixture(scope="module")
def chunked(sky, remover):
    """36 chunks with a halo smaller than the map: every window is a true cutout."""
    result = remove_mosaic(da.from_array(sky[0], chunks=CHUNK), remover=remover, halo=HALO)
    arrays = dask.compute(result.background.data, result.background_error,
                          result.background_rms, result.source_mask, scheduler="synchronous")
    return result, arrays


def test_chunks_equal_the_whole_map(sky, whole, chunked):
    data = sky[0]
    valid = np.isfinite(data)
    result, (background, error, noise, holes) = chunked
    assert result.source_mask.numblocks == (6, 6)
    assert (~valid).any()  # coverage edges cross chunks too
    # Holes straddle chunk borders, and they come out identical.
    assert holes[CHUNK - 2:CHUNK + 2, 2 * CHUNK].all()
    np.testing.assert_array_equal(holes, whole.source_mask)
    assert relative_difference(background, whole.background.data, valid) < 1e-6
    assert relative_difference(error, whole.background_error, valid) < 1e-6
    assert relative_difference(noise, whole.background_rms, valid) < 1e-6


def region_description(region, wcs=None):
    """A region's kind and numbers (pixels; angles in degrees), sky regions through ``wcs``."""
    if isinstance(region, SkyRegion):
        region = region.to_pixel(wcs)
    numbers = []
    for name in region._params:
        value = getattr(region, name)
        if isinstance(value, PixCoord):
            numbers += [*np.ravel(value.x), *np.ravel(value.y)]
        elif isinstance(value, u.Quantity):
            numbers.append(value.to_value(u.deg))
        else:
            numbers.append(float(value))
    return type(region).__name__, numbers


def regions_by_position(holes, catalog, wcs=None):
    """The regions' descriptions, ordered as their catalogue rows sorted by row and column
    (the mosaic's rows and the whole map's come in different orders)."""
    assert len(holes) == len(catalog)
    order = np.lexsort((np.asarray(catalog["x"]), np.asarray(catalog["y"])))
    return [region_description(holes[int(index)], wcs) for index in order]


def assert_same_regions(found, expected, atol=1e-9):
    """Region by region, the same kinds, their numbers within ``atol`` pixels."""
    assert [kind for kind, _ in found] == [kind for kind, _ in expected]
    for (_, numbers), (_, expected_numbers) in zip(found, expected, strict=True):
        np.testing.assert_allclose(numbers, expected_numbers, rtol=0, atol=atol)


def test_each_source_is_listed_once_by_the_chunk_holding_its_peak(whole, chunked):
    catalog = chunked[0].catalog
    assert len(catalog) == len(whole.catalog) > 3
    for name in ("y", "x", "peak_snr"):
        np.testing.assert_allclose(np.sort(np.asarray(catalog[name])),
                                   np.sort(np.asarray(whole.catalog[name])), rtol=1e-9)


def test_regions_without_a_wcs_are_the_pixel_circles_of_the_whole_map(whole, chunked):
    holes = chunked[0].regions()
    assert len(holes) == len(whole.catalog) > 3
    assert all(isinstance(hole, CirclePixelRegion) for hole in holes)
    assert_same_regions(regions_by_position(holes, chunked[0].catalog),
                        regions_by_position(whole.regions(), whole.catalog))


def test_halo_grows_with_the_beam_and_covers_the_box_statistics():
    halos = [mosaic_halo(fwhm) for fwhm in (1.7, 3.0, 4.3)]
    assert halos == sorted(halos)
    assert halos[0] > 3.5 * 32  # the pixel-noise boxes are at least 32 pixels
    with pytest.raises(ValueError, match="positive"):
        mosaic_halo(0.0)


def test_remover_and_background_take_dask_arrays(sky, remover, whole):
    data = da.from_array(sky[0], chunks=2 * CHUNK)
    result = remover.remove(data)
    assert isinstance(result, MosaicResult)
    assert result.halo == mosaic_halo(sky[1], multiple=remover.model.downsampling_factor)
    bkg = PConvBackground(data, (32, 32), beam_fwhm=sky[1], device="cpu",
                          model=remover.model)
    background, holes = dask.compute(bkg.background, bkg.source_mask)
    valid = np.isfinite(sky[0])
    np.testing.assert_array_equal(holes, whole.source_mask)
    expected = np.where(valid, whole.background.data, 0.0)
    assert relative_difference(background, expected, valid) < 1e-6
    with pytest.raises(TypeError, match="whole map in memory"):
        _ = bkg.background_mesh


def test_bad_arguments_are_refused(sky, remover):
    with pytest.raises(TypeError, match="catalog must be"):
        remove_mosaic(sky[0], remover=remover, catalog=object())
    with pytest.raises(ValueError, match="2-D"):
        remove_mosaic(np.zeros((2, 8, 8)), remover=remover)


USER_SIZE, USER_CHUNK = 256, 96


@pytest.fixture(scope="module")
def sky_with_wcs():
    """A PACS-like map (1.75 pixels per beam) with a celestial WCS and bright sources on the
    borders of its 96-pixel chunks."""
    sim = simulate_map((USER_SIZE, USER_SIZE), instrument="pacs70", pixels_per_beam=1.75,
                       n_sources=20, seed=5)
    data = np.asarray(sim.data.data, dtype=float)
    rows, cols = np.mgrid[:USER_SIZE, :USER_SIZE]
    sigma = sim.fwhm_pixels / 2.3548
    for y, x in ((USER_CHUNK, 150), (2 * USER_CHUNK - 0.5, USER_CHUNK)):
        data += 300 * np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * sigma**2))
    return data, sim.data.wcs


def sorted_catalog(catalog):
    return catalog[np.lexsort((np.asarray(catalog["x"]), np.asarray(catalog["y"])))]


def mosaic_and_memory(sky_with_wcs, remover, path, **user_inputs):
    """The removal as a mosaic of 3x3 chunks (written in one pass) and in memory."""
    data, wcs = sky_with_wcs
    whole = remover.remove(NDData(data, wcs=wcs), **user_inputs)
    result = remove_mosaic(da.from_array(data, chunks=USER_CHUNK), remover=remover, wcs=wcs,
                           halo=HALO, **user_inputs)
    result.write(path, scheduler="synchronous")
    with fits.open(path) as hdulist:
        products = {name: hdulist[name].data
                    for name in ("BACKGROUND", "BACKGROUND_ERR", "SOURCE_MASK")}
    # Every product equals the in-memory one, bit for bit.
    np.testing.assert_array_equal(products["SOURCE_MASK"].astype(bool), whole.source_mask)
    np.testing.assert_array_equal(products["BACKGROUND"], whole.background.data)
    np.testing.assert_array_equal(products["BACKGROUND_ERR"], whole.background.uncertainty.array)
    # Each source, the user's included, is listed once, as in memory.
    catalog, expected = sorted_catalog(result.catalog), sorted_catalog(whole.catalog)
    assert len(catalog) == len(expected)
    for name in ("x", "y", "origin", "flags"):
        np.testing.assert_array_equal(catalog[name], expected[name])
    for name in ("peak_snr", "hole_radius", "segment_area"):
        np.testing.assert_allclose(catalog[name], expected[name], rtol=1e-9)
    # The holes as sky regions, one per catalogue row, those of the whole map; write
    # computed them already.
    tasks = []
    with Callback(pretask=lambda key, graph, state: tasks.append(key)):
        holes = result.regions()
    assert not tasks
    assert all(isinstance(hole, SkyRegion) for hole in holes)
    assert_same_regions(regions_by_position(holes, result.catalog, wcs),
                        regions_by_position(whole.regions(), whole.catalog, wcs))
    return result.catalog, products["SOURCE_MASK"].astype(bool)


def test_user_catalog_in_pixels_equals_the_whole_map(sky_with_wcs, remover, tmp_path):
    # On a chunk border; a large hole over a chunk corner; on the map's last pixel edge.
    catalog = Table({"x": [USER_CHUNK, 191.7, 255.5], "y": [50.0, 95.2, 120.0],
                     "hole_radius": [np.nan, 12.0, np.nan]})
    found, holes = mosaic_and_memory(sky_with_wcs, remover, tmp_path / "out.fits",
                                     catalog=catalog)
    assert (found["origin"] == "catalog").sum() == 3
    assert holes[50, USER_CHUNK - 1:USER_CHUNK + 2].all()
    assert holes[95, 181:203].all() and holes[84:107, 191].all()


def test_user_catalog_on_the_sky_equals_the_whole_map(sky_with_wcs, remover, tmp_path):
    positions = sky_with_wcs[1].pixel_to_world([96.3, 150.0], [95.6, 2 * USER_CHUNK - 0.2])
    catalog = QTable({"ra": positions.ra, "dec": positions.dec,
                      "hole_radius": [20.0, 15.0] * u.arcsec})
    found, holes = mosaic_and_memory(sky_with_wcs, remover, tmp_path / "out.fits",
                                     catalog=catalog)
    assert (found["origin"] == "catalog").sum() == 2
    assert holes[90:102, 96].all()


def test_user_regions_equal_the_whole_map(sky_with_wcs, remover, tmp_path):
    wcs = sky_with_wcs[1]
    regions = Regions([
        CirclePixelRegion(PixCoord(USER_CHUNK - 0.5, 120.0), 9.0),  # across a chunk border
        PolygonPixelRegion(PixCoord([180, 200, 205, 185], [85, 90, 105, 100])),  # a corner
        PointPixelRegion(PixCoord(191.6, 30.2)),  # a position, on a border
        PointPixelRegion(PixCoord(-1.0, 60.0)),  # a position off the map, its hole on it
        CircleSkyRegion(wcs.pixel_to_world(60.0, 2 * USER_CHUNK + 1), 30 * u.arcsec),
        CirclePixelRegion(PixCoord(262.0, 150.0), 10.0),  # centred off the map
        # An L: its row (at the mean of its pixels) is owned by the chunk left of the one
        # holding most of its pixels.
        PolygonPixelRegion(PixCoord([39.5, 110.5, 110.5, 99.5, 99.5, 39.5],
                                    [39.5, 39.5, 50.5, 50.5, 41.5, 41.5])),
    ])
    path = tmp_path / "user.reg"
    regions.write(path, format="ds9")
    catalog = Table({"x": [150.0], "y": [2 * USER_CHUNK - 0.5]})  # on a chunk border
    found, holes = mosaic_and_memory(sky_with_wcs, remover, tmp_path / "out.fits",
                                     regions=str(path), catalog=catalog)
    assert (found["origin"] == "region").sum() == 7
    assert (found["origin"] == "catalog").sum() == 1
    assert holes[120, 88:105].all() and holes[95:98, 190:193].all()
    assert holes[40:42, 40:111].all() and holes[40:51, 100:111].all()


def test_protect_regions_equal_the_whole_map(sky_with_wcs, remover, tmp_path):
    # Over the bright source on a chunk border, and part of a user hole next to it.
    protect = RectanglePixelRegion(PixCoord(150, USER_CHUNK), 16, 16)
    catalog = Table({"x": [159.0], "y": [USER_CHUNK + 2.0], "hole_radius": [4.0]})
    with pytest.warns(AstropyUserWarning, match="overlap protect"):
        found, holes = mosaic_and_memory(sky_with_wcs, remover, tmp_path / "out.fits",
                                         catalog=catalog, protect=protect)
    assert not holes[USER_CHUNK - 7:USER_CHUNK + 8, 143:158].any()
    assert holes[USER_CHUNK + 2, 158:164].all()
    assert found["flags"][found["origin"] == "catalog"][0] & FLAG_PROTECTED


def test_user_inputs_are_checked_once_for_the_whole_map(sky_with_wcs, remover, tmp_path):
    data = da.from_array(sky_with_wcs[0], chunks=USER_CHUNK)
    sky_region = CircleSkyRegion(sky_with_wcs[1].pixel_to_world(10, 10), 10 * u.arcsec)
    with pytest.raises(ValueError, match="celestial WCS"):
        remove_mosaic(data, remover=remover, regions=sky_region)
    with pytest.raises(ValueError, match="no area"):
        remove_mosaic(data, remover=remover,
                      protect=LinePixelRegion(PixCoord(1, 1), PixCoord(9, 9)))
    with pytest.raises(FileNotFoundError):
        remove_mosaic(data, remover=remover, regions=str(tmp_path / "missing.reg"))
    with pytest.raises(ValueError, match="NaN"):
        remove_mosaic(data, remover=remover, catalog=Table({"x": [np.nan], "y": [3.0]}))
    with pytest.warns(AstropyUserWarning, match="fall off the map"):
        remove_mosaic(data, remover=remover, catalog=Table({"x": [400.0], "y": [3.0]}))
    with pytest.raises(ValueError, match="protects nothing"):
        remove_mosaic(data, remover=remover, protect=PointPixelRegion(PixCoord(5, 5)))
    with pytest.warns(AstropyUserWarning, match="covers no pixel centre"):
        remove_mosaic(data, remover=remover,
                      regions=CirclePixelRegion(PixCoord(400, 400), 5.0))
    # Holes the user sizes widen the default halo, and a halo too small for them is warned of.
    large = CirclePixelRegion(PixCoord(100, 100), 40.0)
    assert (remove_mosaic(data, remover=remover, regions=large).halo
            > remove_mosaic(data, remover=remover).halo)
    with pytest.warns(AstropyUserWarning, match="more than the halo"):
        remove_mosaic(data, remover=remover, regions=large, halo=50)


@pytest.fixture(scope="module")
def mosaic_file(sky, tmp_path_factory):
    path = tmp_path_factory.mktemp("mosaic") / "mosaic.fits"
    fits.writeto(path, sky[0].astype(np.float32))
    return path


def test_fits_mosaic_is_read_through_a_memory_map(mosaic_file):
    data, header = open_mosaic(mosaic_file, chunk_size=100)
    assert data.chunks[0] == (100, 100, 100, 84)
    assert data.dtype == np.float32 and header["NAXIS1"] == SIZE


def test_command_line_writes_the_mosaic_and_never_overwrites(mosaic_file, sky, remover,
                                                             tmp_path, capsys, monkeypatch):
    # The command line loads the bundled network; the small one keeps the test fast.
    monkeypatch.setattr("nemesis_bkg.remover.load_model", lambda device: remover.model)
    output, holes = tmp_path / "out.fits", tmp_path / "holes.reg"
    arguments = ["remove", str(mosaic_file), "-o", str(output), "--beam-fwhm", str(sky[1]),
                 "--chunk-size", "192", "--device", "cpu", "--regions-out", str(holes)]
    assert main(arguments) == 0
    assert "mosaic of 2x2 chunks" in capsys.readouterr().out
    whole = remover.remove(sky[0].astype(np.float32).astype(float))
    with fits.open(output) as hdulist:
        assert [hdu.name for hdu in hdulist[1:]] == [
            "BACKGROUND", "BACKGROUND_ERR", "SOURCES", "SOURCES_ERR", "SOURCE_MASK",
            "COVERAGE", "CATALOG"]
        np.testing.assert_array_equal(hdulist["SOURCE_MASK"].data.astype(bool),
                                      whole.source_mask)
        valid = hdulist["COVERAGE"].data.astype(bool)
        assert relative_difference(hdulist["BACKGROUND"].data, whole.background.data,
                                   valid) < 1e-6
        assert len(hdulist["CATALOG"].data) == len(whole.catalog)
        assert hdulist[0].header["NHOLES"] == len(whole.catalog)
        # The DS9 file holds the holes of the whole map (written to 8 decimals), one per
        # catalogue row, in its order.
        assert_same_regions(regions_by_position(Regions.read(holes, format="ds9"),
                                                hdulist["CATALOG"].data),
                            regions_by_position(whole.regions(), whole.catalog), atol=1e-8)
    before, regions_before = output.read_bytes(), holes.read_bytes()
    assert main(arguments) != 0
    assert "--overwrite" in capsys.readouterr().err
    assert output.read_bytes() == before
    output.unlink()
    assert main(arguments) != 0  # the region file alone is not replaced either
    assert "holes.reg exists" in capsys.readouterr().err
    assert holes.read_bytes() == regions_before and not output.exists()
    assert main([*arguments, "--overwrite"]) == 0
    assert holes.read_bytes() == regions_before and output.exists()
    assert not list(tmp_path.glob("*.part"))


def test_command_line_passes_catalog_and_protect_to_the_mosaic(mosaic_file, sky, remover,
                                                               tmp_path, monkeypatch):
    monkeypatch.setattr("nemesis_bkg.remover.load_model", lambda device: remover.model)
    catalog = tmp_path / "extra.ecsv"
    Table({"x": [40.5], "y": [300.0]}).write(catalog)
    protect = tmp_path / "keep.reg"
    protect.write_text(f"image\ncircle({2 * CHUNK + 1},{CHUNK + 1},4)\n")
    output = tmp_path / "out.fits"
    assert main(["remove", str(mosaic_file), "-o", str(output), "--beam-fwhm", str(sky[1]),
                 "--chunk-size", "192", "--device", "cpu", "--catalog", str(catalog),
                 "--protect", str(protect)]) == 0
    whole = remover.remove(sky[0].astype(np.float32).astype(float),
                           catalog=Table({"x": [40.5], "y": [300.0]}), protect=str(protect))
    with fits.open(output) as hdulist:
        holes = hdulist["SOURCE_MASK"].data.astype(bool)
    np.testing.assert_array_equal(holes, whole.source_mask)
    assert holes[300, 40] and not holes[CHUNK, 2 * CHUNK]


def test_an_interrupted_write_leaves_nothing(tmp_path):
    path = tmp_path / "out.fits"
    with pytest.raises(RuntimeError), MosaicFitsWriter(
            path, (4, 4), [("IMAGE", np.float32, fits.Header())], fits.Header()) as writer:
        writer.write_block("IMAGE", (0, 0), np.ones((2, 4)))
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_appears_while_the_mosaic_is_written_is_never_replaced(tmp_path):
    path = tmp_path / "out.fits"
    with pytest.raises(FileExistsError, match="appeared"), MosaicFitsWriter(
            path, (4, 4), [("IMAGE", np.float32, fits.Header())], fits.Header()) as writer:
        writer.write_block("IMAGE", (0, 0), np.ones((4, 4)))
        path.write_text("another process's product")
        writer.finish(Table({"a": [1]}), {})
    assert path.read_text() == "another process's product"
    assert [entry.name for entry in tmp_path.iterdir()] == ["out.fits"]


def test_command_line_takes_the_mosaic_path_for_maps_too_large_for_memory(mosaic_file,
                                                                          monkeypatch):
    from nemesis_bkg.commands import remove
    from nemesis_bkg.parallel.mosaic import CHUNK_SIZE

    arguments = argparse.Namespace(inputs=[str(mosaic_file)], chunk_size=None)
    assert remove._mosaic_chunk_size(arguments) is None
    monkeypatch.setattr(remove, "IN_MEMORY_BYTES_PER_PIXEL", 1e12)
    assert remove._mosaic_chunk_size(arguments) == CHUNK_SIZE
