"""
Partial convolution (Liu et al. 2018, "Image Inpainting for Irregular Holes
Using Partial Convolutions") and the partial conv -> batch norm -> ReLU block.

A partial convolution sees only the valid pixels of its input: the
convolution of the masked input is rescaled by (window size / number of
valid pixels in the window), the output is zero where a window holds no
valid pixel, and the mask passed on to the next layer marks as valid every
output pixel whose window held at least one valid input pixel.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PartialConv2d", "PartialConvBlock"]


def all_valid(mask: torch.Tensor) -> bool:
    """
    Whether a validity mask on the CPU is all ones (always False on a GPU).

    Multiplying by such a mask changes nothing and can be skipped; on a GPU
    the check itself would wait for the device, and the product is cheap.
    """
    return mask.device.type == "cpu" and bool(mask.all())


class PartialConv2d(nn.Conv2d):
    """
    2-D partial convolution with Liu et al. (2018) renormalisation.

    Takes the same arguments as `torch.nn.Conv2d`, except that the padding
    must be zeros (padded pixels count as invalid). The forward pass takes
    the input and its validity mask and returns the output and the updated
    mask.

    The mask has either one channel (the same validity for every input
    channel) or as many channels as the input (e.g. after concatenating a
    skip connection whose validity differs from the upsampled features);
    a grouped convolution takes a one-channel mask only.

    Examples
    --------
    >>> import torch
    >>> conv = PartialConv2d(1, 4, 3, padding=1, bias=False)
    >>> image = torch.randn(1, 1, 8, 8)
    >>> mask = torch.ones(1, 1, 8, 8)
    >>> mask[..., 3:5, 3:5] = 0
    >>> output, new_mask = conv(image, mask)
    >>> output.shape, new_mask.shape
    (torch.Size([1, 4, 8, 8]), torch.Size([1, 1, 8, 8]))
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # forward() pads with zeros and counts the padded pixels as invalid; another
        # padding_mode would be silently ignored there.
        if self.padding_mode != "zeros":
            raise ValueError(
                f"PartialConv2d pads with zeros (invalid pixels), not {self.padding_mode!r}; "
                "leave padding_mode at 'zeros'"
            )

    def forward(  # type: ignore[override]
        self, image: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Convolve the valid pixels of ``image``.

        Parameters
        ----------
        image : `torch.Tensor`
            Input of shape (N, C, H, W).
        mask : `torch.Tensor`
            Validity of shape (N, 1, H, W) or (N, C, H, W): 1 valid, 0 invalid.

        Returns
        -------
        output : `torch.Tensor`
            The renormalised convolution, zero where no valid pixel was seen.
        new_mask : `torch.Tensor`
            Validity of the output, shape (N, 1, H', W').
        """
        if mask.shape[1] not in (1, image.shape[1]):
            raise ValueError(
                f"mask has {mask.shape[1]} channels; give 1 or as many as the input "
                f"({image.shape[1]})"
            )
        mask_channels = mask.shape[1]
        if mask_channels > 1 and self.groups > 1:
            # Each group sees only its own channels: one count over all of them would be wrong.
            raise ValueError(
                f"a grouped PartialConv2d (groups={self.groups}) takes a one-channel mask"
            )
        window_size = mask_channels * self.kernel_size[0] * self.kernel_size[1]
        with torch.no_grad():
            ones = torch.ones(
                1, mask_channels, *self.kernel_size, dtype=mask.dtype, device=mask.device
            )
            valid_count = F.conv2d(
                mask, ones, stride=self.stride, padding=self.padding, dilation=self.dilation
            )
            new_mask = (valid_count > 0).to(mask.dtype)
            renormalisation = window_size / valid_count.clamp(min=1.0) * new_mask
        # Masking multiplies every activation: skipped where it would multiply by ones only
        # (full coverage, the usual case).
        raw = F.conv2d(
            image if all_valid(mask) else image * mask,
            self.weight,
            None,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )
        # In place: the convolution's backward pass needs its input, not its output.
        output = raw.mul_(renormalisation)
        if self.bias is not None:
            output = output + self.bias.view(1, -1, 1, 1) * new_mask
        return output, new_mask


class PartialConvBlock(nn.Module):
    """
    Partial convolution (no bias) -> batch norm -> ReLU.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : int, optional
        Square kernel size.
    stride : int, optional
        Stride: the output is the input's size divided by it. With stride 1
        the kernel size must be odd; with a larger stride, kernel size minus
        stride must be even (e.g. 4 and 2, padded by 1).

    Examples
    --------
    >>> import torch
    >>> block = PartialConvBlock(2, 8, kernel_size=4, stride=2)
    >>> output, mask = block(torch.randn(1, 2, 16, 16), torch.ones(1, 1, 16, 16))
    >>> output.shape
    torch.Size([1, 8, 8, 8])
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel_size: int = 3, stride: int = 1
    ) -> None:
        super().__init__()
        # Other combinations shift the output by half a pixel and change its size by one,
        # which the U-Net's skip connections cannot take.
        if stride > 1:
            divides_evenly = kernel_size >= stride and (kernel_size - stride) % 2 == 0
        else:
            divides_evenly = kernel_size % 2 == 1
        if not divides_evenly:
            raise ValueError(
                f"kernel_size {kernel_size} with stride {stride} does not divide the tile "
                "evenly; use an odd kernel with stride 1, or kernel minus stride even"
            )
        padding = (kernel_size - stride) // 2 if stride > 1 else kernel_size // 2
        self.conv = PartialConv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(
        self, image: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the block; returns the features and their validity mask."""
        output, new_mask = self.conv(image, mask)
        features = torch.relu_(self.norm(output))
        # Invalid pixels stay exactly zero so that batch norm's shift does not leak into them.
        if not all_valid(new_mask):
            features = features * new_mask
        return features, new_mask
