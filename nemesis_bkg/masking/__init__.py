"""
SNR-adaptive holes around compact sources.

Sources are found with photutils segmentation on the beam-scale curvature
of the map; only compact ones (about a beam across, curving down in every
direction) get a hole, so filaments and extended clumps stay background.
Each hole reaches where the source's beam profile falls below the local
noise, plus a margin, united with the source's dilated segment. User
catalogues, regions and the input's own mask add holes; ``protect``
regions are never masked.

Examples
--------
>>> import numpy as np
>>> from nemesis_bkg.masking import build_source_mask, hole_radius
>>> y, x = np.mgrid[:80, :80]
>>> data = 25 * np.exp(-((x - 40) ** 2 + (y - 40) ** 2) / (2 * 1.5**2))
>>> holes = build_source_mask(data + np.random.default_rng(0).normal(size=data.shape), 3.5)
>>> len(holes.catalog), holes.mask.dtype
(1, dtype('bool'))
"""

from .core import SourceMasker, build_source_mask
from .holes import beam_excess, hole_radius, psf_profile
from .result import FLAG_EDGE, FLAG_MERGED, FLAG_PROTECTED, FLAG_TENTATIVE, SourceMask

__all__ = [
    "FLAG_EDGE",
    "FLAG_MERGED",
    "FLAG_PROTECTED",
    "FLAG_TENTATIVE",
    "SourceMask",
    "SourceMasker",
    "beam_excess",
    "build_source_mask",
    "hole_radius",
    "psf_profile",
]
