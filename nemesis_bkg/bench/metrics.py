"""
The figures of merit of the benchmark, each a small pure function.

Background error inside the holes (in units of the map noise), flux error
of the injected sources per SNR bin, calibration of a claimed 1-sigma
error, false masking of filaments, and the cost (wall time and peak
memory) of a call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "MAD_TO_SIGMA",
    "SNR_BIN_EDGES",
    "Measurement",
    "calibration_fraction",
    "error_statistics_by_snr",
    "filament_masking",
    "flux_error_by_snr",
    "in_hole_rms_error",
    "measure_call",
    "relative_flux_error",
    "robust_scatter",
]

#: Scales a median absolute deviation to a Gaussian sigma.
MAD_TO_SIGMA = 1.4826

#: Edges of the peak-SNR bins of the flux tables (the last bin is open).
SNR_BIN_EDGES = (3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, np.inf)


def in_hole_rms_error(
    background: np.ndarray,
    true_background: np.ndarray,
    hole_mask: np.ndarray,
    noise_std: float,
) -> float:
    """
    RMS of (background - true background) over the hole pixels, over the noise.

    Pixels where either map is not finite are left out.

    Parameters
    ----------
    background, true_background : ndarray
        Estimated and true background maps.
    hole_mask : ndarray of bool
        Pixels where the error is measured.
    noise_std : float
        Per-pixel 1-sigma noise of the map.

    Returns
    -------
    float
        NaN when no hole pixel has finite values.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.metrics import in_hole_rms_error
    >>> truth = np.zeros((4, 4))
    >>> in_hole_rms_error(truth + 0.5, truth, np.ones((4, 4), bool), noise_std=0.25)
    2.0
    """
    if noise_std <= 0:
        raise ValueError(f"noise_std must be positive, got {noise_std}.")
    difference = (np.asarray(background) - np.asarray(true_background))[hole_mask]
    difference = difference[np.isfinite(difference)]
    if difference.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean(difference**2)) / noise_std)


def relative_flux_error(measured: np.ndarray, true: np.ndarray) -> np.ndarray:
    """
    (measured - true) / true, element by element.

    Parameters
    ----------
    measured, true : array-like
        Fluxes; ``true`` must be non-zero.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> from nemesis_bkg.bench.metrics import relative_flux_error
    >>> relative_flux_error([11.0, 9.0], [10.0, 10.0]).tolist()
    [0.1, -0.1]
    """
    true = np.asarray(true, dtype=float)
    if np.any(true == 0):
        raise ValueError("true fluxes must be non-zero to compute a relative error.")
    return (np.asarray(measured, dtype=float) - true) / true


def robust_scatter(values: np.ndarray) -> float:
    """
    1.4826 times the median absolute deviation of the finite values.

    Parameters
    ----------
    values : array-like

    Returns
    -------
    float
        NaN when no value is finite.

    Examples
    --------
    >>> from nemesis_bkg.bench.metrics import robust_scatter
    >>> robust_scatter([1.0, 2.0, 3.0, 4.0, 100.0])
    1.4826
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    return float(MAD_TO_SIGMA * np.median(np.abs(values - np.median(values))))


