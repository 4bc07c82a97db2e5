"""
Export a training checkpoint to the bundled weights: safetensors with the
engine's metadata, and the model card with validation figures and sha256.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import torch

from ..model import DEFAULT_WEIGHTS, save_model
from .config import check_config, checkpoint_config, read_checkpoint
from .loop import build_model, validate, validation_samples

__all__ = ["export_checkpoint"]

_CARD = """# Model card: nemesis_bkg partial-convolution U-Net

File: `{weights_name}` (safetensors, {size_kb:.0f} kB, {parameters:,} parameters)

sha256: {sha256}

## What it does

Inpaints the holes cut around compact sources in far-infrared maps. Each hole is first filled
by local universal kriging (a linear drift and a power generalised covariance with a
white-noise nugget fitted around the hole, `nemesis_bkg.engine.fill`); the network takes a
{tile_size}x{tile_size} (or larger) tile centred on the hole, with four channels (the map with
its holes filled, the hole mask, the log of the kriging uncertainty, the biharmonic fill minus
the kriging fill) and predicts a correction to the fill inside the hole and the log of a factor
on the kriging uncertainty.
Pixels with no data are the invalid pixels of the partial convolutions. The uncertainty is
multiplied by a calibration factor ({sigma_calibration:.3f}) fitted on half of the validation
set.

## Normalisation

Per tile, offset = median and scale = 1.4826 x MAD of the tile's pixels that have data and are
not in a hole; the output is therefore equivariant, f(a x + b) = a f(x) + b for a > 0. A source
peak never sets the scale (it lies in a hole).

## Training data

- Backgrounds: {simulated_maps} maps from `nemesis_bkg.simulate.simulate_map`
  ({map_size}x{map_size}, all six Herschel bands, regimes cirrus / filamentary / confusion,
  contrast (background std / noise) {contrast_range[0]:g} to {contrast_range[1]:g}, their
  simulated noise with scan stripes), and
  {real_text}
- Beam sampling: FWHM {fwhm_range[0]:g} to {fwhm_range[1]:g} pixels per beam (all Herschel
  bands: PACS 70 um to SPIRE 500 um at their usual pixels); bands: PACS 70/100/160, SPIRE
  250/350/500 and any map sampled within that range.
- Sources: Gaussian beams of peak SNR {snr_range[0]:g} to {snr_range[1]:g} (log-uniform), one
  near the tile centre and up to {max_extra} more; holes from the masking rule
  (`nemesis_bkg.masking.holes.hole_radius`: sigma sqrt(2 ln SNR) + FWHM/2), plus random extra
  holes and straight no-coverage edges.
- Target: the true background (noiseless for simulated maps, the original map for real ones).

## Training

Losses (normalised units): L1 in the holes ({w[hole]}), L1 outside ({w[valid]}), per-tile
mean error ("flux", {w[flux]}), 1 - SSIM near the holes ({w[ssim]}), L1 of the gradients
touching the holes ({w[gradient]}), Gaussian NLL of the uncertainty ({w[nll]}). AdamW, warm-up
and cosine decay, batch {batch_size}, random rotations and flips.

{start_text} Trained {steps} steps, {minutes:.1f} minutes on {hardware} ({device}); exported
with torch {torch_version}.
Exported {date}.

## Validation

{validation}

## Notes

{notes}

## Reproduce

