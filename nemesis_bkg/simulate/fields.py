"""
Random fields for simulated extended emission: Gaussian and lognormal
fields with power-law spectra, large-scale gradients and the Fourier-space
beam transfer function.

All fields are built with real FFTs on the grid they are returned on, so
they are periodic; callers that need non-periodic maps build a padded grid
and crop it.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = [
    "gaussian_beam_transfer",
    "linear_gradient",
    "lognormal_field",
    "power_law_field",
    "power_law_spectrum",
    "wavenumbers",
]


def wavenumbers(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """
    Wavenumbers (cycles per pixel) of the real-FFT grid of an image.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the image.

    Returns
    -------
    ky, kx : ndarray
        Broadcastable arrays of shape ``(ny, 1)`` and ``(1, nx // 2 + 1)``.

    Examples
    --------
    >>> from nemesis_bkg.simulate.fields import wavenumbers
    >>> ky, kx = wavenumbers((4, 4))
    >>> kx.ravel().tolist()
    [0.0, 0.25, 0.5]
    """
    ky = scipy.fft.fftfreq(shape[0])[:, np.newaxis]
    kx = scipy.fft.rfftfreq(shape[1])[np.newaxis, :]
    return ky, kx


def gaussian_beam_transfer(shape: tuple[int, int], fwhm_pixels: float) -> np.ndarray:
    """
    Fourier transform of a unit-area circular Gaussian beam on the real-FFT grid.

    Multiplying an image's `scipy.fft.rfft2` by this array and transforming
    back convolves the image with the beam (periodically).

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the image.
    fwhm_pixels : float
        Beam FWHM in pixels.

    Returns
    -------
    ndarray
        Shape ``(ny, nx // 2 + 1)``, 1 at zero frequency.

    Examples
    --------
    >>> from nemesis_bkg.simulate.fields import gaussian_beam_transfer
    >>> transfer = gaussian_beam_transfer((64, 64), 3.0)
    >>> float(transfer[0, 0])
    1.0
    """
    sigma = fwhm_pixels / np.sqrt(8.0 * np.log(2.0))
    ky, kx = wavenumbers(shape)
    return np.exp(-2.0 * np.pi**2 * sigma**2 * (kx**2 + ky**2))


def power_law_spectrum(
    shape: tuple[int, int], slope: float, rng: np.random.Generator
) -> np.ndarray:
    """
    Random Fourier coefficients of a Gaussian field with power ``P(k) ~ k**slope``.

    The zero-frequency term is zero, and the coefficients are scaled so that
    the field returned by `scipy.fft.irfft2` has unit variance on average.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the field.
    slope : float
        Power-spectrum slope (negative: e.g. -3 for molecular clouds).
    rng : `numpy.random.Generator`

    Returns
    -------
    ndarray of complex
        Shape ``(ny, nx // 2 + 1)``.

    Raises
    ------
    ValueError
        If ``slope`` is not negative and finite (the power would not fall
        with wavenumber and the field would not be a cloud-like one).

    Examples
    --------
    >>> import numpy as np, scipy.fft
    >>> from nemesis_bkg.simulate.fields import power_law_spectrum
    >>> coefficients = power_law_spectrum((128, 128), -3.0, np.random.default_rng(1))
    >>> scipy.fft.irfft2(coefficients, s=(128, 128)).shape
    (128, 128)
    """
    if not (np.isfinite(slope) and slope < 0):
        raise ValueError(f"slope must be negative and finite (e.g. -3.0), got {slope}.")
    ky, kx = wavenumbers(shape)
    k_squared = kx**2 + ky**2
    k_squared[0, 0] = np.inf  # no power at zero frequency: the mean is set by the caller
    amplitude = k_squared ** (slope / 4.0)
    half_shape = amplitude.shape
    coefficients = amplitude * (
        rng.standard_normal(half_shape) + 1j * rng.standard_normal(half_shape)
    )
    # Parseval for the half-plane storage: the columns other than 0 and
    # Nyquist appear twice in the full spectrum.
    weights = np.full(half_shape[1], 2.0)
    weights[0] = 1.0
    if shape[1] % 2 == 0:
        weights[-1] = 1.0
    variance = 2.0 * np.sum(weights * amplitude**2) / (shape[0] * shape[1]) ** 2
    return coefficients / np.sqrt(variance)


def power_law_field(shape: tuple[int, int], slope: float, rng: np.random.Generator) -> np.ndarray:
    """
    Gaussian random field with a power-law power spectrum, zero mean and unit std.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the field.
    slope : float
        Power-spectrum slope ``P(k) ~ k**slope`` (e.g. between -3.5 and -2.5).
    rng : `numpy.random.Generator`

    Returns
    -------
    ndarray
        Float64 field of the given shape, normalised to zero mean and unit std.

    Raises
    ------
    ValueError
        If ``slope`` is not negative and finite.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.fields import power_law_field
    >>> field = power_law_field((256, 256), -3.0, np.random.default_rng(0))
    >>> round(float(field.std()), 6)
    1.0
    """
    field = scipy.fft.irfft2(power_law_spectrum(shape, slope, rng), s=shape)
    return (field - field.mean()) / field.std()


def lognormal_field(
    shape: tuple[int, int], slope: float, rng: np.random.Generator, *, log_sigma: float = 0.8
) -> np.ndarray:
    """
    Lognormal field ``exp(log_sigma * g)`` of a unit Gaussian power-law field ``g``.

    Molecular clouds have lognormal column-density distributions; the
    exponential keeps the large-scale slope of ``g`` and adds the bright,
    sharp peaks of real clouds.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the field.
    slope : float
        Power-spectrum slope of the underlying Gaussian field.
    rng : `numpy.random.Generator`
    log_sigma : float, optional
        Standard deviation of the natural logarithm of the field.

    Returns
    -------
    ndarray
        Positive float64 field with median about 1.

    Raises
    ------
    ValueError
        If ``log_sigma`` is negative or ``slope`` not negative and finite.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.fields import lognormal_field
    >>> field = lognormal_field((128, 128), -3.0, np.random.default_rng(0))
    >>> bool(field.min() > 0)
    True
    """
    if log_sigma < 0:
        raise ValueError(f"log_sigma must be >= 0, got {log_sigma}.")
    return np.exp(log_sigma * power_law_field(shape, slope, rng))


def linear_gradient(shape: tuple[int, int], *, angle: float, amplitude: float) -> np.ndarray:
    """
    Plane rising by ``amplitude`` across the image along direction ``angle``.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the image.
    angle : float
        Direction of increase, radians from the +x axis.
    amplitude : float
        Difference between the values at the two image edges along that
        direction (over the image's larger dimension).

    Returns
    -------
    ndarray
        Zero-mean plane.

    Examples
    --------
    >>> from nemesis_bkg.simulate.fields import linear_gradient
    >>> plane = linear_gradient((3, 5), angle=0.0, amplitude=4.0)
    >>> plane[0].tolist()
    [-2.0, -1.0, 0.0, 1.0, 2.0]
    """
    y, x = np.indices(shape, dtype=float)
    along = (x - (shape[1] - 1) / 2) * np.cos(angle) + (y - (shape[0] - 1) / 2) * np.sin(angle)
    span = max(shape) - 1
    return amplitude * along / max(span, 1)
