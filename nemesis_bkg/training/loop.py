"""
The training loop: sample pool, AdamW with warm-up and cosine decay,
running losses on a progress bar, checkpoints with resume, and a
fixed-seed validation set scored against the classical fills.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..model import PConvUNet, load_model, resolve_device
from .config import check_config, initial_weights_path, read_checkpoint
from .data import BackgroundView, Sample, real_map_views, simulated_views
from .losses import LOSS_NAMES, inpainting_losses, predictions
from .pool import SamplePool, batch_tensors, draw_samples

__all__ = ["build_model", "make_views", "sample_options", "train", "validate",
           "validation_samples"]

#: Seed offset that keeps the validation maps apart from the training maps.
VALIDATION_SEED_OFFSET = 1000

#: The files of a run folder that a new run would replace.
RUN_FILES = ("last.ckpt", "best.ckpt", "log.jsonl")


def build_model(config: dict) -> PConvUNet:
    """
    The network described by a configuration.

    Parameters
    ----------
    config : dict
        A configuration with a ``model`` section.

    Returns
    -------
    `~nemesis_bkg.model.PConvUNet`
        A freshly initialised network.

    Examples
    --------
    >>> build_model({"model": {"channels": [8, 16]}}).downsampling_factor
    2
    """
    return PConvUNet(channels=tuple(config["model"]["channels"]))


def sample_options(config: dict) -> dict:
    """
    Keywords of `~nemesis_bkg.training.data.make_sample` from a configuration.

    Parameters
    ----------
    config : dict
        A configuration with a ``data`` section.

    Returns
    -------
    dict
        ``tile_size``, ``context``, ``fwhm_range``, ``snr_range``,
        ``max_extra_sources``, ``extra_hole_probability`` and
        ``nan_edge_probability``.

    Examples
    --------
    >>> from nemesis_bkg.training.config import load_config
    >>> sample_options(load_config())["tile_size"]
    64
    """
    data = config["data"]
    return {
        "tile_size": int(data["tile_size"]),
        "context": int(data["context"]),
        "fwhm_range": tuple(data["fwhm_range"]),
        "snr_range": tuple(data["snr_range"]),
        "max_extra_sources": int(data["max_extra_sources"]),
        "extra_hole_probability": float(data["extra_hole_probability"]),
        "nan_edge_probability": float(data["nan_edge_probability"]),
    }


def make_views(config: dict, seed: int) -> tuple[list[BackgroundView], list[BackgroundView]]:
    """
    Simulated and real background views for one seed.

    Parameters
    ----------
    config : dict
        A configuration with a ``data`` section.
    seed : int
        Seed of the simulated maps and of the real maps' zooms.

    Returns
    -------
    views, real : list of `~nemesis_bkg.training.data.BackgroundView`
        The simulated backgrounds, and the real ones (empty when
        ``real_fraction`` is 0 or no real map is found).

    Examples
    --------
    >>> from nemesis_bkg.training.config import load_config
    >>> views, real = make_views(load_config(), 0)  # doctest: +SKIP
    """
    data = config["data"]
    views = simulated_views(
        int(data["simulated_maps"]),
        size=int(data["simulated_map_size"]),
        fwhm_range=tuple(data["fwhm_range"]),
        contrast_range=tuple(data["contrast_range"]),
        seed=seed,
    )
    real = []
    if float(data["real_fraction"]) > 0:
        real = real_map_views(
            zoom_range=tuple(data.get("real_zoom_range", (0.7, 2.5))),
            contrast_range=tuple(data["contrast_range"]),
            views_per_map=int(data["real_views_per_map"]),
            exclude=tuple(data.get("real_maps_exclude", ())),
            seed=seed,
        )
        # Strong zooms out can leave a map smaller than the canvas a sample is cut from.
        canvas = int(data["tile_size"]) + 2 * int(data["context"])
        fitting = [view for view in real if min(view.truth.shape) >= canvas]
        if len(fitting) < len(real):
            warnings.warn(f"{len(real) - len(fitting)} of {len(real)} real-map views are smaller "
                          f"than the {canvas}-pixel canvas of a sample and are left out",
                          UserWarning, stacklevel=2)
        real = fitting
    return views, real


def validation_samples(config: dict) -> list[Sample]:
    """
    The fixed-seed validation set (maps simulated with other seeds than training).

    Parameters
    ----------
    config : dict
        A configuration; its ``run.seed`` and ``run.validation_samples``
        and its ``data`` section fix the set.

    Returns
    -------
    list of `~nemesis_bkg.training.data.Sample`
        The same samples for the same configuration and real maps.

    Examples
    --------
    >>> from nemesis_bkg.training.config import load_config
    >>> samples = validation_samples(load_config())  # doctest: +SKIP
    """
    seed = int(config["run"]["seed"]) + VALIDATION_SEED_OFFSET
    views, real = make_views(config, seed)
    options = sample_options(config)
    return draw_samples(views, real, int(config["run"]["validation_samples"]),
                        np.random.default_rng(seed),
                        real_fraction=float(config["data"]["real_fraction"]),
                        sample_options=options)


def validate(
    model: PConvUNet,
    samples: list[Sample],
    *,
    device: str | torch.device = "cpu",
    sigma_calibration: float = 1.0,
) -> dict[str, float]:
    """
    Score the network on validation samples, in units of the map noise.

    Parameters
    ----------
    model : `~nemesis_bkg.model.PConvUNet`
        The network, on ``device``; it is put back in training mode after
        if it was in it.
    samples : list of `~nemesis_bkg.training.data.Sample`
        Validation samples (see `validation_samples`).
    device : str or `torch.device`, optional
        Where the network runs.
    sigma_calibration : float, optional
        Factor on the predicted uncertainty.

    Returns
    -------
    dict
        ``rms_network``, ``rms_fill`` (the classical kriging fill),
        ``rms_biharmonic``: in-hole RMS error / noise over all samples;
        ``ratio_biharmonic``, ``ratio_fill``: the network's ratios to them;
        the same for the bright samples (background contrast >= 100) as
        ``bright_*``, for the simulated and the real backgrounds as
        ``simulated_*`` and ``real_*``; ``tile_ratio_biharmonic``: geometric
        mean over tiles of the network's in-hole RMS error over
        biharmonic's (the figure the best checkpoint is chosen by, as it is
        not dominated by the brightest tiles); ``mean_error_network`` and
        ``mean_error_biharmonic``: median over tiles of |mean in-hole error|
        / noise (what photometry inherits); ``coverage_1sigma``: fraction of
        in-hole pixels with |error| <= the predicted 1-sigma (times
        ``sigma_calibration``); ``calibration_needed``: the factor that would
        make that fraction 68.27 %; ``bright_fraction``: share of the in-hole
        pixels in bright samples; ``samples``: how many samples were given.

    Raises
    ------
    ValueError
        If no sample has a hole with a true background.

    Examples
    --------
    >>> metrics = validate(PConvUNet(channels=(8, 16)), [])  # doctest: +SKIP
    """
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    errors = {"network": [], "fill": [], "biharmonic": []}
    mean_errors = {"network": [], "biharmonic": []}
    standardised, bright, kinds, tile_ratios = [], [], [], []
    with torch.no_grad():
        for start in range(0, len(samples), 64):
            chunk = samples[start : start + 64]
            tensors = batch_tensors(chunk, device)
            outputs = model(tensors["inputs"], tensors["coverage"])
            prediction, _, log_sigma = predictions(outputs, tensors["inputs"], tensors["holes"])
            prediction = prediction[:, 0].cpu().numpy()
            sigma = np.exp(log_sigma[:, 0].cpu().numpy()) * sigma_calibration
            for index, sample in enumerate(chunk):
                holes, unit = sample.holes & sample.valid, sample.noise_in_scale
                if not holes.any():
                    continue
                network_error = (prediction[index] - sample.target)[holes] / unit
                errors["network"].append(network_error)
                errors["fill"].append((sample.fill - sample.target)[holes] / unit)
                biharmonic_error = (sample.biharmonic - sample.target)[holes] / unit
                errors["biharmonic"].append(biharmonic_error)
                mean_errors["network"].append(abs(network_error.mean()))
                mean_errors["biharmonic"].append(abs(biharmonic_error.mean()))
                standardised.append(np.abs(prediction[index] - sample.target)[holes]
                                    / sigma[index][holes])
                bright.append(np.full(holes.sum(), sample.contrast >= 100))
                kinds.append(np.full(holes.sum(), sample.kind))
                tile_ratios.append(np.sqrt(np.mean(network_error**2))
                                   / max(np.sqrt(np.mean(biharmonic_error**2)), 1e-3))
    if was_training:
        model.train()
    if not standardised:
        raise ValueError("no validation sample has a hole with a true background")
    bright, kinds = np.concatenate(bright), np.concatenate(kinds)
    metrics = {"tile_ratio_biharmonic": float(np.exp(np.mean(np.log(tile_ratios))))}
    for prefix, selection in (("", slice(None)), ("bright_", bright),
                              ("simulated_", kinds == "simulated"), ("real_", kinds == "real")):
        if not np.any(selection):
            continue
        rms = {name: float(np.sqrt(np.mean(np.concatenate(values)[selection] ** 2)))
               for name, values in errors.items()}
        for name, value in rms.items():
            metrics[f"{prefix}rms_{name}"] = value
        metrics[f"{prefix}ratio_biharmonic"] = rms["network"] / rms["biharmonic"]
        metrics[f"{prefix}ratio_fill"] = rms["network"] / rms["fill"]
    metrics["mean_error_network"] = float(np.median(mean_errors["network"]))
    metrics["mean_error_biharmonic"] = float(np.median(mean_errors["biharmonic"]))
    standardised = np.concatenate(standardised)
    metrics["coverage_1sigma"] = float(np.mean(standardised <= 1.0))
    metrics["calibration_needed"] = float(np.quantile(standardised, 0.6827))
    metrics["bright_fraction"] = float(bright.mean())
    metrics["samples"] = len(samples)
    return metrics


def _learning_rate(step, seconds, *, base, warmup, max_steps, max_minutes):
    """Linear warm-up, then a cosine decay that ends at max_steps or max_minutes."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = max(step / max_steps, seconds / (60.0 * max_minutes))
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _hardware(device, run):
    """What the run trains on, for the model card."""
    cores = f"{os.cpu_count()} CPU cores ({platform.machine()}), {run['threads']} torch threads"
    workers = int(run.get("workers", 0))
    if workers:
        cores += f", {workers} sample workers"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} GPU, {cores}"
    return cores


