"""
Dask: many files on a cluster (`remove_files`) and mosaics larger than
memory (`remove_mosaic`).

`remove_files` needs only ``distributed`` when given a client; the mosaic
names need ``dask[array]`` and are imported on first use, so that
``import nemesis_bkg`` never needs Dask.
"""

from __future__ import annotations

import sys
from typing import Any

from .files import FileOutcome, output_path_for, remove_files

__all__ = [
    "FileOutcome",
    "MosaicResult",
    "is_dask_array",
    "mosaic_halo",
    "open_mosaic",
    "output_path_for",
    "remove_files",
    "remove_mosaic",
]

_MOSAIC_NAMES = ("MosaicResult", "mosaic_halo", "open_mosaic", "remove_mosaic")


def is_dask_array(data: Any) -> bool:
    """
    Whether ``data`` is a `dask.array.Array` (without importing Dask).

    Examples
    --------
    >>> import numpy as np
    >>> is_dask_array(np.zeros(3))
    False
    """
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(data, dask_array.Array)


def __getattr__(name: str) -> Any:
    if name in _MOSAIC_NAMES:
        from . import mosaic

        return getattr(mosaic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
