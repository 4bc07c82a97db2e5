"""
Training the inpainting network: samples made on the fly from simulated
maps and real map crops, the losses, the training loop with checkpoints and
validation, and the export of a checkpoint to the bundled weights.
"""

from .config import DEFAULT_CONFIG, check_config, load_config
from .export import export_checkpoint
from .loop import train, validate, validation_samples

__all__ = [
    "DEFAULT_CONFIG",
    "check_config",
    "export_checkpoint",
    "load_config",
    "train",
    "validate",
    "validation_samples",
]