```
{start_command}nemesis-bkg train --config {config_path} --out runs/default --device {device}{limits}
nemesis-bkg train --export runs/default/{checkpoint_name} {destination}
```
"""


def _start_texts(state):
    """
    The card's words on what the run started from, and the Reproduce section's first line.

    A fine-tuned run's starting weights are an earlier run's: their own model
    card says how to make them, and the Reproduce section names their checksum.
    """
    initial = state.get("initial_weights")
    if initial is None:
        return "Started from a freshly initialised network.", ""
    return (f"Fine-tuned from `{Path(initial['path']).name}` (sha256 {initial['sha256']}, "
            "`model.initial_weights`).",
            f"# start from weights of sha256 {initial['sha256']} where the configuration's "
            "model.initial_weights points\n")


def _real_text(state, data):
    """The card's words on the real maps the run drew samples from."""
    if float(data["real_fraction"]) == 0:
        return "no real maps (`real_fraction` = 0)."
    # Checkpoints of earlier versions do not record it: trust the configuration then.
    if state.get("real_views", 1) == 0:
        return ("no real maps: none was found when the run was made, so every sample came "
                "from the simulated maps.")
    low, high = data.get("real_zoom_range", (0.7, 2.5))
    zoom = "at their own sampling" if low == high == 1 else f"zoomed by {low:g} to {high:g}"
    return (f"{float(data['real_fraction']):.0%} of the samples cut from the training halves of "
            f"the real maps of\n  `../shared/data/real_maps` ({zoom}, rotated, flipped, "
            "rescaled; their own noise\n  stays in the truth); the benchmark scores on the other "
            "halves.")


def _limit_options(state, optimizer):
    """Command-line options for the limits the run was given in place of the configuration's."""
    limits = state.get("limits", {})
    options = ""
    if "max_minutes" in limits and limits["max_minutes"] != float(optimizer["max_minutes"]):
        options += f" --max-minutes {limits['max_minutes']:g}"
    if "max_steps" in limits and limits["max_steps"] != int(optimizer["max_steps"]):
        options += f" --max-steps {limits['max_steps']}"
    return options


def _write_text_atomically(path, text):
    """Write a text file beside its name and rename it over, so it is never half-written."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.chmod(partial, 0o644)
    partial.replace(path)


def _validation_text(metrics, samples_total):
    """The model card's validation section: errors in units of the map noise."""
    rows = [
        ("all tiles", ""),
        (f"bright tiles (contrast >= 100; {metrics['bright_fraction']:.0%} of hole pixels)",
         "bright_"),
        ("simulated backgrounds", "simulated_"),
        ("real backgrounds", "real_"),
    ]
    lines = [
        "Fixed seeds; the maps are simulated with other seeds than the training maps, the",
        "real-map crops come from the same (training) halves of the real maps. Half of the",
        f"{samples_total} validation tiles set the uncertainty calibration, the other half",
        f"({metrics['samples']} tiles) gives these figures: in-hole RMS error / map noise.",
        "",
        "| tiles | network | kriging fill (its input) | biharmonic | network / biharmonic |",
        "|---|---|---|---|---|",
    ]
    for label, prefix in rows:
        if f"{prefix}rms_network" not in metrics:
            continue
        lines.append(
            f"| {label} | {metrics[prefix + 'rms_network']:.3f} "
            f"| {metrics[prefix + 'rms_fill']:.3f} | {metrics[prefix + 'rms_biharmonic']:.3f} "
            f"| {metrics[prefix + 'ratio_biharmonic']:.3f} |"
        )
    lines += [
        "",
        "Geometric mean over tiles of (network in-hole RMS error / biharmonic's): "
        f"{metrics['tile_ratio_biharmonic']:.3f}. The pooled figures are dominated by the",
        "brightest tiles; real-map truths keep the maps' own noise, which no method predicts.",
        "",
        "Median over tiles of |mean in-hole error| / noise (what photometry inherits): network "
        f"{metrics['mean_error_network']:.3f}, biharmonic {metrics['mean_error_biharmonic']:.3f}.",
        "Fraction of in-hole pixels with |error| <= 1 sigma (calibrated): "
        f"{metrics['coverage_1sigma']:.3f}.",
    ]
    return "\n".join(lines)


