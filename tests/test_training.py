"""Tests of the training pipeline: samples, losses, a smoke run, resume and export."""

import argparse
import copy
import time
import warnings

import numpy as np
import pytest
import torch

from nemesis_bkg.model import DEFAULT_WEIGHTS, PConvUNet, load_model, read_card_sha256, save_model
from nemesis_bkg.training import export_checkpoint, load_config, train, validate
from nemesis_bkg.training.command import add_arguments, run
from nemesis_bkg.training.config import DEFAULT_CONFIG, initial_weights_path, read_checkpoint
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
    # A run from a fresh network needs no starting weights to reproduce.
    assert "# start from weights" not in card
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


def test_a_configuration_changes_the_keys_of_its_base(tmp_path):
    (tmp_path / "base.toml").write_text(DEFAULT_CONFIG.read_text())
    (tmp_path / "stage.toml").write_text(
        'base = "base.toml"\n[model]\ninitial_weights = "start.safetensors"\n'
        "[optimizer]\nlearning_rate = 1.0e-5\n")
    (tmp_path / "next.toml").write_text('base = "stage.toml"\n[run]\nseed = 7\n')
    base, stage = load_config(tmp_path / "base.toml"), load_config(tmp_path / "next.toml")
    assert stage["optimizer"]["learning_rate"] == 1.0e-5 and stage["run"]["seed"] == 7
    assert initial_weights_path(stage) == tmp_path / "start.safetensors"
    for section in ("data", "loss"):
        assert stage[section] == base[section]
    assert stage["optimizer"]["batch_size"] == base["optimizer"]["batch_size"]
    assert stage["path"] == str(tmp_path / "next.toml") and "seed = 7" in stage["source"]


def test_base_files_that_loop_or_are_missing_are_refused(tmp_path):
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(ValueError, match="loop"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "c.toml").write_text('base = "missing.toml"\n')
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text("base = 3\n")
    with pytest.raises(ValueError, match="base must be"):
        load_config(tmp_path / "d.toml")


def test_refinement_stages_differ_from_the_gpu_run_in_start_and_schedule_only():
    first = load_config(DEFAULT_CONFIG.parent / "gpu.toml")
    for name in ("gpu_refine_1.toml", "gpu_refine_2.toml"):
        stage = load_config(DEFAULT_CONFIG.parent / name)
        assert initial_weights_path(stage) == DEFAULT_WEIGHTS
        assert stage["data"] == first["data"] and stage["loss"] == first["loss"]
        assert stage["optimizer"]["learning_rate"] < first["optimizer"]["learning_rate"]


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


