"""
Files: atomic outputs, no overwrite unless asked, verified weights, no
pickle; and the command line tried as a new user would, with a truncated
FITS file, a map of only NaNs and an interrupted run.
"""

import hashlib
import os
import pickle
import re

import numpy as np
import pytest
import safetensors
import torch
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage

import nemesis_bkg.model as model_module
import nemesis_bkg.remover as remover_module
from nemesis_bkg import CompactSourceRemover
from nemesis_bkg.cli import main
from nemesis_bkg.io import write_fits_atomically
from nemesis_bkg.model import DEFAULT_WEIGHTS, PConvUNet, load_model, save_model

torch.set_num_threads(1)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def small_hdulist():
    return fits.HDUList([fits.PrimaryHDU(np.arange(400.0).reshape(20, 20))])


def crashing_writeto(exception):
    """A stand-in for HDUList.writeto that writes half a file, then fails."""

    def writeto(self, name, *args, **kwargs):
        with open(name, "wb") as stream:
            stream.write(b"SIMPLE  =                    T" + b" " * 2000)
        raise exception

    return writeto


def part_files(folder):
    return [name for name in os.listdir(folder) if name.endswith(".part")]


# --- atomic outputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("exception", [OSError("disk full"), KeyboardInterrupt()])
def test_crash_while_writing_leaves_no_file(tmp_path, monkeypatch, exception):
    monkeypatch.setattr(fits.HDUList, "writeto", crashing_writeto(exception))
    path = tmp_path / "out.fits"
    with pytest.raises(type(exception)):
        write_fits_atomically(small_hdulist(), path)
    assert not path.exists() and part_files(tmp_path) == []


def test_crash_while_overwriting_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.fits"
    write_fits_atomically(small_hdulist(), path)
    before = sha256(path)
    monkeypatch.setattr(fits.HDUList, "writeto", crashing_writeto(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_fits_atomically(small_hdulist(), path, overwrite=True)
    assert sha256(path) == before and part_files(tmp_path) == []


def test_no_overwrite_unless_asked(tmp_path):
    path = tmp_path / "out.fits"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_fits_atomically(small_hdulist(), path)
    assert path.read_bytes() == b"precious"
    write_fits_atomically(small_hdulist(), path, overwrite=True)
    np.testing.assert_array_equal(fits.getdata(path), np.arange(400.0).reshape(20, 20))


def test_missing_output_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="output folder .* does not exist"):
        write_fits_atomically(small_hdulist(), tmp_path / "nowhere" / "out.fits")
    assert os.listdir(tmp_path) == []


def test_output_permissions_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        write_fits_atomically(small_hdulist(), tmp_path / "out.fits")
    finally:
        os.umask(previous)
    assert (tmp_path / "out.fits").stat().st_mode & 0o777 == 0o644


# --- weights: checksum first, clear errors, no pickle -----------------------------------------


@pytest.fixture
def weights(tmp_path):
    """Small weights saved as the package saves them, with a model card holding the sha256."""
    torch.manual_seed(0)
    path = tmp_path / "net.safetensors"
    digest = save_model(PConvUNet(channels=(4, 8)), path, metadata={"tile_size": "32"})
    (tmp_path / "MODEL_CARD.md").write_text(f"# card\n\nsha256: {digest}\n")
    return path


@pytest.fixture
def no_pickle(monkeypatch):
    """Make every pickle entry point (and torch.load, which uses it) raise."""

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used on the load path")

    class RefusingUnpickler:
        def __init__(self, *args, **kwargs):
            refuse()

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)


def test_verified_weights_load_without_pickle(weights, no_pickle):
    network = load_model(weights, device="cpu")
    assert not network.training and network.channels == (4, 8)
    assert network.metadata["tile_size"] == "32"