def export_checkpoint(
    checkpoint: str | Path,
    *,
    weights: str | Path = DEFAULT_WEIGHTS,
    config: dict | None = None,
    notes: str = "",
    validation: list | None = None,
    overwrite: bool = False,
) -> dict:
    """
    Write the safetensors weights and the model card from a checkpoint.

    Parameters
    ----------
    checkpoint : str or `~pathlib.Path`
        A ``.ckpt`` written by `~nemesis_bkg.training.train`.
    weights : str or `~pathlib.Path`, optional
        Output weights file (the bundled weights by default); the model card
        ``MODEL_CARD.md`` is written next to it.
    config : dict, optional
        The training configuration (from
        `~nemesis_bkg.training.config.load_config`); by default the one
        stored in the checkpoint.
    notes : str, optional
        Free text for the card's "Notes" section (e.g. how the run went).
    validation : list of `~nemesis_bkg.training.data.Sample`, optional
        Validation samples; the configuration's fixed-seed set by default.
    overwrite : bool, optional
        Replace an existing weights file or model card (the bundled weights
        are only replaced with it).

    Returns
    -------
    dict
        The validation metrics written in the card, plus ``sha256`` and
        ``sigma_calibration``.

    Raises
    ------
    FileExistsError
        If the weights file or its model card exists and ``overwrite`` is
        False.
    FileNotFoundError
        If there is no file at ``checkpoint``.
    ValueError
        If ``checkpoint`` is not a training checkpoint, or does not fit
        ``config``'s network.

    Examples
    --------
    >>> export_checkpoint("runs/default/best.ckpt")  # doctest: +SKIP
    """
    checkpoint, weights = Path(checkpoint), Path(weights)
    state = read_checkpoint(checkpoint)
    card_path = weights.parent / "MODEL_CARD.md"
    if not overwrite:
        # Checked before the validation, which takes a while.
        for path in (weights, card_path):
            if path.exists():
                raise FileExistsError(
                    f"{path} exists; pass overwrite=True (--overwrite) to replace it, or write "
                    "elsewhere with weights= (--weights)"
                )
    config_path = state.get("config_path") or "CONFIG.toml"
    if config is None:
        config = checkpoint_config(checkpoint)
    else:
        check_config(config)
        config_path = config.get("path", config_path)
    model = build_model(config)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise ValueError(
            f"{checkpoint} holds another network than the configuration's [model] channels = "
            f"{config['model']['channels']}: {error}"
        ) from error
    model.eval()
    samples = validation if validation is not None else validation_samples(config)
    calibration = validate(model, samples[::2])["calibration_needed"]
    metrics = validate(model, samples[1::2], sigma_calibration=calibration)
    data = config["data"]
    metadata = {
        "tile_size": str(data["tile_size"]),
        "fwhm_pixels_range": f"{data['fwhm_range'][0]},{data['fwhm_range'][1]}",
        "sigma_calibration": repr(float(calibration)),
        "fill": "kriging",
        "normalisation": "median and 1.4826 MAD of trusted tile pixels",
        "training_steps": str(state["step"]),
    }
    sha256 = save_model(model, weights, metadata=metadata)
    start_text, start_command = _start_texts(state)
    if "nemesis_bkg/training/configs/" in config_path:
        config_path = "nemesis_bkg/training/configs/" + config_path.rsplit("/", 1)[1]
    card = _CARD.format(
        weights_name=weights.name,
        size_kb=weights.stat().st_size / 1024,
        parameters=sum(parameter.numel() for parameter in model.parameters()),
        sha256=sha256,
        tile_size=data["tile_size"],
        sigma_calibration=calibration,
        simulated_maps=data["simulated_maps"],
        map_size=data["simulated_map_size"],
        contrast_range=data["contrast_range"],
        real_text=_real_text(state, data),
        start_text=start_text,
        start_command=start_command,
        fwhm_range=data["fwhm_range"],
        snr_range=data["snr_range"],
        max_extra=data["max_extra_sources"],
        w=config["loss"],
        batch_size=config["optimizer"]["batch_size"],
        steps=state["step"],
        minutes=state["train_seconds"] / 60,
        # Checkpoints record where they were trained; this machine may be another.
        hardware=state.get("hardware", "hardware not recorded in the checkpoint"),
        device=state.get("device", "cpu"),
        torch_version=torch.__version__,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        validation=_validation_text(metrics, len(samples)),
        config_path=config_path,
        limits=_limit_options(state, config["optimizer"]),
        checkpoint_name=checkpoint.name,
        destination=("--overwrite" if weights.resolve() == DEFAULT_WEIGHTS.resolve()
                     else f"--weights {weights.name}"),
        notes=notes or "None.",
    )
    _write_text_atomically(card_path, card)
    return dict(metrics, sha256=sha256, sigma_calibration=calibration)
