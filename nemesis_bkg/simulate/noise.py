"""
Map noise like that of Herschel scan maps: white noise plus residual
low-frequency (1/f-like) detector drifts that leave stripes along the two
scan directions of a cross-scanned map.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = ["map_noise", "scan_stripes"]


def scan_stripes(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    angle: float,
    stripe_width: float = 1.0,
    spectral_index: float = 1.0,
) -> np.ndarray:
    """
    Unit-std striping noise of one scan direction.

    Each scan leg (a band ``stripe_width`` pixels wide along direction
    ``angle``) carries its own drift whose power spectrum along the scan is
    ``1 / f**spectral_index``, so the map shows stripes along the scan.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the map.
    rng : `numpy.random.Generator`
    angle : float
        Scan direction, radians from the +x axis.
    stripe_width : float, optional
        Width of one scan leg in pixels (about the beam FWHM).
    spectral_index : float, optional
        Index of the 1/f drift spectrum along the scan.

    Returns
    -------
    ndarray
        Zero-mean, unit-std float64 map.

    Raises
    ------
    ValueError
        If ``stripe_width`` is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.noise import scan_stripes
    >>> stripes = scan_stripes((64, 64), np.random.default_rng(0), angle=0.0)
    >>> round(float(stripes.std()), 6)
    1.0
    """
    if stripe_width <= 0:
        raise ValueError(f"stripe_width must be positive, got {stripe_width}.")
    y, x = np.indices(shape, dtype=float)
    along = x * np.cos(angle) + y * np.sin(angle)
    across = -x * np.sin(angle) + y * np.cos(angle)
    along_index = np.round(along - along.min()).astype(int)
    leg_index = np.floor((across - across.min()) / stripe_width).astype(int)
    n_legs, n_along = leg_index.max() + 1, along_index.max() + 1

    frequency = scipy.fft.rfftfreq(n_along)
    # The lowest non-zero frequency also sets the offset of each leg.
    frequency[0] = frequency[1] if n_along > 1 else 1.0
    amplitude = frequency ** (-spectral_index / 2.0)
    half_shape = (n_legs, amplitude.size)
    coefficients = amplitude * (
        rng.standard_normal(half_shape) + 1j * rng.standard_normal(half_shape)
    )
    drifts = scipy.fft.irfft(coefficients, n=n_along, axis=1)
    stripes = drifts[leg_index, along_index]
    return (stripes - stripes.mean()) / stripes.std()


def map_noise(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    noise_std: float,
    correlated_fraction: float = 0.3,
    scan_angle: float = 0.0,
    stripe_width: float = 1.0,
) -> np.ndarray:
    """
    White plus scan-correlated noise of a cross-scanned map.

    The correlated part comes from two orthogonal scan directions, each
    carrying half of it; its std is set exactly, so the noise std is
    ``noise_std`` up to the sampling scatter of the white part.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the map.
    rng : `numpy.random.Generator`
    noise_std : float
        1-sigma per-pixel noise of the sum.
    correlated_fraction : float, optional
        Fraction (0 to 1) of the noise variance in scan stripes.
    scan_angle : float, optional
        Direction of the first scan, radians from the +x axis.
    stripe_width : float, optional
        Width of a scan leg in pixels.

    Returns
    -------
    ndarray
        Float64 noise map.

    Raises
    ------
    ValueError
        If ``noise_std`` is not positive and finite, ``correlated_fraction``
        not between 0 and 1, or ``stripe_width`` not positive.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.simulate.noise import map_noise
    >>> noise = map_noise((256, 256), np.random.default_rng(0), noise_std=2.0)
    >>> round(float(noise.std()), 1)
    2.0
    """
    if not noise_std > 0 or not np.isfinite(noise_std):
        raise ValueError(f"noise_std must be positive and finite, got {noise_std}.")
    if not 0.0 <= correlated_fraction <= 1.0:
        raise ValueError(f"correlated_fraction must be between 0 and 1, got {correlated_fraction}.")
    noise = np.sqrt(1.0 - correlated_fraction) * rng.standard_normal(shape)
    if correlated_fraction > 0:
        stripes = sum(
            scan_stripes(shape, rng, angle=scan_angle + turn, stripe_width=stripe_width)
            for turn in (0.0, 0.5 * np.pi)
        )
        noise += np.sqrt(correlated_fraction) * stripes / stripes.std()
    return noise_std * noise
