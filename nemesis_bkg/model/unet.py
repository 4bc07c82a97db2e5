"""
The partial-convolution U-Net that corrects a classical fill of the holes.

Inputs (four channels, normalised per tile, see `nemesis_bkg.engine.features`):

0. the map with its holes replaced by the classical (kriging) fill;
1. the hole mask (1 inside holes);
2. the classical fill's 1-sigma uncertainty, log-compressed (0 outside holes);
3. the biharmonic fill minus the kriging fill in the holes (0 outside).

The partial-convolution mask is the coverage: only pixels with no data
(NaN, no coverage) are invalid. The holes are *not* invalid pixels of the
partial convolution because the classical fill inside them is informative
(a smooth estimate from all the pixels around the hole); the network knows
where they are from channel 1 and learns a correction to the fill there.

Outputs (two channels): the correction added to the fill inside the holes,
and the log of a factor multiplying the fill's uncertainty, giving the
per-pixel 1-sigma uncertainty of the corrected background.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pconv import PartialConvBlock

__all__ = ["PConvUNet"]


class PConvUNet(nn.Module):
    """
    U-Net of partial-convolution blocks with a correction and an uncertainty output.

    Parameters
    ----------
    in_channels : int, optional
        Input channels (4: filled map, hole mask, fill uncertainty, biharmonic
        minus kriging fill).
    channels : tuple of int, optional
        Feature channels per resolution level; each level after the first
        halves the tile, so tile sides must be multiples of
        ``2 ** (len(channels) - 1)`` (`downsampling_factor`).

    Examples
    --------
    >>> import torch
    >>> net = PConvUNet(channels=(8, 16, 32))
    >>> net.downsampling_factor
    4
    >>> inputs = torch.randn(2, 4, 24, 40)
    >>> outputs = net(inputs, torch.ones(2, 1, 24, 40))
    >>> outputs.shape
    torch.Size([2, 2, 24, 40])
    """

    def __init__(
        self, *, in_channels: int = 4, channels: tuple[int, ...] = (16, 32, 64, 96, 128)
    ) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError("channels needs at least two levels")
        self.in_channels = in_channels
        self.channels = tuple(int(c) for c in channels)
        #: Facts read from the weights file (tile size, sampling range, calibration).
        self.metadata: dict[str, str] = {}
        self.stem = PartialConvBlock(in_channels, channels[0], kernel_size=3)
        self.down = nn.ModuleList()
        self.encode = nn.ModuleList()
        for coarse_in, coarse_out in zip(channels[:-1], channels[1:], strict=True):
            self.down.append(PartialConvBlock(coarse_in, coarse_out, kernel_size=4, stride=2))
            self.encode.append(PartialConvBlock(coarse_out, coarse_out, kernel_size=3))
        self.decode = nn.ModuleList()
        for level in range(len(channels) - 2, -1, -1):
            self.decode.append(
                PartialConvBlock(channels[level + 1] + channels[level], channels[level])
            )
        self.head = nn.Conv2d(channels[0], 2, kernel_size=1)
        # Start from "no correction, fill uncertainty as is".
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def downsampling_factor(self) -> int:
        """Tile sides must be multiples of this."""
        return 2 ** (len(self.channels) - 1)

    def forward(self, inputs: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
        """
        Predict the correction and the log uncertainty factor.

        Parameters
        ----------
        inputs : `torch.Tensor`
            Shape (N, in_channels, H, W); H and W multiples of `downsampling_factor`.
        coverage : `torch.Tensor`
            Shape (N, 1, H, W): 1 where the map has data (or one mask per
            input channel, (N, in_channels, H, W)).

        Returns
        -------
        `torch.Tensor`
            Shape (N, 2, H, W): channel 0 the correction, channel 1 the log
            factor; meaningful where the coverage is 1.
        """
        factor = self.downsampling_factor
        if inputs.shape[-2] % factor or inputs.shape[-1] % factor:
            raise ValueError(
                f"tile shape {tuple(inputs.shape[-2:])} is not a multiple of {factor}; "
                "pad the tile"
            )
        if inputs.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {inputs.shape[1]}")
        batch, _, rows, cols = inputs.shape
        if coverage.ndim != 4 or (coverage.shape[0], *coverage.shape[2:]) != (batch, rows, cols):
            raise ValueError(
                f"coverage of shape {tuple(coverage.shape)} does not match the inputs "
                f"{tuple(inputs.shape)}; give (N, 1, H, W)"
            )
        features, mask = self.stem(inputs, coverage)
        skips = [(features, mask)]
        for down, encode in zip(self.down, self.encode, strict=True):
            features, mask = down(features, mask)
            features, mask = encode(features, mask)
            skips.append((features, mask))
        skips.pop()
        for decode in self.decode:
            skip_features, skip_mask = skips.pop()
            features = F.interpolate(features, scale_factor=2, mode="nearest")
            mask = F.interpolate(mask, scale_factor=2, mode="nearest")
            # The skip connection carries its own validity, channel by channel.
            combined_mask = torch.cat(
                [
                    mask.expand(-1, features.shape[1], -1, -1),
                    skip_mask.expand(-1, skip_features.shape[1], -1, -1),
                ],
                dim=1,
            )
            features, mask = decode(torch.cat([features, skip_features], dim=1), combined_mask)
        return self.head(features)
