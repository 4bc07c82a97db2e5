"""
The inpainting engine: per-tile normalisation, the classical fill of the
holes, and the network run on tiles centred on the holes of a whole map.
"""

from .fill import biharmonic_fill, classical_fill, fit_generalized_covariance, kriging_fill
from .inference import PRECISIONS, default_batch_size, hole_tiles, inpaint_map
from .normalize import TileScaling, power_of_two_exponent, tile_scaling

__all__ = [
    "PRECISIONS",
    "TileScaling",
    "biharmonic_fill",
    "classical_fill",
    "default_batch_size",
    "fit_generalized_covariance",
    "hole_tiles",
    "inpaint_map",
    "kriging_fill",
    "power_of_two_exponent",
    "tile_scaling",
]