def error_statistics_by_snr(
    relative_errors: np.ndarray,
    snr: np.ndarray,
    *,
    snr_edges: Sequence[float] = SNR_BIN_EDGES,
) -> list[dict[str, float]]:
    """
    Median and robust scatter of relative flux errors in peak-SNR bins.

    Non-finite errors (failed measurements) are counted in ``n_failed``
    and left out of the statistics.

    Parameters
    ----------
    relative_errors, snr : array-like
        (measured - true) / true and true peak SNR of each source.
    snr_edges : sequence of float, optional
        Bin edges; a bin holds ``low <= snr < high``.

    Returns
    -------
    list of dict
        One per bin: ``snr_min``, ``snr_max``, ``n``, ``n_failed``,
        ``median``, ``scatter`` (NaN for an empty bin).

    Examples
    --------
    >>> from nemesis_bkg.bench.metrics import error_statistics_by_snr
    >>> bins = error_statistics_by_snr([0.1, 0.3, -0.2], [5.0, 50.0, 60.0], snr_edges=(3, 10, 100))
    >>> [(b["n"], round(b["median"], 3)) for b in bins]
    [(1, 0.1), (2, 0.05)]
    """
    errors = np.asarray(relative_errors, dtype=float)
    snr = np.asarray(snr, dtype=float)
    if errors.shape != snr.shape:
        raise ValueError(
            f"relative_errors and snr must have the same shape, got {errors.shape} and {snr.shape}."
        )
    bins = []
    for low, high in zip(snr_edges[:-1], snr_edges[1:], strict=True):
        in_bin = (snr >= low) & (snr < high)
        values = errors[in_bin & np.isfinite(errors)]
        bins.append(
            {
                "snr_min": float(low),
                "snr_max": float(high),
                "n": int(values.size),
                "n_failed": int(in_bin.sum() - values.size),
                "median": float(np.median(values)) if values.size else float("nan"),
                "scatter": robust_scatter(values),
            }
        )
    return bins


def flux_error_by_snr(
    measured: np.ndarray,
    true: np.ndarray,
    snr: np.ndarray,
    *,
    snr_edges: Sequence[float] = SNR_BIN_EDGES,
) -> list[dict[str, float]]:
    """
    Median and robust scatter of (measured - true) / true in peak-SNR bins.

    Parameters
    ----------
    measured, true, snr : array-like
        Measured and true flux, and true peak SNR, of each source.
    snr_edges : sequence of float, optional
        Bin edges; a bin holds ``low <= snr < high``.

    Returns
    -------
    list of dict
        See `error_statistics_by_snr`.

    Examples
    --------
    >>> from nemesis_bkg.bench.metrics import flux_error_by_snr
    >>> bins = flux_error_by_snr([11.0, 22.0], [10.0, 20.0], [5.0, 50.0], snr_edges=(3, 10, 100))
    >>> [round(b["median"], 3) for b in bins]
    [0.1, 0.1]
    """
    return error_statistics_by_snr(
        relative_flux_error(measured, true), snr, snr_edges=snr_edges
    )


def calibration_fraction(errors: np.ndarray, sigmas: np.ndarray) -> float:
    """
    Fraction of errors within their claimed 1-sigma: |error| <= sigma.

    About 0.683 for calibrated Gaussian errors. A sigma of zero is a claim
    of exactness and counts (within only where the error is zero too);
    entries with a non-finite error or a negative or non-finite sigma are
    left out.

    Parameters
    ----------
    errors : array-like
        Estimate minus truth.
    sigmas : array-like
        Claimed 1-sigma uncertainty of each estimate.

    Returns
    -------
    float
        NaN when nothing is left.

    Examples
    --------
    >>> from nemesis_bkg.bench.metrics import calibration_fraction
    >>> calibration_fraction([0.5, -2.0, 0.1, 3.0], [1.0, 1.0, 1.0, 1.0])
    0.5
    >>> calibration_fraction([0.5, 0.5], [1.0, 0.0])
    0.5
    """
    errors = np.asarray(errors, dtype=float)
    sigmas = np.asarray(sigmas, dtype=float)
    usable = np.isfinite(errors) & np.isfinite(sigmas) & (sigmas >= 0)
    if not usable.any():
        return float("nan")
    return float(np.mean(np.abs(errors[usable]) <= sigmas[usable]))


