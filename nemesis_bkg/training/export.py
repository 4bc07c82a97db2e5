"""
Export a training checkpoint to the bundled weights: safetensors with the
engine's metadata, and the model card with validation figures and sha256.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import torch

from ..model import DEFAULT_WEIGHTS, save_model
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
  {real_share:.0%} of the samples cut from the training halves of the real maps of
  `../shared/data/real_maps` (randomly zoomed, rotated, flipped, rescaled; their own noise
  stays in the truth); the benchmark scores on the other halves.
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

Trained {steps} steps, {minutes:.1f} minutes on {hardware} ({device}); exported with torch
{torch_version}.
Exported {date}.

## Validation

{validation}

## Notes

{notes}

## Reproduce

```
nemesis-bkg train --config {config_path} --out runs/default --device {device}
nemesis-bkg train --export runs/default/best.ckpt
```
"""


def _checkpoint_config(text):
    """The configuration stored in a checkpoint: JSON, or the TOML text of a config file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return tomllib.loads(text)


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

    Returns
    -------
    dict
        The validation metrics written in the card, plus ``sha256`` and
        ``sigma_calibration``.

    Examples
    --------
    >>> export_checkpoint("runs/default/best.ckpt")  # doctest: +SKIP
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint at {checkpoint}")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config_path = state.get("config_path") or "CONFIG.toml"
    if config is None:
        config = _checkpoint_config(state["config"])
    else:
        config_path = config.get("path", config_path)
    model = build_model(config)
    model.load_state_dict(state["model"])
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
    weights = Path(weights)
    sha256 = save_model(model, weights, metadata=metadata)
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
        real_share=float(data["real_fraction"]),
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
        notes=notes or "None.",
    )
    (weights.parent / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    return dict(metrics, sha256=sha256, sigma_calibration=calibration)
