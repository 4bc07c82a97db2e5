"""
nemesis_bkg: compact-source removal and backgrounds for far-infrared maps.

A partial-convolution U-Net inpaints SNR-adaptive holes cut around compact
sources, giving a source-free background map and a compact-only map ready
for photutils photometry.
"""

try:
    from ._version import version as __version__
except ImportError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

from .background import PConvBackground
from .remover import CompactSourceRemover

__all__ = ["CompactSourceRemover", "PConvBackground", "__version__"]