def test_configuration_values_are_checked(tmp_path):
    from nemesis_bkg.training.config import DEFAULT_CONFIG

    text = DEFAULT_CONFIG.read_text()
    cases = {
        # A typo of an optional key was silently ignored.
        "workers = 0": ("worker = 0", r"run\.worker is not a known key"),
        "tile_size = 64": ("tile_size = 60", "multiple of 16"),
        "batch_size = 16": ("batch_size = 4096", "pool_size .* at least optimizer.batch_size"),
        "real_fraction = 0.35": ("real_fraction = 1.5", "from 0 to 1"),
        "fwhm_range = [1.5, 5.0]": ("fwhm_range = [5.0, 1.5]", "pair"),
        "learning_rate = 1.5e-3": ("learning_rate = 0", "above 0"),
        "simulated_map_size = 384": ("simulated_map_size = 64", "at least tile_size"),
        # A missing key was a KeyError deep in the training loop.
        "max_steps = 20000\n": ("", r"optimizer\.max_steps is missing"),
    }
    for old, (new, message) in cases.items():
        assert old in text
        broken = tmp_path / "broken.toml"
        broken.write_text(text.replace(old, new, 1))
        with pytest.raises(ValueError, match=message):
            load_config(broken)
    from nemesis_bkg.training.config import check_config

    config = load_config()
    config["data"]["tile_size"] = 64.0
    with pytest.raises(ValueError, match="must be an integer"):
        check_config(config)
    with pytest.raises(ValueError, match="must be an integer"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_flux_loss_averages_over_tiles_with_holes():
    inputs = torch.zeros(2, 4, 8, 8)
    holes = torch.zeros(2, 1, 8, 8)
    holes[0, :, 2:4, 2:4] = 1  # the second tile has no hole: no in-hole error to average
    outputs = torch.zeros(2, 2, 8, 8)
    outputs[:, 0] = 0.5
    losses = inpainting_losses(outputs, inputs, torch.zeros(2, 1, 8, 8), holes,
                               torch.ones(2, 1, 8, 8))
    assert float(losses["flux"]) == pytest.approx(0.5)


def test_losses_ignore_pixels_without_a_true_background():
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(2, 2, 16, 16, generator=generator)
    inputs = torch.randn(2, 4, 16, 16, generator=generator)
    target = torch.randn(2, 1, 16, 16, generator=generator)
    holes = torch.zeros(2, 1, 16, 16)
    holes[..., 4:10, 4:10] = 1
    valid = torch.ones(2, 1, 16, 16)
    valid[..., :, 10:] = 0  # no data right of the hole, as at a scan edge
    before = inpainting_losses(outputs, inputs, target, holes, valid)
    changed_inputs, changed_target = inputs.clone(), target.clone()
    changed_inputs[:, 0:1] += 5.0 * (1 - valid)
    changed_target += 7.0 * (1 - valid)
    after = inpainting_losses(outputs, changed_inputs, changed_target, holes, valid)
    # SSIM windows reach across the edge by design; no other term may.
    for name in ("hole", "valid", "flux", "gradient", "nll"):
        assert float(after[name]) == pytest.approx(float(before[name]), rel=1e-6), name


def _tiny_config(**data):
    config = load_config()
    config["model"]["channels"] = [4, 8]
    config["data"].update({"tile_size": 32, "context": 8, "simulated_maps": 1,
                           "simulated_map_size": 96, "real_fraction": 0.0, "pool_size": 16,
                           "refresh_per_step": 1, **data})
    config["optimizer"].update(batch_size=4, warmup_steps=1, max_steps=1000)
    config["run"].update(validation_samples=8)
    return config


@pytest.fixture(scope="module")
def overridden_run(tmp_path_factory):
    """A run given --max-steps and asked for real maps where there are none."""
    empty = tmp_path_factory.mktemp("no_maps")
    out = tmp_path_factory.mktemp("overridden") / "run"
    rates = []

    class RecordingAdamW(torch.optim.AdamW):
        def step(self, *args, **kwargs):
            rates.append(self.param_groups[0]["lr"])
            return super().step(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        patch.setenv("NEMESIS_BKG_REAL_MAPS", str(empty))
        patch.setattr(torch.optim, "AdamW", RecordingAdamW)
        train(_tiny_config(real_fraction=0.35), out, max_steps=3, progress=False)
    return out, rates, [str(warning.message) for warning in caught]


def test_a_run_without_the_real_maps_it_asks_for_warns(overridden_run):
    _, _, caught = overridden_run
    assert any("no real map was found" in message for message in caught)


def test_max_steps_override_ends_the_schedule(overridden_run):
    _, rates, _ = overridden_run
    base = load_config()["optimizer"]["learning_rate"]
    # Cosine decay over the 3 steps asked for, not over the configuration's 1000.
    assert len(rates) == 3 and rates[-1] < 0.5 * base


def test_card_reproduces_the_run_it_describes(overridden_run, samples, tmp_path):
    out, _, _ = overridden_run
    weights = tmp_path / "net.safetensors"
    export_checkpoint(out / "last.ckpt", weights=weights, validation=samples)
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "--max-steps 3" in card and "--max-minutes" not in card
    assert "none was found when the run was made" in card
    assert "of the samples cut from the training halves" not in card


def test_a_run_folder_is_never_overwritten_unasked(tiny_run, tmp_path):
    import shutil

    config, out, _ = tiny_run
    copy_of_run = tmp_path / "run"
    shutil.copytree(out, copy_of_run)
    log = (copy_of_run / "log.jsonl").read_text()
    with pytest.raises(FileExistsError, match="--overwrite"):
        train(config, copy_of_run, progress=False)
    assert (copy_of_run / "log.jsonl").read_text() == log
    metrics = train(config, copy_of_run, overwrite=True, max_steps=2, progress=False)
    assert metrics["step"] == 2
    assert (copy_of_run / "log.jsonl").read_text().count("\n") == 1


def test_resume_keeps_the_runs_own_configuration(tiny_run, tmp_path):
    import shutil

    config, out, _ = tiny_run
    copy_of_run = tmp_path / "run"
    shutil.copytree(out, copy_of_run)
    steps = torch.load(copy_of_run / "last.ckpt", weights_only=True)["step"] + 2
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    # No --config: the run's tiny network, not the bundled configuration's.
    args = parser.parse_args(["--resume", "--out", str(copy_of_run), "--max-steps", str(steps),
                              "--no-progress"])
    assert run(args) == 0
    assert torch.load(copy_of_run / "last.ckpt", weights_only=True)["step"] == steps
    other = copy.deepcopy(config)
    other["model"]["channels"] = [4, 8, 16]
    with pytest.raises(ValueError, match="another network"):
        train(other, copy_of_run, resume=True, progress=False)


def test_export_never_overwrites_unasked(tiny_run, tmp_path, monkeypatch, capsys):
    from nemesis_bkg import cli

    _, out, _ = tiny_run
    weights = tmp_path / "net.safetensors"
    weights.write_bytes(b"someone else's weights")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_checkpoint(out / "best.ckpt", weights=weights)
    assert weights.read_bytes() == b"someone else's weights"
    export_checkpoint(out / "best.ckpt", weights=weights, overwrite=True)
    assert load_model(weights, device="cpu").metadata["training_steps"]
    # The default destination (the bundled weights, here a stand-in) needs --overwrite too.
    monkeypatch.setitem(export_checkpoint.__kwdefaults__, "weights", weights)
    before = weights.read_bytes()
    assert cli.main(["train", "--export", str(out / "best.ckpt")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--overwrite" in error
    assert weights.read_bytes() == before


def test_command_line_errors_are_one_line(tiny_run, tmp_path, capsys):
    from nemesis_bkg import cli

    _, out, _ = tiny_run
    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("not a checkpoint")
    weights = str(tmp_path / "net.safetensors")
    commands = {
        "not a checkpoint written by nemesis-bkg train":
            ["--export", str(not_a_checkpoint), "--weights", weights],
        # Options the export would silently ignore.
        "--resume, --max-steps has no effect with --export":
            ["--export", str(out / "last.ckpt"), "--weights", weights, "--resume",
             "--max-steps", "9"],
    }
    for message, arguments in commands.items():
        assert cli.main(["train", *arguments]) == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error
    assert not (tmp_path / "net.safetensors").exists()


def test_python_m_training_reports_errors_in_one_line(tmp_path, monkeypatch, capsys):
    import runpy
    import sys

    monkeypatch.setattr(sys, "argv", ["nemesis_bkg.training", "--config",
                                      str(tmp_path / "none.toml")])
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_module("nemesis_bkg.training", run_name="__main__")
    assert exit_status.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("nemesis-bkg train: error: no configuration file")
    assert error.count("\n") == 1


def test_drawing_samples_fails_clearly_instead_of_looping():
    from nemesis_bkg.training.pool import draw_samples

    options = {"tile_size": 16, "context": 8}
    with pytest.raises(ValueError, match="no background views"):
        draw_samples([], [], 1, np.random.default_rng(0), real_fraction=0.0,
                     sample_options=options)
    no_data = BackgroundView(np.full((64, 64), np.nan), None, 1.0, 3.0, "empty")
    with pytest.raises(ValueError, match="no training sample could be made"):
        draw_samples([no_data], [], 1, np.random.default_rng(0), real_fraction=0.0,
                     sample_options=options)


def test_pool_stops_its_workers_when_filling_fails(monkeypatch):
    from concurrent.futures import ProcessPoolExecutor

    from nemesis_bkg.training import pool as pool_module

    executors = []

    class InterruptedExecutor(ProcessPoolExecutor):
        """Ctrl-C arrives while the pool hands out its chunks."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            executors.append(self)

        def submit(self, function, *args, **kwargs):
            raise KeyboardInterrupt

    monkeypatch.setattr(pool_module, "ProcessPoolExecutor", InterruptedExecutor)
    with pytest.raises(KeyboardInterrupt):
        SamplePool([power_law_view(9)], [], 128, np.random.default_rng(3), real_fraction=0.0,
                   sample_options={"tile_size": 32, "context": 8}, workers=1)
    (executor,) = executors
    try:
        with pytest.raises(RuntimeError, match="shutdown"):
            ProcessPoolExecutor.submit(executor, abs, 1)
    finally:
        executor.shutdown(wait=True)


def _saved_tiny_weights(folder, channels=(4, 8)):
    torch.manual_seed(11)
    network = PConvUNet(channels=channels)
    for parameter in network.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    path = folder / "start.safetensors"
    digest = save_model(network, path, metadata={"tile_size": "32"})
    (folder / "MODEL_CARD.md").write_text(f"# card\n\nsha256: {digest}\n")
    return network, path, digest


def test_fine_tuning_starts_from_the_given_weights(tmp_path):
    start, path, digest = _saved_tiny_weights(tmp_path)
    config = _tiny_config()
    config["model"]["initial_weights"] = str(path)
    config["optimizer"]["learning_rate"] = 1e-12  # the weights stay where they started
    train(config, tmp_path / "run", max_steps=1, progress=False)
    trained = read_checkpoint(tmp_path / "run" / "last.ckpt", device="cpu")["model"]
    for name, parameter in start.named_parameters():
        torch.testing.assert_close(trained[name], parameter.detach(), rtol=0, atol=1e-9)
    metrics = export_checkpoint(tmp_path / "run" / "last.ckpt",
                                weights=tmp_path / "out" / "net.safetensors")
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert f"Fine-tuned from `start.safetensors` (sha256 {digest}" in card
    reproduce = card.split("## Reproduce", 1)[1]
    assert f"# start from weights of sha256 {digest}" in reproduce
    assert metrics["sha256"] != digest


def test_fine_tuning_refuses_weights_of_another_network(tmp_path):
    _, path, _ = _saved_tiny_weights(tmp_path, channels=(4, 8, 8))
    config = _tiny_config()
    config["model"]["initial_weights"] = str(path)
    with pytest.raises(ValueError, match=r"channels \[4, 8, 8\]"):
        train(config, tmp_path / "run", max_steps=1, progress=False)
    config["model"]["initial_weights"] = str(tmp_path / "absent.safetensors")
    with pytest.raises(FileNotFoundError):
        train(config, tmp_path / "other", max_steps=1, progress=False)


def test_fine_tuning_options_are_checked(tmp_path):
    config = _tiny_config()
    config["model"]["initial_weights"] = 3
    config["data"]["real_zoom_range"] = [2.0, 1.0]
    with pytest.raises(ValueError) as error:
        train(config, tmp_path / "run", max_steps=1, progress=False)
    assert "model.initial_weights" in str(error.value)
    assert "data.real_zoom_range" in str(error.value)


def test_fine_tuning_configuration_names_the_bundled_weights():
    config = load_config(DEFAULT_CONFIG.parent / "finetune.toml")
    assert initial_weights_path(config) == DEFAULT_WEIGHTS
    assert load_model(device="cpu").channels == tuple(config["model"]["channels"])