def filament_masking(
    hole_mask: np.ndarray,
    filament_mask: np.ndarray,
    source_x: np.ndarray,
    source_y: np.ndarray,
) -> dict[str, float | int]:
    """
    How much of the filaments a hole set removes, and how many holes are spurious.

    A hole (8-connected component) is spurious when no true source position
    falls inside it.

    Parameters
    ----------
    hole_mask : ndarray of bool
    filament_mask : ndarray of bool
        True filament pixels.
    source_x, source_y : array-like
        True source positions (0-based pixels).

    Returns
    -------
    dict
        ``filament_masked_fraction`` (fraction of filament pixels inside a
        hole; NaN without filaments), ``n_holes``, ``n_spurious_holes``,
        ``n_spurious_on_filament`` (spurious holes touching a filament).

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.bench.metrics import filament_masking
    >>> holes = np.zeros((8, 8), bool)
    >>> holes[1:3, 1:3] = True
    >>> holes[5:7, 5:7] = True
    >>> filament = np.zeros((8, 8), bool)
    >>> filament[:, 6] = True
    >>> stats = filament_masking(holes, filament, [1.5], [1.5])
    >>> stats["n_spurious_holes"], stats["n_spurious_on_filament"]
    (1, 1)
    >>> stats["filament_masked_fraction"]
    0.25
    """
    labels, n_holes = ndimage.label(hole_mask, structure=np.ones((3, 3), dtype=bool))
    columns = np.round(np.asarray(source_x, dtype=float)).astype(int)
    rows = np.round(np.asarray(source_y, dtype=float)).astype(int)
    columns = np.clip(columns, 0, labels.shape[1] - 1)
    rows = np.clip(rows, 0, labels.shape[0] - 1)
    with_source = np.zeros(n_holes + 1, dtype=bool)
    with_source[labels[rows, columns]] = True
    on_filament = np.zeros(n_holes + 1, dtype=bool)
    on_filament[np.unique(labels[filament_mask])] = True
    spurious = ~with_source[1:]
    n_filament = int(np.count_nonzero(filament_mask))
    return {
        "filament_masked_fraction": (
            float(np.count_nonzero(hole_mask & filament_mask) / n_filament)
            if n_filament
            else float("nan")
        ),
        "n_holes": int(n_holes),
        "n_spurious_holes": int(spurious.sum()),
        "n_spurious_on_filament": int((spurious & on_filament[1:]).sum()),
    }


@dataclass
class Measurement:
    """
    The outcome of `measure_call`.

    Attributes
    ----------
    value : object
        What the call returned (None when it raised).
    seconds : float
        Wall time of the call.
    peak_memory_mb : float or None
        Peak resident memory during the call above the resident memory
        before it, in MiB; None where the platform cannot tell.
    error : str or None
        ``"ExceptionType: message"`` when the call raised.
    """

    value: Any
    seconds: float
    peak_memory_mb: float | None
    error: str | None = None


_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field_name: str) -> int:
    for line in _PROC_STATUS.read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise OSError(f"{field_name} not in {_PROC_STATUS}")


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _reset_peak_rss() -> int | None:
    """Reset the kernel's resident high-water mark; return the current RSS (KiB)."""
    trim = _malloc_trim()
    if trim is not None:
        # Hand freed heap memory back to the system first, so that the call's
        # own allocations raise the resident size instead of reusing it.
        trim(0)
    try:
        # Writing "5" resets VmHWM to the current RSS (Linux >= 4.0).
        _PROC_CLEAR_REFS.write_text("5")
        return _status_kib("VmRSS")
    except OSError:
        return None


def measure_call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Measurement:
    """
    Call ``function`` and record its wall time, peak memory and any exception.

    Peak memory is the kernel's resident high-water mark (reset before the
    call, after freed heap memory is handed back to the system) minus the
    resident size before the call, so it counts numpy, C and torch
    allocations alike; it is None off Linux.

    Parameters
    ----------
    function : callable
    *args, **kwargs
        Passed to ``function``.

    Returns
    -------
    `Measurement`

    Examples
    --------
    >>> from nemesis_bkg.bench.metrics import measure_call
    >>> measurement = measure_call(sum, [1, 2, 3])
    >>> measurement.value, measurement.error
    (6, None)
    """
    rss_before = _reset_peak_rss()
    start = time.perf_counter()
    value, error = None, None
    try:
        value = function(*args, **kwargs)
    except Exception as exc:  # a failing method is a result to report, not a crash
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    peak = None
    if rss_before is not None:
        peak = max(_status_kib("VmHWM") - rss_before, 0) / 1024.0
    return Measurement(value=value, seconds=seconds, peak_memory_mb=peak, error=error)
