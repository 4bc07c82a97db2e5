"""
The input layer every public class calls first.

It accepts a numpy array, a `~astropy.units.Quantity`, an
`~astropy.nddata.NDData` (or `~astropy.nddata.CCDData`) or a FITS file,
and returns an `ImageInput`: a private float64 copy of the image in native
byte order, its unit, WCS, header, the user mask, the coverage (finite,
covered pixels) and a 1-sigma error map. The input object is never
modified.
"""

from __future__ import annotations

import os
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, NDData, NDUncertainty, StdDevUncertainty
from astropy.wcs import WCS, FITSFixedWarning

__all__ = ["ImageInput", "check_output_path", "publish_file", "read_fits", "read_image",
           "write_fits_atomically"]


@dataclass
class ImageInput:
    """
    A validated 2-D image, ready for masking and inpainting.

    Attributes
    ----------
    data : ndarray
        Float64 copy of the image, native byte order; non-finite values are NaN.
    coverage : ndarray of bool
        True where the pixel holds a usable measurement (finite and not in
        the coverage mask).
    mask : ndarray of bool
        User mask: pixels not to be trusted as background (NDData ``mask``
        united with the ``mask`` argument). They become holes to inpaint.
    error : ndarray or None
        1-sigma uncertainty per pixel, from any astropy uncertainty class.
    unit : `~astropy.units.UnitBase` or None
    wcs : `~astropy.wcs.WCS` or None
    header : `~astropy.io.fits.Header`
        FITS header (an empty one when the input had none).
    meta : dict
        The input's ``meta`` (copied).
    input_type : type
        Class of the input, so results can be returned in the same form.
    """

    data: np.ndarray
    coverage: np.ndarray
    mask: np.ndarray
    error: np.ndarray | None = None
    unit: u.UnitBase | None = None
    wcs: WCS | None = None
    header: fits.Header = field(default_factory=fits.Header)
    meta: dict = field(default_factory=dict)
    input_type: type = np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape


def _squeeze_to_2d(array: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
    if array.ndim == 2:
        return array, False
    if array.ndim > 2:
        squeezed = np.squeeze(array)
        if squeezed.ndim == 2:
            return squeezed, True
    raise ValueError(
        f"{what} must be a 2-D image, got shape {array.shape}; pass one plane of a cube "
        "(e.g. data[0]) or a 2-D image."
    )


def _to_float64(array: Any, what: str) -> np.ndarray:
    array = np.asanyarray(array)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{what} must hold real numbers, got dtype {array.dtype}; convert it with "
            "np.asarray(data, dtype=float) first."
        )
    # A copy in native byte order: the caller's array is never touched.
    return np.array(array, dtype=np.float64, copy=True)


def _celestial_2d(wcs: WCS | None, squeezed: bool) -> WCS | None:
    if wcs is None:
        return None
    if wcs.naxis == 2:
        return wcs.deepcopy()
    if squeezed and wcs.has_celestial and wcs.celestial.naxis == 2:
        return wcs.celestial.deepcopy()
    raise ValueError(
        f"the WCS has {wcs.naxis} axes but the image is 2-D; give a 2-D WCS "
        "(e.g. wcs.celestial)."
    )


def _error_from_uncertainty(uncertainty: Any, shape: tuple[int, int], unit) -> np.ndarray:
    if isinstance(uncertainty, NDUncertainty):
        # Checked before conversion: a negative standard deviation would come back squared away.
        with np.errstate(invalid="ignore"):
            negative = uncertainty.array is not None and np.any(np.asarray(uncertainty.array) < 0)
        if negative:
            raise ValueError(
                f"the {type(uncertainty).__name__} has negative values; it must be >= 0 (check "
                "that it is not a signal map)."
            )
        try:
            stddev = uncertainty.represent_as(StdDevUncertainty)
        except (TypeError, ValueError, AttributeError) as exc:
            raise TypeError(
                f"cannot turn a {type(uncertainty).__name__} into a 1-sigma map; use "
                "StdDevUncertainty, VarianceUncertainty or InverseVariance."
            ) from exc
        array = stddev.array
        if stddev.unit is not None and unit is not None and stddev.unit != unit:
            array = (array * stddev.unit).to_value(unit)
    elif isinstance(uncertainty, u.Quantity):
        array = uncertainty.to_value(unit) if unit is not None else uncertainty.value
    else:
        array = uncertainty
    error = _to_float64(array, "uncertainty")
    if error.shape != shape:
        error, _ = _squeeze_to_2d(error, "uncertainty") if error.ndim > 2 else (error, False)
    if error.shape != shape:
        raise ValueError(
            f"uncertainty has shape {error.shape} but the image has shape {shape}; they must match."
        )
    if np.any(error < 0):
        raise ValueError(
            "uncertainty has negative values; a 1-sigma error must be >= 0 (check that it is "
            "not a variance or a signal map)."
        )
    return error


