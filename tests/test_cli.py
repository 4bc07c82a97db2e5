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
    assert "1 source removed (" in capsys.readouterr().out
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
    # The reason names the options to use, not the Python keywords behind them.
    error = capsys.readouterr().err
    assert "--instrument" in error and "--beam-fwhm" in error and "beam_fwhm" not in error


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


def test_demo_checks_both_outputs_before_the_work(tmp_path, capsys):
    output, png = tmp_path / "demo.fits", tmp_path / "missing" / "demo.png"
    assert main(["demo", "-o", str(output), "--png", str(png), "--device", "cpu"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not output.exists()
    output.write_bytes(b"")
    assert main(["demo", "-o", str(output), "--png", str(tmp_path / "ok.png")]) == 1
    assert "exists; pass --overwrite to replace it" in capsys.readouterr().err


def test_remove_help_shows_examples(capsys):
    with pytest.raises(SystemExit):
        main(["remove", "--help"])
    text = capsys.readouterr().out
    assert "examples:\n  nemesis-bkg remove" in text and "--beam-fwhm FWHM" in text


def test_remove_errors_name_the_options(fits_map, tmp_path, capsys):
    output = str(tmp_path / "o.fits")
    for options, option in ((["--beam-fwhm", "-3"], "--beam-fwhm"),
                            (["--threads", "0"], "--threads")):
        assert main(["remove", str(fits_map), "-o", output, "--device", "cpu", *options]) == 1
        error = capsys.readouterr().err
        assert f" {option} must be" in error and error.count("\n") == 1


def test_quicklook_leaves_the_callers_matplotlib_alone(tmp_path):
    import matplotlib

    from nemesis_bkg import CompactSourceRemover
    from nemesis_bkg.commands.demo import plot_quicklook

    sim = simulate_map((64, 64), instrument="spire250", n_sources=2, seed=1)
    result = CompactSourceRemover(device="cpu").remove(sim.data)
    backend = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        plot_quicklook(sim.data, result, tmp_path / "look.png")
        # A notebook's backend (here svg) survives, and no pyplot figure is left open.
        assert matplotlib.get_backend() == "svg"
        assert "matplotlib.pyplot" not in sys.modules or not sys.modules[
            "matplotlib.pyplot"].get_fignums()
    finally:
        matplotlib.use(backend)
    assert (tmp_path / "look.png").read_bytes()[:4] == b"\x89PNG"
