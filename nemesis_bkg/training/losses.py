"""
Training losses, all in the tile's normalised units.

The network's prediction is the classical fill plus its correction; the
composite is the prediction inside the holes and the input outside, which
is what the engine returns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LOSS_NAMES", "inpainting_losses", "predictions"]

#: The loss terms, in the order they are reported.
LOSS_NAMES = ("hole", "valid", "flux", "ssim", "gradient", "nll")


def predictions(
    outputs: torch.Tensor, inputs: torch.Tensor, holes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Prediction, composite and log-sigma from the network's outputs.

    Parameters
    ----------
    outputs : `torch.Tensor`
        (N, 2, H, W): correction and log uncertainty factor.
    inputs : `torch.Tensor`
        (N, 4, H, W): the network's inputs (see `nemesis_bkg.engine.features`).
    holes : `torch.Tensor`
        (N, 1, H, W), 1 in the holes.

    Returns
    -------
    prediction, composite, log_sigma : `torch.Tensor`
        Each (N, 1, H, W).

    Examples
    --------
    >>> import torch
    >>> prediction, composite, log_sigma = predictions(
    ...     torch.zeros(1, 2, 4, 4), torch.ones(1, 4, 4, 4), torch.ones(1, 1, 4, 4))
    >>> float(prediction.mean()), float(log_sigma.mean())
    (1.0, 1.0)
    """
    prediction = inputs[:, 0:1] + outputs[:, 0:1]
    composite = torch.where(holes > 0, prediction, inputs[:, 0:1])
    # The fill's log uncertainty (input channel 2) plus the network's log factor, clipped
    # as in `nemesis_bkg.engine.features.network_outputs`.
    log_sigma = inputs[:, 2:3] + outputs[:, 1:2].clamp(-10.0, 10.0)
    return prediction, composite, log_sigma


def _masked_mean(values, weights):
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def _ssim_map(first, second, window=5):
    def local_mean(values):
        return F.avg_pool2d(F.pad(values, [window // 2] * 4, mode="replicate"), window, stride=1)

    mean_first, mean_second = local_mean(first), local_mean(second)
    variance_first = local_mean(first * first) - mean_first**2
    variance_second = local_mean(second * second) - mean_second**2
    covariance = local_mean(first * second) - mean_first * mean_second
    # Constants for data of unit scale (the normalised tile).
    c1, c2 = 1e-4, 9e-4
    return ((2 * mean_first * mean_second + c1) * (2 * covariance + c2)) / (
        (mean_first**2 + mean_second**2 + c1) * (variance_first + variance_second + c2)
    )


def inpainting_losses(
    outputs: torch.Tensor,
    inputs: torch.Tensor,
    target: torch.Tensor,
    holes: torch.Tensor,
    valid: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """
    Every loss term of one batch.

    Terms: ``hole`` L1 inside the holes; ``valid`` L1 of the prediction
    outside the holes (keeps the correction field continuous across the hole
    edge); ``flux`` the absolute mean error inside the holes of a tile,
    averaged over the tiles that have holes (what aperture photometry of the
    source would inherit); ``ssim`` 1 - SSIM (window 5) near the holes;
    ``gradient`` L1 of the finite differences of the composite's error
    between neighbouring pixels with a true background, one of them in a
    hole (the small-scale structure a power spectrum checks); ``nll`` the
    Gaussian negative log-likelihood of the error under the predicted
    uncertainty (the prediction is detached, so this term trains the
    uncertainty only). Pixels without a true background (``valid`` 0) count
    in no term but through the SSIM windows of their neighbours.

    Parameters
    ----------
    outputs, inputs : `torch.Tensor`
        Network outputs (N, 2, H, W) and inputs (N, 4, H, W).
    target : `torch.Tensor`
        (N, 1, H, W) normalised true background.
    holes, valid : `torch.Tensor`
        (N, 1, H, W) masks: holes with data, and pixels with a true background.

    Returns
    -------
    dict of `torch.Tensor`
        One scalar per name of `LOSS_NAMES`.

    Examples
    --------
    >>> import torch
    >>> inputs = torch.zeros(2, 4, 16, 16)
    >>> holes = torch.zeros(2, 1, 16, 16)
    >>> holes[..., 6:10, 6:10] = 1
    >>> losses = inpainting_losses(torch.zeros(2, 2, 16, 16), inputs, torch.zeros(2, 1, 16, 16),
    ...                            holes, torch.ones(2, 1, 16, 16))
    >>> float(losses["hole"])
    0.0
    """
    holes = holes * valid
    prediction, composite, log_sigma = predictions(outputs, inputs, holes)
    error = prediction - target
    per_tile_holes = holes.sum(dim=(1, 2, 3))
    tiles_with_holes = (per_tile_holes > 0).to(error.dtype)
    per_tile_mean = (error * holes).sum(dim=(1, 2, 3)) / per_tile_holes.clamp(min=1.0)
    near_holes = F.max_pool2d(holes, 5, stride=1, padding=2) * valid
    # Pairs of neighbours touching a hole, both with a true background.
    touching_rows = (torch.maximum(holes[..., 1:, :], holes[..., :-1, :])
                     * valid[..., 1:, :] * valid[..., :-1, :])
    touching_cols = (torch.maximum(holes[..., :, 1:], holes[..., :, :-1])
                     * valid[..., :, 1:] * valid[..., :, :-1])
    composite_error = composite - target
    standardised = error.detach() * torch.exp(-log_sigma)
    return {
        "hole": _masked_mean(error.abs(), holes),
        "valid": _masked_mean(error.abs(), valid * (1 - holes)),
        "flux": _masked_mean(per_tile_mean.abs(), tiles_with_holes),
        "ssim": 1 - _masked_mean(_ssim_map(composite, target), near_holes),
        "gradient": 0.5 * (
            _masked_mean((composite_error[..., 1:, :] - composite_error[..., :-1, :]).abs(),
                         touching_rows)
            + _masked_mean((composite_error[..., :, 1:] - composite_error[..., :, :-1]).abs(),
                           touching_cols)
        ),
        "nll": _masked_mean(0.5 * standardised**2 + log_sigma, holes),
    }
