"""Tests of the training pipeline: samples, losses, a smoke run, resume and export."""

import argparse
import copy
import time

import numpy as np
import pytest
import torch

from nemesis_bkg.model import PConvUNet, load_model, read_card_sha256
from nemesis_bkg.training import export_checkpoint, load_config, train, validate
from nemesis_bkg.training.command import add_arguments, run
from nemesis_bkg.training.data import BackgroundView, make_sample
from nemesis_bkg.training.losses import LOSS_NAMES, inpainting_losses
from nemesis_bkg.training.pool import SamplePool

torch.set_num_threads(1)


def power_law_view(seed, *, size=128, contrast=100.0):
    """A tiny smoothed power-law background (the tests' own generator)."""
    rng = np.random.default_rng(seed)
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    frequency[0, 0] = 1.0
    amplitude = frequency**-1.5 * np.exp(-2 * (np.pi * 1.5 * frequency) ** 2)
    field = np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * amplitude).real
    return BackgroundView(contrast * field / field.std(), None, 1.0, 3.0, "power-law")


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    views = [power_law_view(seed) for seed in range(3)]
    drawn = [make_sample(views[index % 3], rng, tile_size=32, context=8) for index in range(24)]
    return [sample for sample in drawn if sample is not None]


def test_samples_are_well_formed(samples):
    assert len(samples) > 18
    for sample in samples:
        assert sample.inputs.shape == (4, 32, 32) and sample.inputs.dtype == np.float32
        assert np.all(np.isfinite(sample.inputs)) and np.all(np.isfinite(sample.target))
        assert sample.holes.any()
        assert np.array_equal(sample.inputs[1] > 0, sample.holes)
        assert sample.noise_in_scale > 0


def _batch(samples):
    from nemesis_bkg.training.pool import batch_tensors

    return batch_tensors(samples, torch.device("cpu"))


def test_losses_vanish_for_a_perfect_prediction(samples):
    batch = _batch(samples[:4])
    # Noise-free data outside the holes, and a correction that gives the truth inside.
    batch["target"] = torch.where(batch["holes"] > 0, batch["target"], batch["inputs"][:, 0:1])
    outputs = torch.zeros(4, 2, 32, 32)
    outputs[:, 0:1] = batch["target"] - batch["inputs"][:, 0:1]
    losses = inpainting_losses(outputs, batch["inputs"], batch["target"], batch["holes"],
                               batch["valid"])
    assert set(losses) == set(LOSS_NAMES)
    for name in ("hole", "valid", "flux", "gradient"):
        assert float(losses[name]) == pytest.approx(0.0, abs=1e-6)
    assert float(losses["ssim"]) == pytest.approx(0.0, abs=1e-4)
    wrong = inpainting_losses(torch.zeros(4, 2, 32, 32), batch["inputs"], batch["target"],
                              batch["holes"], batch["valid"])
    assert float(wrong["hole"]) > 0.01


def test_likelihood_trains_only_the_uncertainty(samples):
    batch = _batch(samples[:4])
    outputs = torch.zeros(4, 2, 32, 32, requires_grad=True)
    losses = inpainting_losses(outputs, batch["inputs"], batch["target"], batch["holes"],
                               batch["valid"])
    losses["nll"].backward()
    assert outputs.grad[:, 0].abs().max() == 0
    assert outputs.grad[:, 1].abs().max() > 0