def corrupt(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        altered = bytearray(data)
        altered[-5] ^= 0x01
        path.write_bytes(bytes(altered))


@pytest.mark.parametrize("how", ["truncated", "one bit flipped"])
def test_damaged_weights_are_refused_before_use(weights, monkeypatch, how):
    corrupt(weights, how)

    def never(*args, **kwargs):
        raise AssertionError("the weights were read before their checksum was checked")

    monkeypatch.setattr(safetensors, "safe_open", never)
    with pytest.raises(ValueError, match="checksum mismatch.*altered or truncated"):
        load_model(weights, device="cpu")


def test_wrong_explicit_checksum(weights):
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_model(weights, sha256="0" * 64, device="cpu")


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_unverified_damaged_weights_give_a_clear_error(weights, how):
    (weights.parent / "MODEL_CARD.md").unlink()
    if how == "truncated":
        corrupt(weights, how)
    else:
        weights.write_bytes(b"\xff" * 64 + b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(weights, device="cpu")


def test_damaged_bundled_weights_are_refused(weights, monkeypatch):
    monkeypatch.setattr(model_module, "DEFAULT_WEIGHTS", weights)
    monkeypatch.setattr(model_module, "MODEL_CARD", weights.parent / "MODEL_CARD.md")
    assert load_model(device="cpu").channels == (4, 8)
    corrupt(weights, "one bit flipped")
    with pytest.raises(ValueError, match="checksum mismatch"):
        CompactSourceRemover(beam_fwhm=2.0, device="cpu").remove(
            np.random.default_rng(0).normal(size=(64, 64)))


def test_missing_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_model(tmp_path / "absent.safetensors", device="cpu")


@pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="no bundled weights")
def test_whole_removal_with_bundled_weights_uses_no_pickle(no_pickle):
    rng = np.random.default_rng(0)
    data = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 5.0) * 30 + rng.normal(size=(64, 64))
    data[30:33, 30:33] += 40.0
    result = CompactSourceRemover(beam_fwhm=3.0, device="cpu").remove(data)
    assert result.source_mask[31, 31]


@pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="no bundled weights")
def test_output_records_the_checksum_of_the_weights(tmp_path):
    data = np.random.default_rng(0).normal(size=(48, 48))
    result = CompactSourceRemover(beam_fwhm=3.0, device="cpu").remove(data)
    result.write(tmp_path / "out.fits")
    recorded = fits.getheader(tmp_path / "out.fits")["MODELSHA"]
    assert recorded == model_module.read_card_sha256(model_module.MODEL_CARD)


# --- the command line, as a new user would try it ---------------------------------------------


def write_map(path, data):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-6 / 3600, 6 / 3600]
    wcs.wcs.crval = [83.8, -5.4]
    header = wcs.to_header()
    header["INSTRUME"], header["WAVELNTH"], header["BUNIT"] = "SPIRE", 250.0, "Jy/beam"
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


@pytest.fixture
def map_file(tmp_path):
    rng = np.random.default_rng(3)
    data = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 5.0) * 3 + rng.normal(0, 0.1,
                                                                                    (64, 64))
    rows, cols = np.mgrid[:64, :64]
    data += 5 * np.exp(-((rows - 30) ** 2 + (cols - 34) ** 2) / (2 * 1.3**2))
    return write_map(tmp_path / "map.fits", data)