def _mask_array(mask: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    if mask is None:
        return np.zeros(shape, dtype=bool)
    array = np.asarray(mask)
    if array.shape != shape and array.ndim > 2:
        array, _ = _squeeze_to_2d(array, what)
    if array.shape != shape:
        raise ValueError(
            f"{what} has shape {array.shape} but the image has shape {shape}; they must match."
        )
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contains NaN or inf; give a boolean array.")
    return array.astype(bool, copy=True)


def read_image(
    data: Any,
    *,
    mask: Any = None,
    coverage_mask: Any = None,
    uncertainty: Any = None,
    wcs: WCS | None = None,
    unit: u.UnitBase | str | None = None,
) -> ImageInput:
    """
    Validate an image and turn it into an `ImageInput`.

    Parameters
    ----------
    data : array-like, `~astropy.units.Quantity`, `~astropy.nddata.NDData`, str or path
        The image. NDData's ``mask``, ``uncertainty``, ``wcs``, ``unit`` and
        ``meta`` are used. A path is read with `read_fits`.
    mask : array-like of bool, optional
        Pixels not to be trusted as background; united with NDData's mask.
    coverage_mask : array-like of bool, optional
        Pixels with no coverage (True = not covered), as in photutils.
    uncertainty : array-like, `~astropy.units.Quantity` or `~astropy.nddata.NDUncertainty`, optional
        Overrides NDData's uncertainty.
    wcs : `~astropy.wcs.WCS`, optional
        Overrides NDData's WCS.
    unit : unit-like, optional
        Unit of a plain array (ignored when ``data`` carries a unit).

    Returns
    -------
    `ImageInput`

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.io import read_image
    >>> image = read_image(np.array([[1.0, np.nan], [3.0, 4.0]]))
    >>> image.coverage
    array([[ True, False],
           [ True,  True]])
    """
    if isinstance(data, str | os.PathLike):
        data = read_fits(data)

    header = fits.Header()
    meta: dict = {}
    input_type = type(data)
    nd_mask = None
    nd_uncertainty = None
    nd_wcs = None
    if isinstance(data, NDData):
        nd_mask, nd_uncertainty, nd_wcs = data.mask, data.uncertainty, data.wcs
        meta = dict(data.meta)
        if isinstance(data.meta.get("header"), fits.Header):
            header = data.meta["header"].copy()
        elif isinstance(data.meta, fits.Header):
            header = data.meta.copy()
        data_unit = data.unit
        array = data.data
    elif isinstance(data, u.Quantity):
        data_unit = data.unit
        array = data.value
    else:
        data_unit = None
        array = data

    if data_unit is None and unit is not None:
        data_unit = u.Unit(unit)

    if np.ma.isMaskedArray(array):
        nd_mask = np.ma.getmaskarray(array) | (False if nd_mask is None else nd_mask)
        array = np.ma.getdata(array)

    image = _to_float64(array, "data")
    image, squeezed = _squeeze_to_2d(image, "data")
    shape = image.shape
    if min(shape) < 2:
        raise ValueError(f"the image is too small to process: shape {shape}.")

    finite = np.isfinite(image)
    image[~finite] = np.nan
    coverage = finite & ~_mask_array(coverage_mask, shape, "coverage_mask")
    if not coverage.any():
        raise ValueError(
            "the image has no valid pixel (all NaN, inf or outside the coverage mask); "
            "nothing can be measured on it."
        )

    user_mask = _mask_array(nd_mask, shape, "the NDData mask") | _mask_array(mask, shape, "mask")

    if uncertainty is None:
        uncertainty = nd_uncertainty
    error = None
    if uncertainty is not None:
        error = _error_from_uncertainty(uncertainty, shape, data_unit)
        bad_error = coverage & ~np.isfinite(error)
        if bad_error.any():
            raise ValueError(
                f"uncertainty is NaN or inf at {int(bad_error.sum())} covered pixels; fix it or "
                "add those pixels to coverage_mask."
            )
        # A zero error makes any excess infinitely significant.
        zero_error = coverage & (error == 0)
        if zero_error.any():
            raise ValueError(
                f"uncertainty is 0 at {int(zero_error.sum())} covered pixels; a measured pixel "
                "has a 1-sigma error > 0: fix it or add those pixels to coverage_mask."
            )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        the_wcs = _celestial_2d(wcs if wcs is not None else nd_wcs, squeezed)

    return ImageInput(
        data=image,
        coverage=coverage,
        mask=user_mask,
        error=error,
        unit=data_unit,
        wcs=the_wcs,
        header=header,
        meta=meta,
        input_type=input_type,
    )


def read_fits(path: str | os.PathLike, *, hdu: int | str | None = None) -> NDData:
    """
    Read a FITS image into a `~astropy.nddata.CCDData`.

    Unlike `~astropy.nddata.CCDData.read`, a missing BUNIT is not fatal, nor
    an unknown one (a warning says so; the unit is left unset), degenerate
    axes of 3-D/4-D images are squeezed, and the first HDU holding an image
    is taken when ``hdu`` is not given. A ``<NAME>_ERR`` extension (as
    `~nemesis_bkg.results.RemovalResult.write` writes for extension
    ``NAME``), else an ``ERROR``, ``STDDEV`` or ``UNCERTAINTY`` one, of the
    image's shape becomes the uncertainty; one of another shape is not used,
    with a warning.

    Parameters
    ----------
    path : str or path-like
    hdu : int or str, optional
        HDU index or name of the image.

    Returns
    -------
    `~astropy.nddata.CCDData` or `~astropy.nddata.NDData`
        CCDData when BUNIT is a known unit, NDData otherwise; ``meta`` is the
        image header.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from astropy.io import fits
    >>> from nemesis_bkg.io import read_fits
    >>> path = Path(tempfile.mkdtemp()) / "map.fits"
    >>> fits.PrimaryHDU(np.zeros((1, 8, 8)), header=fits.Header({"BUNIT": "MJy/sr"})).writeto(path)
    >>> ccd = read_fits(path)
    >>> ccd.shape, ccd.unit
    ((8, 8), Unit("MJy / sr"))
    """
    name = os.fspath(path)
    # Warnings about a damaged file are held back: a failure becomes one clear error, and a
    # file that opens after all still shows them.
    with warnings.catch_warnings(record=True) as opening_warnings:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, memmap=False)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise OSError(f"cannot read {name!r} as FITS ({exc}); is the file complete?") from exc
    for caught in opening_warnings:
        if "truncated" in str(caught.message):
            hdul.close()
            raise OSError(f"cannot read {name!r} as FITS ({caught.message}); is the file complete?")
        warnings.warn_explicit(caught.message, caught.category, caught.filename, caught.lineno)
    with hdul, warnings.catch_warnings():
        # astropy only warns about a short file and then fails to reshape: make it one error.
        warnings.filterwarnings("error", message=".*truncated.*")
        try:
            if hdu is None:
                image_hdus = [
                    h for h in hdul if h.is_image and h.data is not None and h.data.ndim >= 2
                ]
            else:
                image_hdus = [hdul[hdu]]
            array = image_hdus[0].data if image_hdus else None
        except (TypeError, ValueError, OSError, Warning) as exc:
            raise OSError(
                f"cannot read the image data of {name!r} ({exc}); the file may be truncated."
            ) from exc
        if not image_hdus:
            raise ValueError(f"{name!r} holds no image HDU; give the HDU with hdu=.")
        image_hdu = image_hdus[0]
        if array is None:
            raise ValueError(f"HDU {hdu!r} of {name!r} holds no data.")
        header = image_hdu.header.copy()
        image, _ = _squeeze_to_2d(np.asarray(array), "the FITS image")
        image = image.astype(image.dtype.newbyteorder("="), copy=True)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header)
        if wcs.naxis != 2:
            wcs = wcs.celestial if wcs.has_celestial and wcs.celestial.naxis == 2 else None
        elif not (wcs.has_celestial or wcs.wcs.ctype[0]):
            wcs = None

        unit = None
        bunit = header.get("BUNIT")
        if bunit:
            try:
                unit = u.Unit(str(bunit).strip(), parse_strict="raise")
            except ValueError:
                warnings.warn(
                    f"BUNIT {bunit!r} of {name!r} is not a unit astropy knows; the map "
                    "is read without a unit.",
                    UserWarning,
                    stacklevel=2,
                )

        uncertainty = None
        # "<NAME>_ERR" is how this package writes the error of extension NAME.
        error_names = (f"{image_hdu.name}_ERR", "ERROR", "STDDEV", "UNCERTAINTY")
        error_hdus = [ext for ext in error_names if ext in hdul and hdul[ext].data is not None]
        for ext in error_hdus:
            error = np.squeeze(np.asarray(hdul[ext].data))
            if error.shape == image.shape:
                uncertainty = StdDevUncertainty(error.astype(error.dtype.newbyteorder("=")))
                break
        else:
            if error_hdus:
                warnings.warn(
                    f"the {'/'.join(error_hdus)} extension of {name!r} does not have the "
                    f"image's shape {image.shape}; the map is read without an uncertainty.",
                    UserWarning,
                    stacklevel=2,
                )

    if unit is None:
        # CCDData needs a unit; without a known one, say so rather than invent one.
        return NDData(image, wcs=wcs, uncertainty=uncertainty, meta=header)
    return CCDData(image, unit=unit, wcs=wcs, uncertainty=uncertainty, meta=header)


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """
    Fail early when ``path`` cannot be written as an output file.

    Parameters
    ----------
    path : str or path-like
    overwrite : bool, optional
        Whether an existing file may be replaced.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the folder of ``path`` does not exist.

    Examples
    --------
    >>> from nemesis_bkg.io import check_output_path
    >>> check_output_path("/no/such/folder/out.fits")
    Traceback (most recent call last):
    ...
    FileNotFoundError: the output folder /no/such/folder does not exist; create it first.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the output folder {folder} does not exist; create it first.")


def write_fits_atomically(hdulist: fits.HDUList, path: str | os.PathLike, *,
                          overwrite: bool = False) -> None:
    """
    Write ``hdulist`` to ``path`` through a temporary file in the same folder.

    The file appears complete or not at all: a crash or Ctrl-C while writing
    leaves no half-written FITS file, and an existing file is replaced only
    when ``overwrite`` is True, even one that another process creates while
    this one writes.

    Parameters
    ----------
    hdulist : `~astropy.io.fits.HDUList`
    path : str or path-like
    overwrite : bool, optional
        Replace an existing file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the folder of ``path`` does not exist.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from astropy.io import fits
    >>> from nemesis_bkg.io import write_fits_atomically
    >>> path = Path(tempfile.mkdtemp()) / "empty.fits"
    >>> write_fits_atomically(fits.HDUList([fits.PrimaryHDU()]), path)
    >>> path.exists()
    True
    """
    check_output_path(path, overwrite=overwrite)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    # A fresh name rather than mkstemp, whose 0600 mode would make the output private.
    temporary = os.path.join(folder, f".nemesis-{uuid.uuid4().hex}.fits.part")
    try:
        hdulist.writeto(temporary, output_verify="fix")
        publish_file(temporary, path, overwrite=overwrite)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def publish_file(temporary: str | os.PathLike, path: str | os.PathLike, *,
                 overwrite: bool = False) -> None:
    """
    Give a finished temporary file its final name, atomically.

    Without ``overwrite`` the name must still be free when the file is
    published, even if another process created it meanwhile: a hard link,
    which fails atomically when the name is taken, is made and the
    temporary name removed. On file systems without hard links the name is
    checked once more and the file renamed.

    Parameters
    ----------
    temporary : str or path-like
        The complete file, in the same folder as ``path``.
    path : str or path-like
        Its final name.
    overwrite : bool, optional
        Replace an existing file of that name.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False; ``temporary`` is left
        for the caller to remove.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from nemesis_bkg.io import publish_file
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "part").write_text("done")
    >>> publish_file(folder / "part", folder / "final.txt")
    >>> sorted(path.name for path in folder.iterdir())
    ['final.txt']
    """
    temporary, path = os.fspath(temporary), os.fspath(path)
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        # A hard link fails, atomically, when the name is taken (unlike a rename).
        os.link(temporary, path)
    except FileExistsError:
        raise FileExistsError(
            f"{path} appeared while it was being written; pass overwrite=True (--overwrite) "
            "to replace it."
        ) from None
    except OSError:
        # A file system without hard links: check again and rename.
        if os.path.exists(path):
            raise FileExistsError(
                f"{path} exists; pass overwrite=True (--overwrite) to replace it."
            ) from None
        os.replace(temporary, path)
        return
    os.remove(temporary)