def test_a_few_steps_lower_the_loss(samples):
    torch.manual_seed(0)
    model = PConvUNet(channels=(8, 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = _batch(samples[:16])

    def total():
        outputs = model(batch["inputs"], batch["coverage"])
        losses = inpainting_losses(outputs, batch["inputs"], batch["target"], batch["holes"],
                                   batch["valid"])
        return losses["hole"] + 0.5 * losses["flux"] + 0.2 * losses["nll"]

    first = float(total().detach())
    for _ in range(15):
        optimizer.zero_grad()
        total().backward()
        optimizer.step()
    assert float(total().detach()) < 0.9 * first


def test_validation_compares_with_the_classical_fills(samples):
    metrics = validate(PConvUNet(channels=(8, 16)), samples, device="cpu")
    # A fresh network's correction head is zero: it returns the kriging fill exactly.
    assert metrics["ratio_fill"] == pytest.approx(1.0, abs=1e-5)
    assert 0 < metrics["rms_biharmonic"] and 0 <= metrics["coverage_1sigma"] <= 1
    assert metrics["calibration_needed"] > 0


def test_pool_batches_are_rotated_copies(samples):
    pool = SamplePool([power_law_view(7)], [], 8, np.random.default_rng(1), real_fraction=0.0,
                      sample_options={"tile_size": 32, "context": 8})
    batch = pool.batch(4, torch.device("cpu"))
    assert batch["inputs"].shape == (4, 4, 32, 32)
    before = copy.copy(pool.samples)
    pool.refresh(3)
    assert sum(old is not new for old, new in zip(before, pool.samples, strict=True)) >= 1


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    config = load_config()
    config["model"]["channels"] = [4, 8]
    config["data"].update(tile_size=32, context=8, simulated_maps=1, simulated_map_size=96,
                          real_fraction=0.0, pool_size=16, refresh_per_step=1)
    config["optimizer"].update(batch_size=4, warmup_steps=2, max_steps=6)
    config["run"].update(validation_samples=8)
    out = tmp_path_factory.mktemp("run")
    metrics = train(config, out, progress=False)
    return config, out, metrics


def test_training_run_writes_checkpoints_and_resumes(tiny_run):
    config, out, metrics = tiny_run
    assert metrics["step"] == 6
    assert (out / "last.ckpt").is_file() and (out / "best.ckpt").is_file()
    assert (out / "log.jsonl").read_text().count("\n") == 1
    resumed = train(config, out, resume=True, max_steps=8, progress=False)
    assert resumed["step"] == 8
    with pytest.raises(FileNotFoundError, match="resume"):
        train(config, out / "empty", resume=True, progress=False)


def test_export_writes_verified_weights_and_card(tiny_run, tmp_path):
    _, out, _ = tiny_run
    weights = tmp_path / "weights" / "net.safetensors"
    metrics = export_checkpoint(out / "best.ckpt", weights=weights)
    card = (weights.parent / "MODEL_CARD.md").read_text()
    assert read_card_sha256(weights.parent / "MODEL_CARD.md") == metrics["sha256"]
    assert "nemesis-bkg train --config" in card
    model = load_model(weights, device="cpu")
    assert float(model.metadata["sigma_calibration"]) == pytest.approx(
        metrics["sigma_calibration"])


def test_command_line_export(tiny_run, tmp_path, capsys):
    _, out, _ = tiny_run
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    weights = tmp_path / "net.safetensors"
    args = parser.parse_args(["--export", str(out / "last.ckpt"), "--weights", str(weights)])
    assert run(args) == 0
    assert weights.is_file() and "sha256" in capsys.readouterr().out


def test_configuration_errors(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[model]\nchannels = [4, 8]\n")
    with pytest.raises(ValueError, match="lacks the section"):
        load_config(broken)
    broken.write_text("this is = = not toml")
    with pytest.raises(ValueError, match="TOML"):
        load_config(broken)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")


def test_pool_workers_make_samples_in_the_background():
    options = {"tile_size": 32, "context": 8}
    with SamplePool([power_law_view(8)], [], 8, np.random.default_rng(2), real_fraction=0.0,
                    sample_options=options, workers=1) as pool:
        assert len(pool.samples) == 8
        first = list(pool.samples)
        deadline = time.monotonic() + 60
        while all(a is b for a, b in zip(first, pool.samples, strict=True)):
            assert time.monotonic() < deadline, "no sample arrived from the worker"
            time.sleep(0.2)
            pool.refresh(0)
        assert pool.batch(4, torch.device("cpu"))["inputs"].shape == (4, 4, 32, 32)
    assert pool._executor is None
