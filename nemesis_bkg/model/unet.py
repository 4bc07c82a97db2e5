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

from .pconv import PartialConvBlock, all_valid

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

    def forward(
        self,
        inputs: torch.Tensor,
        coverage: torch.Tensor,
        *,
        region: tuple[slice, slice] | None = None,
    ) -> torch.Tensor:
        """
        Predict the correction and the log uncertainty factor.

        Parameters
        ----------
        inputs : `torch.Tensor`
            Shape (N, in_channels, H, W); H and W multiples of `downsampling_factor`.
        coverage : `torch.Tensor`
            Shape (N, 1, H, W): 1 where the map has data (or one mask per
            input channel, (N, in_channels, H, W)).
        region : tuple of two slices, optional
            The rows and columns of the output wanted (steps of 1, within
            the tile). The encoder still runs on the whole tile (its deepest
            level sees all of it), but each decoder level runs only on the
            pixels the region depends on, about half the work for a hole in
            a 64-pixel tile. The result equals the whole output cut to the
            region, up to float rounding. Eval mode only: in training mode
            batch norm would take its statistics over those pixels alone.

        Returns
        -------
        `torch.Tensor`
            Shape (N, 2, H, W), or that of the region: channel 0 the
            correction, channel 1 the log factor; meaningful where the
            coverage is 1.

        Raises
        ------
        ValueError
            If the shapes do not fit, or ``region`` is empty, outside the
            tile, strided, or given in training mode.

        Examples
        --------
        >>> import torch
        >>> net = PConvUNet(channels=(8, 16, 32)).eval()
        >>> _ = torch.nn.init.normal_(net.head.weight)  # a fresh head outputs zeros
        >>> inputs, coverage = torch.randn(1, 4, 32, 32), torch.ones(1, 1, 32, 32)
        >>> with torch.no_grad():
        ...     whole = net(inputs, coverage)
        ...     part = net(inputs, coverage, region=(slice(10, 20), slice(12, 18)))
        >>> part.shape
        torch.Size([1, 2, 10, 6])
        >>> bool(torch.allclose(part, whole[..., 10:20, 12:18], atol=1e-5))
        True
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
        spans, held = self._decoder_spans((rows, cols), region)
        features, mask = self.stem(inputs, coverage)
        skips = [(features, mask)]
        for down, encode in zip(self.down, self.encode, strict=True):
            features, mask = down(features, mask)
            features, mask = encode(features, mask)
            skips.append((features, mask))
        skips.pop()
        # ``held``: the pixels of the current level computed so far (at first, of the deepest).
        features, mask = features[..., held[0], held[1]], mask[..., held[0], held[1]]
        for decode, (needed, window) in zip(self.decode, reversed(spans), strict=True):
            skip_features, skip_mask = skips.pop()
            # Nearest upsampling of the held pixels, cut to the window the block reads.
            upsampled = [slice(edge.start - 2 * held_edge.start, edge.stop - 2 * held_edge.start)
                         for edge, held_edge in zip(window, held, strict=True)]
            features = F.interpolate(features, scale_factor=2, mode="nearest")
            mask = F.interpolate(mask, scale_factor=2, mode="nearest")
            features = features[..., upsampled[0], upsampled[1]]
            mask = mask[..., upsampled[0], upsampled[1]]
            skip_features = skip_features[..., window[0], window[1]]
            skip_mask = skip_mask[..., window[0], window[1]]
            # The skip connection carries its own validity, channel by channel (one channel
            # does for all when both are all valid: the renormalisation is a ratio of counts).
            if all_valid(mask) and all_valid(skip_mask):
                combined_mask = mask
            else:
                combined_mask = torch.cat(
                    [
                        mask.expand(-1, features.shape[1], -1, -1),
                        skip_mask.expand(-1, skip_features.shape[1], -1, -1),
                    ],
                    dim=1,
                )
            features, mask = decode(torch.cat([features, skip_features], dim=1), combined_mask)
            # The window's rim saw the block's zero padding instead of the level's pixels:
            # only the needed pixels, whose 3x3 neighbourhoods lie in the window, are kept.
            inner = [slice(edge.start - window_edge.start, edge.stop - window_edge.start)
                     for edge, window_edge in zip(needed, window, strict=True)]
            features, mask = features[..., inner[0], inner[1]], mask[..., inner[0], inner[1]]
            held = needed
        return self.head(features)

    def _decoder_spans(self, shape, region):
        """
        What each decoder level computes for the output ``region``.

        Returns, finest level first, for each decoder level the pixels
        needed and the window its 3x3 block reads (those pixels grown by
        one, within the level); and the pixels needed of the deepest level.
        """
        if region is None:
            region = (slice(None), slice(None))
        elif self.training:
            raise ValueError(
                "region= is for inference: call eval() first (in training mode batch norm "
                "would take its statistics over the region alone)"
            )
        if len(region) != 2 or not all(isinstance(edge, slice) for edge in region):
            raise ValueError(f"region must be two slices (rows, columns), got {region!r}")
        needed = []
        for edge, size in zip(region, shape, strict=True):
            start, stop, step = edge.indices(size)
            inside = ((edge.start is None or 0 <= edge.start)
                      and (edge.stop is None or edge.stop <= size))
            if step != 1 or stop <= start or not inside:
                raise ValueError(
                    f"region {region!r} must be non-empty, in steps of 1 and within the tile "
                    f"of shape {tuple(shape)}"
                )
            needed.append((start, stop))
        spans = []
        for level in range(len(self.channels) - 1):
            sizes = [side >> level for side in shape]
            window = [(max(start - 1, 0), min(stop + 1, size))
                      for (start, stop), size in zip(needed, sizes, strict=True)]
            spans.append((tuple(slice(*edge) for edge in needed),
                          tuple(slice(*edge) for edge in window)))
            # The coarser level's pixels under the window (nearest upsampling repeats each 2x2).
            needed = [(start // 2, (stop - 1) // 2 + 1) for start, stop in window]
        return spans, tuple(slice(*edge) for edge in needed)
