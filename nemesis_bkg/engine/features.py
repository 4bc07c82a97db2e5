"""
The network's input channels for one tile, and the inverse step that turns
its outputs back into a background and an uncertainty. Training builds its
samples with `network_inputs`, so the network sees the same thing in
training and inference; its loss (`nemesis_bkg.training.losses`) mirrors
`network_outputs` in torch.
"""

from __future__ import annotations

import numpy as np

from .normalize import TileScaling

__all__ = ["ERROR_FLOOR", "network_inputs", "network_outputs"]

#: Floor (in normalised units) added to the fill's uncertainty before the
#: network's multiplicative factor, so a zero kriging variance stays usable.
ERROR_FLOOR = 0.01


def network_inputs(
    filled: np.ndarray,
    hole_mask: np.ndarray,
    fill_error: np.ndarray,
    biharmonic: np.ndarray,
    valid: np.ndarray,
    scaling: TileScaling,
) -> tuple[np.ndarray, np.ndarray]:
    """
    Stack the normalised input channels of one tile (or of a stack of tiles).

    The arrays may carry leading axes, e.g. (N, H, W) for N tiles, with a
    `~nemesis_bkg.engine.normalize.TileScaling` of one scaling per tile,
    shape (N, 1, 1); the channels then come after them, (N, 4, H, W).

    Parameters
    ----------
    filled : `~numpy.ndarray`
        Tile of the map with its holes replaced by the classical fill.
    hole_mask : `~numpy.ndarray`
        Bool, True in the holes.
    fill_error : `~numpy.ndarray`
        The fill's 1-sigma uncertainty (0 outside holes).
    biharmonic : `~numpy.ndarray`
        The biharmonic fill of the same holes (a second opinion the network
        may use where it is better than kriging).
    valid : `~numpy.ndarray`
        Bool, True where ``filled`` is a usable number (data or filled hole).
    scaling : `~nemesis_bkg.engine.normalize.TileScaling`
        The tile's normalisation.

    Returns
    -------
    inputs : `~numpy.ndarray`
        float32 array of shape (4, H, W): normalised filled map (0 where not
        valid), hole mask, log of the normalised fill uncertainty in holes,
        normalised biharmonic minus kriging fill in holes.
    coverage : `~numpy.ndarray`
        float32 array of shape (1, H, W): the partial-convolution mask.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.engine.normalize import TileScaling
    >>> tile = np.ones((16, 16))
    >>> holes = np.zeros((16, 16), bool)
    >>> inputs, coverage = network_inputs(tile, holes, np.zeros((16, 16)), tile,
    ...                                   np.ones((16, 16), bool), TileScaling(1.0, 2.0))
    >>> inputs.shape, float(inputs[0].max())
    ((4, 16, 16), 0.0)
    """
    valid = np.asarray(valid, dtype=bool)
    hole_mask = np.asarray(hole_mask, dtype=bool) & valid
    inputs = np.zeros((*filled.shape[:-2], 4, *filled.shape[-2:]), dtype=np.float32)
    inputs[..., 0, :, :] = np.where(valid, scaling.normalise(np.where(valid, filled, 0.0)), 0.0)
    inputs[..., 1, :, :] = hole_mask
    inputs[..., 2, :, :] = np.where(
        hole_mask, np.log(ERROR_FLOOR + np.where(hole_mask, fill_error, 0.0) / scaling.scale), 0.0
    )
    difference = np.where(hole_mask, biharmonic - filled, 0.0)
    inputs[..., 3, :, :] = np.where(np.isfinite(difference), difference / scaling.scale, 0.0)
    return inputs, valid[..., None, :, :].astype(np.float32)


def network_outputs(
    outputs: np.ndarray,
    filled: np.ndarray,
    fill_error: np.ndarray,
    scaling: TileScaling,
    *,
    sigma_calibration: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """
    Turn the network's two output channels into a background and its uncertainty.

    Like `network_inputs`, it takes a stack of tiles (outputs of shape
    (N, 2, H, W), the other arrays (N, H, W)) as well as one tile.

    Parameters
    ----------
    outputs : `~numpy.ndarray`
        Shape (2, H, W): normalised correction and log uncertainty factor.
    filled, fill_error : `~numpy.ndarray`
        The classical fill and its uncertainty for the tile (data units).
    scaling : `~nemesis_bkg.engine.normalize.TileScaling`
        The tile's normalisation.
    sigma_calibration : float, optional
        Factor applied to the uncertainty (from the model's metadata).

    Returns
    -------
    background, error : `~numpy.ndarray`
        Corrected fill and its 1-sigma uncertainty, data units (meaningful
        in the holes only).

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.engine.normalize import TileScaling
    >>> outputs = np.zeros((2, 4, 4))
    >>> background, error = network_outputs(outputs, np.full((4, 4), 5.0), np.zeros((4, 4)),
    ...                                     TileScaling(0.0, 2.0))
    >>> float(background[0, 0]), float(error[0, 0])
    (5.0, 0.02)
    """
    correction = outputs[..., 0, :, :].astype(float)
    log_factor = outputs[..., 1, :, :].astype(float)
    background = filled + scaling.scale * correction
    error = (
        sigma_calibration
        * (fill_error + ERROR_FLOOR * scaling.scale)
        * np.exp(np.clip(log_factor, -10.0, 10.0))
    )
    return background, error
