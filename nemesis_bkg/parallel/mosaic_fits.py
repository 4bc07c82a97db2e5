"""
A multi-extension FITS file written block by block, never held in memory
as a whole: the image extensions are laid out first (headers written, data
space reserved), blocks are written at their offsets, and a table
extension is appended at the end. The file is written under a temporary
name and renamed into place only when complete.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ..io import check_output_path, publish_file

__all__ = ["MosaicFitsWriter"]

BLOCK = 2880  # FITS files are made of 2880-byte blocks


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


class MosaicFitsWriter:
    """
    Write image extensions of one shape block by block, then a table.

    Use it as a context manager: on an error the temporary file is removed
    and nothing appears at ``path``.

    Parameters
    ----------
    path : str or path-like
        The final file.
    shape : tuple of int
        Shape (rows, columns) of every image extension.
    extensions : list of (str, dtype, `~astropy.io.fits.Header`)
        Name, data type and extra header keywords (WCS, BUNIT) of each image.
    primary_header : `~astropy.io.fits.Header`
        Keywords of the primary HDU. Values may be updated in `finish`, as
        long as no keyword is added.
    overwrite : bool, optional
        Replace an existing ``path``.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from astropy.io import fits
    >>> from astropy.table import Table
    >>> from nemesis_bkg.parallel.mosaic_fits import MosaicFitsWriter
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "out.fits")
    >>> with MosaicFitsWriter(path, (4, 6), [("IMAGE", np.float32, fits.Header())],
    ...                       fits.Header({"NROWS": 0})) as writer:
    ...     writer.write_block("IMAGE", (0, 0), np.ones((2, 6)))
    ...     writer.write_block("IMAGE", (2, 0), np.zeros((2, 6)))
    ...     writer.finish(Table({"a": [1, 2]}), {"NROWS": 2})
    >>> with fits.open(path) as hdulist:
    ...     hdulist["IMAGE"].data.sum(), hdulist[0].header["NROWS"], len(hdulist)
    (np.float32(12.0), 2, 3)
    """

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int],
                 extensions: list[tuple[str, Any, fits.Header]], primary_header: fits.Header,
                 *, overwrite: bool = False) -> None:
        self.path = Path(path)
        check_output_path(self.path, overwrite=overwrite)
        self._overwrite = overwrite
        folder = self.path.absolute().parent
        self.shape = tuple(int(side) for side in shape)
        self._temporary = folder / f".nemesis-{uuid.uuid4().hex}.fits.part"
        primary = fits.PrimaryHDU(header=primary_header)
        self._primary_bytes = primary.header.tostring().encode("ascii")
        self._primary_header = primary.header
        layout = [self._primary_bytes]
        self._data = {}
        offset = len(self._primary_bytes)
        for name, dtype, header in extensions:
            dtype = np.dtype(dtype)
            image_header = fits.ImageHDU(np.zeros((1, 1), dtype), header=header.copy(),
                                         name=name).header
            image_header["NAXIS1"], image_header["NAXIS2"] = self.shape[1], self.shape[0]
            header_bytes = image_header.tostring().encode("ascii")
            layout.append(header_bytes)
            offset += len(header_bytes)
            self._data[name] = (offset, dtype.newbyteorder(">"))
            size = _padded(self.shape[0] * self.shape[1] * dtype.itemsize)
            layout.append(size)
            offset += size
        # Kept open across calls: closed by finish or abort.
        self._file = open(self._temporary, "wb")
        for part in layout:
            if isinstance(part, bytes):
                self._file.write(part)
            else:  # reserved data space: a hole in the file until written
                self._file.seek(part, os.SEEK_CUR)
        self._file.truncate(offset)
        self._end = offset

    def __enter__(self) -> MosaicFitsWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:
            self.abort()

    def write_block(self, name: str, corner: tuple[int, int], block: np.ndarray) -> None:
        """
        Write ``block`` into the image ``name`` with its top-left pixel at ``corner``.

        Parameters
        ----------
        name : str
        corner : tuple of int
            (row, column) of the block's first pixel.
        block : ndarray
            2-D, converted to the extension's type.
        """
        start, dtype = self._data[name]
        row0, col0 = corner
        block = np.ascontiguousarray(block, dtype=dtype)
        if row0 + block.shape[0] > self.shape[0] or col0 + block.shape[1] > self.shape[1]:
            raise ValueError(f"block {block.shape} at {corner} overflows the {self.shape} image")
        descriptor = self._file.fileno()
        for index, row in enumerate(block):
            position = start + ((row0 + index) * self.shape[1] + col0) * dtype.itemsize
            os.pwrite(descriptor, row.tobytes(), position)

    def finish(self, table: Any, primary_updates: dict[str, Any] | None = None) -> None:
        """
        Append ``table`` as a binary table extension and move the file into place.

        Parameters
        ----------
        table : `~astropy.table.Table` or `~astropy.io.fits.BinTableHDU`
        primary_updates : dict, optional
            New values of primary-header keywords that already exist.
        """
        header = self._primary_header
        for key, value in (primary_updates or {}).items():
            if key not in header:
                raise KeyError(f"{key} is not in the primary header; reserve it when creating")
            header[key] = value
        primary_bytes = header.tostring().encode("ascii")
        if len(primary_bytes) != len(self._primary_bytes):
            raise ValueError("the updated primary header no longer fits its reserved space")
        hdu = table if isinstance(table, fits.BinTableHDU) else fits.table_to_hdu(table)
        buffer = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
        table_bytes = buffer.getvalue()[len(fits.PrimaryHDU().header.tostring()):]
        try:
            os.pwrite(self._file.fileno(), primary_bytes, 0)
            os.pwrite(self._file.fileno(), table_bytes, self._end)
            self._file.close()
            publish_file(self._temporary, self.path, overwrite=self._overwrite)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Close and remove the temporary file."""
        self._file.close()
        if self._temporary.exists():
            self._temporary.unlink()