def run_cli(capsys, *arguments):
    status = main(["remove", *map(str, arguments), "--device", "cpu"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err.strip()


def assert_one_line_error(error):
    assert error.startswith("nemesis-bkg remove: error:") and "\n" not in error, error


def test_cli_truncated_fits(map_file, tmp_path, capsys):
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(map_file.read_bytes()[:20000])
    output = tmp_path / "out.fits"
    status, _, error = run_cli(capsys, truncated, "-o", output)
    assert status == 1
    assert_one_line_error(error)
    assert "truncated" in error and "is the file complete?" in error
    assert not output.exists() and part_files(tmp_path) == []


@pytest.mark.parametrize("content", [b"", b"hello, not a FITS file\n"])
def test_cli_not_a_fits_file(tmp_path, capsys, content):
    path = tmp_path / "broken.fits"
    path.write_bytes(content)
    status, _, error = run_cli(capsys, path, "-o", tmp_path / "out.fits")
    assert status == 1
    assert_one_line_error(error)
    assert "cannot read" in error and "broken.fits" in error


def test_cli_map_of_only_nans(tmp_path, capsys):
    path = write_map(tmp_path / "empty.fits", np.full((64, 64), np.nan))
    status, _, error = run_cli(capsys, path, "-o", tmp_path / "out.fits")
    assert status == 1
    assert_one_line_error(error)
    assert "empty.fits" in error and "no valid pixel" in error
    assert not (tmp_path / "out.fits").exists()


def test_cli_interrupted_while_writing(map_file, tmp_path, capsys, monkeypatch):
    output = tmp_path / "out.fits"
    input_digest = sha256(map_file)
    monkeypatch.setattr(fits.HDUList, "writeto", crashing_writeto(KeyboardInterrupt()))
    status, _, error = run_cli(capsys, map_file, "-o", output)
    # The last line: a progress bar may come before it on stderr.
    assert status == 130 and error.splitlines()[-1] == "nemesis-bkg remove: interrupted"
    assert not output.exists() and part_files(tmp_path) == []
    assert sha256(map_file) == input_digest


def test_cli_interrupted_run_keeps_the_previous_output(map_file, tmp_path, capsys, monkeypatch):
    output = tmp_path / "out.fits"
    assert run_cli(capsys, map_file, "-o", output)[0] == 0
    previous = sha256(output)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(remover_module, "inpaint_map", interrupted)
    status, _, _ = run_cli(capsys, map_file, "-o", output, "--overwrite")
    assert status == 130 and sha256(output) == previous and part_files(tmp_path) == []


def test_cli_checks_outputs_before_working(map_file, tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the map was processed although its output cannot be written")

    monkeypatch.setattr(remover_module, "load_model", never)
    status, _, error = run_cli(capsys, map_file, "-o", tmp_path / "nowhere" / "out.fits")
    assert status == 1
    assert_one_line_error(error)
    assert "does not exist; create it first" in error
    (tmp_path / "taken.reg").write_text("x")
    status, _, error = run_cli(capsys, map_file, "-o", tmp_path / "o.fits", "--regions-out",
                               tmp_path / "taken.reg")
    assert status == 1 and "taken.reg exists" in error


def test_cli_refuses_to_overwrite_its_input(map_file, capsys):
    before = sha256(map_file)
    status, _, error = run_cli(capsys, map_file, "-o", map_file, "--overwrite")
    assert status == 1
    assert_one_line_error(error)
    assert "is the input map" in error and sha256(map_file) == before


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        # Unknown formats are read as plain ASCII tables: here one without positions.
        ("cat.txt", "\x00\x01 not a table ,,,\n", "needs position columns"),
        ("cat.ecsv", "# %ECSV 1.0\n# ---\n# - broken: [\nx y\n1 2\n", "cannot read the catalogue"),
        ("cat.csv", "x,y\n10,12\n20\n", r"rows \[1\] have NaN"),
        ("cat2.csv", "a,b\n1,2\n", "needs position columns"),
    ],
)
def test_cli_bad_catalogues(map_file, tmp_path, capsys, name, content, match):
    path = tmp_path / name
    path.write_text(content)
    status, _, error = run_cli(capsys, map_file, "-o", tmp_path / "o.fits", "--catalog", path)
    assert status == 1
    assert_one_line_error(error)
    assert re.search(match, error)
    assert not (tmp_path / "o.fits").exists()


def test_cli_malformed_region_file_and_unknown_instrument(map_file, tmp_path, capsys):
    regions = tmp_path / "bad.reg"
    regions.write_text("# Region file format: DS9\nimage\ncircle(10,10,3)\nfoo bar\n")
    status, _, error = run_cli(capsys, map_file, "-o", tmp_path / "o.fits", "--regions", regions)
    assert status == 1 and "cannot be parsed as DS9" in error
    assert_one_line_error(error)
    status, _, error = run_cli(capsys, map_file, "-o", tmp_path / "o.fits", "--instrument", "foo")
    assert status == 1 and "unknown instrument 'foo'" in error
    assert_one_line_error(error)
    assert not (tmp_path / "o.fits").exists()
