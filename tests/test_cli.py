"""The ``nemesis-bkg`` command: remove, demo, help and errors."""

import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from nemesis_bkg.cli import main
from nemesis_bkg.simulate import simulate_map, write_simulated_map


@pytest.fixture(scope="module")
def fits_map(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "pacs160.fits"
    sim = simulate_map((128, 128), instrument="pacs160", n_sources=6, seed=4)
    write_simulated_map(sim, path)
    return path


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in ("remove", "demo", "simulate", "bench", "train"):
        assert name in text


def test_remove_writes_fits_and_refuses_overwrite(fits_map, tmp_path, capsys):
    output = tmp_path / "out.fits"
    regions = tmp_path / "holes.reg"
    assert (
        main(
            [
                "remove",
                str(fits_map),
                "-o",
                str(output),
                "--device",
                "cpu",
                "--regions-out",
                str(regions),
            ]
        )
        == 0
    )
    assert "sources removed" in capsys.readouterr().out
    with fits.open(output) as hdul:
        assert hdul["BACKGROUND"].data.shape == (128, 128)
    assert regions.read_text().startswith("# Region file format: DS9")
    assert main(["remove", str(fits_map), "-o", str(output), "--device", "cpu"]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_remove_several_files_keeps_going_and_resumes(fits_map, tmp_path, capsys):
    second = tmp_path / "second.fits"
    second.write_bytes(fits_map.read_bytes())
    broken = tmp_path / "broken.fits"
    broken.write_bytes(fits_map.read_bytes()[:5000])
    out_dir = tmp_path / "d"
    inputs = [str(fits_map), str(broken), str(second)]
    assert main(["remove", *inputs, "--out-dir", str(out_dir), "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "broken.fits: failed" in captured.out and "1 of 3 files failed" in captured.err
    assert (out_dir / "pacs160_nemesis.fits").exists() and (
        out_dir / "second_nemesis.fits"
    ).exists()
    assert not (out_dir / "broken_nemesis.fits").exists()
    assert not list(out_dir.glob("*.part"))
    assert main(["remove", str(fits_map), str(second), "--out-dir", str(out_dir)]) == 0
    assert capsys.readouterr().out.count(": skipped:") == 2


def test_remove_errors_are_one_line(tmp_path, capsys):
    missing = tmp_path / "missing.fits"
    assert main(["remove", str(missing), "-o", str(tmp_path / "o.fits")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("nemesis-bkg remove: error:") and "\n" not in error
    array = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.random.default_rng(0).normal(size=(64, 64))).writeto(array)
    assert main(["remove", str(array), "-o", str(tmp_path / "o.fits")]) == 1
    assert "beam_fwhm" in capsys.readouterr().err


def test_demo_writes_products(tmp_path, capsys):
    output, png = tmp_path / "demo.fits", tmp_path / "demo.png"
    assert main(["demo", "-o", str(output), "--png", str(png), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "x the noise" in text and output.exists()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_console_script_runs():
    completed = subprocess.run(
        [sys.executable, "-m", "nemesis_bkg.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0 and "nemesis-bkg" in completed.stdout


def test_remove_takes_a_psf_and_device_options(fits_map, tmp_path, capsys):
    from nemesis_bkg.simulate.beams import gaussian_beam

    psf = tmp_path / "psf.fits"
    fits.PrimaryHDU(gaussian_beam(3.56).stamp(0.0, 0.0)[None]).writeto(psf)
    output = tmp_path / "with_psf.fits"
    arguments = ["remove", str(fits_map), "-o", str(output), "--device", "cpu", "--psf", str(psf),
                 "--precision", "bfloat16", "--threads", "1", "--batch-size", "4"]
    assert main(arguments) == 0
    assert fits.getdata(output, "SOURCE_MASK").any()
    fits.PrimaryHDU(np.ones((4, 4))).writeto(tmp_path / "even.fits")
    arguments[arguments.index(str(psf))] = str(tmp_path / "even.fits")
    assert main(arguments[:3] + [str(tmp_path / "other.fits")] + arguments[4:]) == 1
    assert "odd" in capsys.readouterr().err