def _save(path, model, optimizer, state):
    temporary = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), **state},
               temporary)
    temporary.replace(path)


def _log(out, record):
    with (out / "log.jsonl").open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def train(
    config: dict,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    max_minutes: float | None = None,
    max_steps: int | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> dict:
    """
    Train the network; checkpoints go to ``out/last.ckpt`` and ``out/best.ckpt``.

    Parameters
    ----------
    config : dict
        From `~nemesis_bkg.training.config.load_config`.
    out : str or `~pathlib.Path`
        Run folder (checkpoints, ``log.jsonl``).
    resume : bool, optional
        Continue from ``out/last.ckpt``: the network, the optimizer, the step
        and the minutes trained so far, and the best validation figure.
        ``config`` governs the rest of the run.
    overwrite : bool, optional
        Start afresh in a run folder that already holds a run, deleting its
        ``last.ckpt``, ``best.ckpt`` and ``log.jsonl``.
    max_minutes, max_steps : optional
        Override the configuration's limits (minutes of training in total,
        across resumes, and steps in total); the learning-rate schedule ends
        at whichever comes first.
    device : str or `torch.device`, optional
        ``"auto"`` (a GPU when present), ``"cpu"`` or ``"cuda"``.
    progress : bool, optional
        Show the progress bar.

    Returns
    -------
    dict
        The last validation metrics, plus ``step`` and ``train_seconds``.

    Raises
    ------
    FileExistsError
        If ``out`` holds a run and neither ``resume`` nor ``overwrite`` is set.
    FileNotFoundError
        If ``resume`` is set and there is no ``out/last.ckpt``.
    ValueError
        If the configuration or the limits are wrong, or the checkpoint does
        not fit the configuration's network.

    Examples
    --------
    >>> from nemesis_bkg.training.config import load_config
    >>> train(load_config(), "runs/example", max_minutes=1)  # doctest: +SKIP
    """
    check_config(config)
    out = Path(out)
    optimizer_config = config["optimizer"]
    max_minutes = float(max_minutes if max_minutes is not None else optimizer_config["max_minutes"])
    max_steps = int(max_steps if max_steps is not None else optimizer_config["max_steps"])
    if not max_minutes > 0 or max_steps < 1:
        raise ValueError(f"max_minutes ({max_minutes}) must be above 0 and max_steps "
                         f"({max_steps}) at least 1")
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue the run or replace it")
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if resume and not (out / "last.ckpt").is_file():
        raise FileNotFoundError(f"--resume given but there is no {out / 'last.ckpt'}")
    if existing and not resume and not overwrite:
        raise FileExistsError(
            f"{out} already holds a run ({', '.join(existing)}); pass resume=True (--resume) to "
            "continue it or overwrite=True (--overwrite) to start afresh"
        )
    run = config["run"]
    device = resolve_device(device)
    torch.set_num_threads(int(run["threads"]))
    seed = int(run["seed"])
    torch.manual_seed(seed)
    model = build_model(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(optimizer_config["learning_rate"]),
                                  weight_decay=float(optimizer_config["weight_decay"]))
    effective = {key: value for key, value in config.items() if key not in ("source", "path")}
    state = {"step": 0, "train_seconds": 0.0, "best": math.inf, "config": json.dumps(effective),
             "config_path": config.get("path", ""), "device": str(device),
             "hardware": _hardware(device, run)}
    if resume:
        checkpoint = read_checkpoint(out / "last.ckpt", device=device)
        try:
            model.load_state_dict(checkpoint.pop("model"))
        except RuntimeError as error:
            raise ValueError(
                f"{out / 'last.ckpt'} holds another network than the configuration's "
                f"[model] channels = {config['model']['channels']}; resume with the run's own "
                f"configuration: {error}"
            ) from error
        optimizer.load_state_dict(checkpoint.pop("optimizer"))
        # The configuration given now governs the rest of the run (and the export).
        state.update({key: value for key, value in checkpoint.items()
                      if key not in ("config", "config_path")})
        seed += state["step"]  # fresh samples after a resume
    elif (initial := initial_weights_path(config)) is not None:
        # Fine-tuning: the run starts from trained weights (checked against their card).
        start = load_model(initial, device=device)
        if tuple(start.channels) != tuple(model.channels):
            raise ValueError(
                f"{initial} holds a network of channels {list(start.channels)}, not the "
                f"configuration's [model] channels = {list(model.channels)}; set them alike"
            )
        model.load_state_dict(start.state_dict())
        state["initial_weights"] = {"path": str(initial), "sha256": start.sha256}
    # What the export's model card must say to reproduce the run.
    state["limits"] = {"max_minutes": max_minutes, "max_steps": max_steps}
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in existing:
            (out / name).unlink()

    rng = np.random.default_rng(seed)
    print("building background views and the validation set...", flush=True)
    views, real = make_views(config, int(run["seed"]))
    if float(config["data"]["real_fraction"]) > 0 and not real:
        warnings.warn(
            "data.real_fraction is above 0 but no real map was found (set NEMESIS_BKG_REAL_MAPS "
            "to a folder of FITS maps): every sample is cut from the simulated maps",
            UserWarning, stacklevel=2,
        )
    state["real_views"] = len(real)
    validation = validation_samples(config)
    weights = {name: float(config["loss"][name]) for name in LOSS_NAMES}
    batch_size = int(optimizer_config["batch_size"])
    refresh = int(config["data"]["refresh_per_step"])
    schedule = {"base": float(optimizer_config["learning_rate"]),
                "warmup": int(optimizer_config["warmup_steps"]),
                "max_steps": max_steps, "max_minutes": max_minutes}
    running = {}
    metrics = {}

    def checkpoint_and_validate():
        nonlocal metrics
        state["train_seconds"] = time.monotonic() - started
        metrics = validate(model, validation, device=device)
        record = {"step": state["step"], "minutes": round(state["train_seconds"] / 60, 2),
                  **{f"loss_{name}": round(value, 5) for name, value in running.items()},
                  **{name: round(value, 4) for name, value in metrics.items()}}
        _log(out, record)
        if metrics["tile_ratio_biharmonic"] < state["best"]:
            state["best"] = metrics["tile_ratio_biharmonic"]
            _save(out / "best.ckpt", model, optimizer, dict(state, metrics=metrics))
        _save(out / "last.ckpt", model, optimizer, dict(state, metrics=metrics))

    # The pool stops its sample workers however the loop ends, Ctrl-C included.
    with SamplePool(views, real, int(config["data"]["pool_size"]), rng,
                    real_fraction=float(config["data"]["real_fraction"]),
                    sample_options=sample_options(config), progress=progress,
                    workers=int(run.get("workers", 0))) as pool:
        last_checkpoint = last_validation = time.monotonic()
        started = time.monotonic() - state["train_seconds"]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=max_steps, initial=state["step"], desc="training", unit="step",
                       mininterval=10.0)
        model.train()
        try:
            while (state["step"] < max_steps
                   and (time.monotonic() - started) < 60.0 * max_minutes):
                learning_rate = _learning_rate(state["step"], time.monotonic() - started,
                                               **schedule)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate
                batch = pool.batch(batch_size, device)
                outputs = model(batch["inputs"], batch["coverage"])
                losses = inpainting_losses(outputs, batch["inputs"], batch["target"],
                                           batch["holes"], batch["valid"])
                total = sum(weights[name] * losses[name] for name in LOSS_NAMES)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                pool.refresh(refresh)
                state["step"] += 1
                # One copy to the host per step: a GPU waits for each one.
                values = torch.stack([total.detach(), *(loss.detach() for loss in losses.values())])
                for name, value in zip(("total", *losses), values.float().cpu().tolist(),
                                       strict=True):
                    running[name] = 0.98 * running.get(name, value) + 0.02 * value
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({name: f"{value:.4f}" for name, value in running.items()},
                                    refresh=False)
                now = time.monotonic()
                if now - last_validation > 60.0 * float(run["validate_minutes"]):
                    checkpoint_and_validate()
                    last_validation = last_checkpoint = time.monotonic()
                elif now - last_checkpoint > 60.0 * float(run["checkpoint_minutes"]):
                    state["train_seconds"] = now - started
                    _save(out / "last.ckpt", model, optimizer, dict(state, metrics=metrics))
                    last_checkpoint = now
        finally:
            if bar is not None:
                bar.close()
    checkpoint_and_validate()
    return dict(metrics, step=state["step"], train_seconds=state["train_seconds"])
