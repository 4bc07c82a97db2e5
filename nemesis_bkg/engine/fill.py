"""
Classical fills of holes, with their uncertainty: local universal kriging with
a generalised covariance fitted around each hole (the default), and biharmonic
(thin-plate) interpolation.

Each connected hole is filled from a cutout around it, so the cost grows with
the number of holes, not with the map size.
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
from scipy import ndimage, sparse
from scipy.linalg import LinAlgWarning, lapack, lu_factor, lu_solve
from scipy.sparse import csgraph
from scipy.sparse.linalg import spsolve

__all__ = ["biharmonic_fill", "classical_fill", "fit_generalized_covariance", "kriging_fill"]

#: Exponents tried when fitting the generalised covariance K(h) = -+amplitude * h**exponent:
#: below 2 rough fields (K = -amplitude * h**exponent), above 2 beam-smoothed ones
#: (K = +amplitude * h**exponent); 2 itself is left out, where h**2 is no valid covariance.
_COVARIANCE_EXPONENTS = np.concatenate([np.arange(0.1, 1.951, 0.05), np.arange(2.05, 3.951, 0.05)])

#: Hole pixels predicted per solve of a kriging system (bounds its memory).
_TARGETS_PER_SOLVE = 16384


def _check_inputs(data, hole_mask):
    if np.iscomplexobj(data):
        raise TypeError("data must be real; give the real part or the modulus explicitly")
    data = np.asarray(data, dtype=float)
    hole_mask = np.asarray(hole_mask, dtype=bool)
    if data.ndim != 2 or data.shape != hole_mask.shape:
        raise ValueError(
            f"data {data.shape} and hole_mask {hole_mask.shape} must be 2-D arrays of one shape"
        )
    return data, hole_mask


def _covariance_sign(exponent: float) -> float:
    """Sign of the power generalised covariance: -h**a for a < 2, +h**a for 2 < a < 4."""
    return 1.0 if exponent > 2 else -1.0


def fit_generalized_covariance(
    values: np.ndarray, *, max_lag: int = 16
) -> tuple[float, float, float]:
    """
    Fit a power generalised covariance, with a white-noise nugget, to a cutout.

    The model is the intrinsic random function of order 1 with generalised
    covariance K(h) = s * amplitude * h**exponent (0 < exponent < 4, s = -1
    below 2 and +1 above), plus white noise of variance ``nugget``: rough
    clouds have exponents below 2, beam-smoothed sky above. Second
    differences along rows and columns filter out any linear trend, and
    their mean square at lag h is ``6 nugget + amplitude * |2**(exponent+1)
    - 8| * h**exponent``; that is fitted at lags 1, 2, 3, 4, 6, 8, ... up to
    ``max_lag`` by relative least squares.

    Parameters
    ----------
    values : `~numpy.ndarray`
        2-D cutout; NaN pixels are ignored.
    max_lag : int, optional
        Largest lag in pixels.

    Returns
    -------
    nugget, amplitude, exponent : float
        The white-noise variance, and the amplitude and exponent of the
        generalised covariance. The amplitude is 0 when fewer than two lags
        could be measured or the cutout is white noise.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> white_noise = rng.normal(scale=2.0, size=(64, 64))
    >>> nugget, amplitude, exponent = fit_generalized_covariance(white_noise)
    >>> round(nugget, 1)
    4.0
    """
    values = np.asarray(values, dtype=float)
    twice = 2 * values
    lags, mean_squares, weights = [], [], []
    for lag in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32):
        if lag > max_lag or 2 * lag >= max(values.shape):
            break
        squares, count = 0.0, 0
        for outer, middle in (
            ((values[2 * lag :, :], values[: -2 * lag, :]), twice[lag:-lag, :]),
            ((values[:, 2 * lag :], values[:, : -2 * lag]), twice[:, lag:-lag]),
        ):
            second_differences = np.add(*outer)
            second_differences -= middle
            finite = second_differences[np.isfinite(second_differences)]
            squares += float(finite @ finite)
            count += finite.size
        # A lag with no variation at all (a map of zeros but a pixel) would get an
        # infinite weight in the relative fit: it is left out.
        if count >= 8 and squares > 0:
            lags.append(lag)
            mean_squares.append(squares / count)
            weights.append(np.sqrt(count))
    if len(lags) < 2 or max(mean_squares) <= 0:
        return (max(mean_squares, default=0.0) / 6.0, 0.0, 1.0)
    lags, mean_squares, weights = np.array(lags, float), np.array(mean_squares), np.array(weights)
    # Fitted in units of the largest mean square, so that maps of tiny or huge values do
    # not overflow the normal equations (the fit itself is scale-free).
    scale = float(mean_squares.max())
    mean_squares = mean_squares / scale
    # Relative least squares for (white part, power part) at every exponent at once, both
    # kept non-negative: the 2x2 normal equations solved in closed form.
    relative = weights / mean_squares
    constant_column = relative
    power_columns = relative[:, None] * lags[:, None] ** _COVARIANCE_EXPONENTS[None, :]
    a00 = constant_column @ constant_column
    a01 = constant_column @ power_columns
    a11 = np.sum(power_columns**2, axis=0)
    b0, b1 = constant_column @ weights, weights @ power_columns
    determinant = a00 * a11 - a01**2
    with np.errstate(divide="ignore", invalid="ignore"):
        white = (a11 * b0 - a01 * b1) / determinant
        power = (a00 * b1 - a01 * b0) / determinant
    no_white = white < 0
    white = np.where(no_white, 0.0, white)
    power = np.where(no_white, np.maximum(b1 / a11, 0.0), power)
    no_power = power < 0
    white = np.where(no_power, mean_squares.mean(), white)
    power = np.where(no_power, 0.0, power)
    residuals = (constant_column[:, None] * white[None, :] + power_columns * power[None, :]
                 - weights[:, None])
    misfit = np.sum(residuals**2, axis=0)
    if not np.isfinite(misfit).any():
        return (float(np.mean(mean_squares) * scale / 6.0), 0.0, 1.0)
    best = int(np.argmin(np.where(np.isfinite(misfit), misfit, np.inf)))
    exponent = float(_COVARIANCE_EXPONENTS[best])
    # Second differences of white noise have 6 times its variance; those of the power
    # covariance |2**(a+1) - 8| times its amplitude.
    return (float(white[best] * scale / 6.0),
            float(power[best] * scale / abs(2.0 ** (exponent + 1) - 8.0)),
            exponent)


#: Share of hole pixels below which holes are labelled from the hole pixels alone.
_SPARSE_HOLES = 0.02


def _label_holes(hole_mask):
    """
    The connected holes (8-connectivity): their label image and each one's bounding box.

    Labelled once per map: the fills and the engine's tiles all use it. The
    labels and boxes are those of `scipy.ndimage.label` and
    `scipy.ndimage.find_objects`; where holes are a small share of the map
    they are found from the hole pixels alone, some 7 times faster on a
    2048 x 2048 map with 100 holes.
    """
    if np.count_nonzero(hole_mask) > _SPARSE_HOLES * hole_mask.size:
        labels, _ = ndimage.label(hole_mask, structure=np.ones((3, 3), bool))
        return labels, ndimage.find_objects(labels)
    n_rows, n_cols = hole_mask.shape
    flat_mask = hole_mask.ravel()
    pixels = np.flatnonzero(flat_mask)
    labels = np.zeros(hole_mask.shape, dtype=np.int32)
    if pixels.size == 0:
        return labels, []
    rows, cols = np.divmod(pixels, n_cols)
    # Links to the 8-neighbours ahead in row-major order; the components are numbered
    # in the order of their first pixel, as ndimage.label numbers them.
    link_from, link_to = [], []
    for shift_row, shift_col in ((0, 1), (1, -1), (1, 0), (1, 1)):
        inside = np.flatnonzero((rows + shift_row < n_rows) & (cols + shift_col >= 0)
                                & (cols + shift_col < n_cols))
        neighbours = pixels[inside] + shift_row * n_cols + shift_col
        in_hole = flat_mask[neighbours]
        link_from.append(inside[in_hole])
        link_to.append(np.searchsorted(pixels, neighbours[in_hole]))
    link_from, link_to = np.concatenate(link_from), np.concatenate(link_to)
    links = sparse.csr_matrix((np.ones(link_from.size, dtype=np.int8), (link_from, link_to)),
                              shape=(pixels.size, pixels.size))
    count, component = csgraph.connected_components(links, directed=False)
    labels.ravel()[pixels] = component + 1
    boxes = []
    for values, size in ((rows, n_rows), (cols, n_cols)):
        low, high = np.full(count, size), np.full(count, -1)
        np.minimum.at(low, component, values)
        np.maximum.at(high, component, values)
        boxes.append((low, high + 1))
    (top, bottom), (left, right) = boxes
    return labels, [(slice(int(row0), int(row1)), slice(int(col0), int(col1)))
                    for row0, row1, col0, col1 in zip(top, bottom, left, right, strict=True)]


def _grow(slices, margin, shape):
    """The bounding box ``slices`` grown by ``margin`` pixels, clipped to the map."""
    return tuple(
        slice(max(span.start - margin, 0), min(span.stop + margin, size))
        for span, size in zip(slices, shape, strict=True)
    )


def _conditioning_points(component, usable, ring_width, max_points, rng):
    distance = ndimage.distance_transform_edt(~component)
    candidates = usable & (distance <= ring_width)
    rows, cols = np.nonzero(candidates)
    if rows.size > max_points:
        # Keep every pixel touching the hole, subsample the rest of the ring.
        near = distance[rows, cols] <= 1.5
        near_index = np.flatnonzero(near)
        if near_index.size > max_points // 2:
            near_index = rng.choice(near_index, max_points // 2, replace=False)
        far_index = np.flatnonzero(~near)
        far_index = rng.choice(
            far_index, min(far_index.size, max_points - near_index.size), replace=False
        )
        keep = np.concatenate([near_index, far_index])
        rows, cols = rows[keep], cols[keep]
    return rows, cols


#: Most entries of a covariance table indexed by pixel offset (32 MB): beyond, the
#: powers are tabulated by squared distance, whose table is half the size.
_MAX_OFFSET_TABLE = 2**22


class _OffsetCovariance:
    """
    The generalised covariance ``sign * distance**exponent / norm`` between pixel positions.

    Pixel positions lie on a grid, so the covariance of two depends on their
    offset only, and the offsets are far fewer than the pairs: each power is
    taken once, into a table indexed by the offset (the same numbers as
    ``sign * cdist(...)**exponent / norm``). Where that table would be huge
    (a hole of thousands of pixels across) the powers are tabulated by
    squared distance, and where the positions span so much more than they
    number (a long, thin hole) that a table would hold more powers than the
    pairs need, each pair's power is taken.

    ``norm``, the covariance at the largest offset of the positions' bounding
    box (at least ``noise_ratio``), brings the values to order one, so that
    the drift rows of a kriging system stay comparable to its covariances.
    """

    def __init__(self, positions, exponent, noise_ratio, n_pairs):
        self.exponent = exponent
        self.low = positions.min(axis=0)
        extent = positions.max(axis=0) - self.low + 1
        largest_squared = int((extent - 1) @ (extent - 1))
        self.norm = max(float(np.sqrt(float(largest_squared))) ** exponent, noise_ratio)
        self.factor = _covariance_sign(exponent) / self.norm
        self.by_offset = self.by_squared = None
        offsets = (2 * int(extent[0]) - 1) * (2 * int(extent[1]) - 1)
        if offsets <= min(n_pairs, _MAX_OFFSET_TABLE):
            row_offsets = np.arange(1 - extent[0], extent[0])
            col_offsets = np.arange(1 - extent[1], extent[1])
            squared = (row_offsets * row_offsets)[:, None] + (col_offsets * col_offsets)[None, :]
            self.by_offset = self._powers(largest_squared)[squared].ravel()
            self.stride = 2 * int(extent[1]) - 1
            self.centre = (int(extent[0]) - 1) * self.stride + int(extent[1]) - 1
        elif largest_squared < n_pairs:
            self.by_squared = self._powers(largest_squared)

    def _powers(self, largest_squared):
        """The scaled covariance at squared distances 0, 1, ... ``largest_squared``."""
        return self.factor * np.sqrt(np.arange(largest_squared + 1, dtype=float)) ** self.exponent

    def __call__(self, first, second):
        """Covariances between the positions ``first`` (N, 2) and ``second`` (M, 2): (N, M)."""
        if self.by_offset is not None:
            first_keys = (first[:, 0] - self.low[0]) * self.stride + (first[:, 1] - self.low[1])
            second_keys = (second[:, 0] - self.low[0]) * self.stride + (second[:, 1]
                                                                         - self.low[1])
            return self.by_offset[(first_keys + self.centre)[:, None] - second_keys[None, :]]
        row_offsets = first[:, None, 0] - second[None, :, 0]
        col_offsets = first[:, None, 1] - second[None, :, 1]
        squared = row_offsets * row_offsets + col_offsets * col_offsets
        if self.by_squared is not None:
            return self.by_squared[squared]
        return self.factor * np.sqrt(squared.astype(float)) ** self.exponent


def _drift_pivots(points):
    """
    Three points spanning the conditioning points (a wide triangle), or None when all lie on a line.

    The first and last rows, and the point farthest from the line through them.
    """
    first, second = int(np.argmin(points[:, 0])), int(np.argmax(points[:, 0]))
    direction = points[second] - points[first]
    offsets = points - points[first]
    areas = np.abs(offsets[:, 0] * direction[1] - offsets[:, 1] * direction[0])
    third = int(np.argmax(areas))
    # Whole pixel positions: off a line by half a unit of area at least, or exactly on it.
    return None if areas[third] == 0 else [first, second, third]


def _universal_kriging(points, values, targets, *, nugget, amplitude, exponent):
    """
    Kriging with a linear drift: the noise-free prediction at ``targets`` and its variance.

    None when the points do not determine a plane.

    The system is that of an intrinsic random function of order 1: the
    generalised covariance between the points, white noise on its diagonal,
    and the three unbiasedness constraints of a plane. ``points`` and
    ``targets`` are pixel positions (row, column), whole numbers. It is
    solved on the drift-free subspace, where it is positive definite
    (Cholesky; half the work of an LU of the whole system), or as a whole
    where rounding makes that subspace's matrix not positive definite.
    """
    pivots = _drift_pivots(points)
    if pivots is None:
        return None
    # The pivots last: the drift is eliminated through them.
    others = np.ones(len(points), bool)
    others[pivots] = False
    order = np.concatenate([np.flatnonzero(others), pivots])
    points, values = points[order], values[order]
    grid_points, grid_targets = points.astype(np.intp), targets.astype(np.intp)
    # In units of the amplitude (the weights do not depend on it), so that no value of the
    # map can overflow the system.
    noise_ratio = nugget / amplitude
    covariance = _OffsetCovariance(np.concatenate([grid_points, grid_targets]), exponent,
                                   noise_ratio, len(points) * (len(points) + len(targets)))
    if not (np.isfinite(covariance.norm) and covariance.norm > 0):
        return None
    origin = points.mean(axis=0)
    centred, noise = points - origin, noise_ratio / covariance.norm
    solved = (_drift_free_kriging(centred, values, grid_points, covariance, noise)
              or _saddle_point_kriging(centred, values, grid_points, covariance, noise))
    if solved is None:
        return None
    predictions, quadratics = [], []
    # A hole of millions of pixels is predicted in chunks, so that the right-hand sides
    # (one column per pixel) stay a few tens of megabytes.
    for start in range(0, len(targets), _TARGETS_PER_SOLVE):
        chunk = slice(start, start + _TARGETS_PER_SOLVE)
        prediction, quadratic = solved(covariance(grid_points, grid_targets[chunk]),
                                       targets[chunk] - origin)
        predictions.append(prediction)
        quadratics.append(quadratic)
    prediction = np.concatenate(predictions)
    # The generalised covariance is 0 at lag 0, so the variance is the quadratic form
    # of the weights (in the scaled units, hence the norm and amplitude).
    variance = amplitude * covariance.norm * np.maximum(np.concatenate(quadratics), 0.0)
    if not (np.all(np.isfinite(prediction)) and np.all(np.isfinite(variance))):
        return None
    return prediction, variance


def _drift_free_kriging(points, values, grid_points, covariance, noise):
    """
    Factor the kriging system on the weights that satisfy the drift constraints.

    Weights w with F^T w = f (F the drift of the points, f of the target) are
    w = E v + B beta: v free for the first n - 3 points, the last three (the
    pivots) then fixed. The variance w^T C w - 2 w^T c is minimised over v:
    M v = G with M = E^T C E positive definite. Returns a function of the
    covariances to the targets and their drift that gives the prediction
    and the minimised quadratic form; None if M is not numerically positive
    definite.
    """
    n_free = len(points) - 3
    drift = np.column_stack([np.ones(len(points)), points])
    # LAPACK directly: np.linalg.inv costs ten times more on a 3x3 matrix.
    pivot_inverse = lapack.dgesv(drift[n_free:], np.eye(3))[2]
    elimination = drift[:n_free] @ pivot_inverse
    to_pivots = covariance(grid_points, grid_points[n_free:])
    free_to_pivots = to_pivots[:n_free]
    between_pivots = to_pivots[n_free:] + noise * np.eye(3)
    # M = C_ff - C_fp L^T - L C_pf + L C_pp L^T, a rank-6 update of C_ff.
    update = np.hstack([free_to_pivots, elimination])
    core = np.zeros((6, 6))
    core[3:, :3] = core[:3, 3:] = -np.eye(3)
    core[3:, 3:] = between_pivots
    reduced = covariance(grid_points[:n_free], grid_points[:n_free])
    reduced[np.arange(n_free), np.arange(n_free)] += noise
    reduced += (update @ core) @ update.T
    factor, info = lapack.dpotrf(reduced, lower=1, overwrite_a=1, clean=0)
    if info != 0:
        return None
    pivot_values = values[n_free:]
    # LAPACK's triangular solve itself: scipy's solve_triangular checks cost more than it.
    reduced_values, _ = lapack.dtrtrs(factor, values[:n_free] - elimination @ pivot_values,
                                      lower=1)

    def solved(right, target_drift):
        fixed = pivot_inverse.T @ np.vstack([np.ones(len(target_drift)), target_drift.T])
        to_free = right[:n_free] + update @ np.vstack([-fixed, between_pivots @ fixed
                                                       - right[n_free:]])
        half, _ = lapack.dtrtrs(factor, to_free, lower=1, overwrite_b=1)
        prediction = half.T @ reduced_values + fixed.T @ pivot_values
        quadratic = (np.einsum("ij,ij->j", fixed, between_pivots @ fixed - 2 * right[n_free:])
                     - np.einsum("ij,ij->j", half, half))
        return prediction, quadratic

    return solved


def _saddle_point_kriging(points, values, grid_points, covariance, noise):
    """
    Factor the whole kriging system (LU): covariances, white noise and the drift constraints.

    Returns a function of the covariances to the targets and their drift that
    gives the prediction and the variance's quadratic form (see
    `_drift_free_kriging`).
    """
    size = len(points)
    system = np.zeros((size + 3, size + 3))
    system[:size, :size] = covariance(grid_points, grid_points)
    system[np.arange(size), np.arange(size)] += noise
    system[:size, size] = 1.0
    system[:size, size + 1 :] = points
    system[size:, :size] = system[:size, size:].T
    with warnings.catch_warnings():
        # Conditioning points on one line (a hole against a straight no-coverage edge)
        # leave the plane undetermined: the caller falls back to the plane or the mean.
        warnings.simplefilter("ignore", LinAlgWarning)
        # Built from finite numbers (the norm is checked by the caller): no scan for NaN.
        factors = lu_factor(system, overwrite_a=True, check_finite=False)

    def solved(right, target_drift):
        right = np.vstack([right, np.ones(len(target_drift)), target_drift.T])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LinAlgWarning)
            weights = lu_solve(factors, right, check_finite=False)
        # The generalised covariance is 0 at lag 0: the variance is minus the weighted
        # right-hand side.
        return values @ weights[:size], -np.einsum("ij,ij->j", weights, right)

    return solved


def _trend_fill(points, values, targets, *, nugget):
    """
    The least-squares plane through the points (their mean when they lie on a line).

    The best prediction when the surroundings are a plane plus white noise,
    with the variance of that noise and of the fitted plane.
    """
    origin = points.mean(axis=0)
    design = np.column_stack([np.ones(len(points)), points - origin])
    target_design = np.column_stack([np.ones(len(targets)), targets - origin])
    if len(points) < 3 or np.linalg.matrix_rank(design) < 3:
        design, target_design = design[:, :1], target_design[:, :1]
    # Fitted around the mean, so that a constant is reproduced exactly.
    level = np.mean(values)
    coefficients, *_ = np.linalg.lstsq(design, values - level, rcond=None)
    leverage = np.sum(target_design @ np.linalg.pinv(design.T @ design) * target_design, axis=1)
    return level + target_design @ coefficients, nugget * (1 + leverage)


def kriging_fill(
    data: np.ndarray,
    hole_mask: np.ndarray,
    *,
    fwhm_pixels: float,
    max_points: int = 160,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """
    Fill holes by local universal kriging of the noiseless background.

    For each connected hole, a power generalised covariance with a
    white-noise nugget (`fit_generalized_covariance`) is fitted to the valid
    pixels of a cutout around it, and the hole is predicted, with a linear
    drift, from at most ``max_points`` pixels of a ring around it. Rough
    clouds get rough fills, beam-smoothed sky smooth ones; a plane is
    reproduced exactly. The prediction is of the noise-free background, and
    its kriging variance is returned.

    Parameters
    ----------
    data : `~numpy.ndarray`
        2-D map, NaN where there is no data.
    hole_mask : `~numpy.ndarray`
        2-D bool, True for the pixels to fill.
    fwhm_pixels : float
        Beam FWHM in pixels; sets the ring and cutout widths.
    max_points : int, optional
        Most conditioning pixels per hole (speed).
    seed : int, optional
        Seed of the subsampling of the conditioning pixels (combined with
        each hole's shape, so that a hole's fill does not depend on the
        other holes).

    Returns
    -------
    filled : `~numpy.ndarray`
        Copy of ``data`` with the holes filled (holes with no valid pixel
        around them stay NaN).
    variance : `~numpy.ndarray`
        Kriging variance of the fill, 0 outside the holes. Where the
        surroundings are white noise (no covariance amplitude) the fill is
        their least-squares plane, and the variance that of the plane plus
        the noise's.

    Raises
    ------
    ValueError
        If the arrays are not 2-D of one shape or ``fwhm_pixels`` is not a
        positive number.
    TypeError
        If ``data`` is complex.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:40, :40]
    >>> data = 0.1 * xx + 0.05 * yy
    >>> holes = (yy - 20) ** 2 + (xx - 20) ** 2 < 16
    >>> filled, variance = kriging_fill(np.where(holes, 99.0, data), holes, fwhm_pixels=3)
    >>> bool(np.allclose(filled, data, atol=1e-3))
    True
    """
    data, hole_mask = _check_inputs(data, hole_mask)
    if not (np.isfinite(fwhm_pixels) and fwhm_pixels > 0):
        raise ValueError(f"fwhm_pixels must be a positive number, got {fwhm_pixels}")
    return _kriging_fill(data, hole_mask, *_label_holes(hole_mask), fwhm_pixels=fwhm_pixels,
                         max_points=max_points, seed=seed)


def _kriging_fill(data, hole_mask, labels, hole_slices, *, fwhm_pixels, max_points=160, seed=0):
    """`kriging_fill` of checked inputs whose holes are labelled already (`_label_holes`)."""
    filled = data.copy()
    # Not zeros_like: the pages of a fresh zero array are only touched around the holes.
    variance = np.zeros(data.shape)
    for rows, cols, prediction, prediction_variance in _krige_holes(
            data, np.isfinite(data) & ~hole_mask, labels, hole_slices, fwhm_pixels=fwhm_pixels,
            max_points=max_points, seed=seed):
        filled[rows, cols] = prediction
        variance[rows, cols] = prediction_variance
    return filled, variance


def _krige_holes(data, usable_map, labels, hole_slices, *, fwhm_pixels, max_points=160, seed=0):
    """
    The kriging fill and its variance of every labelled hole, one hole at a time.

    Yields each hole's pixels (rows and columns of the map, in row-major
    order), the prediction and its variance (NaN and 0 for a hole with no
    usable pixel around it). ``usable_map`` marks the pixels of ``data`` the
    fill may use.
    """
    ring_width = max(2.0 * fwhm_pixels, 3.0)
    for index, slices in enumerate(hole_slices, start=1):
        yield _krige_hole(data, labels, usable_map, index, slices, ring_width=ring_width,
                          max_points=max_points, seed=seed)


def _krige_hole(data, labels, usable_map, index, slices, *, ring_width, max_points, seed):
    """
    Kriging fill of the hole ``index`` of ``labels`` (bounding box ``slices``).

    Returns its pixels' rows and columns in the map, the prediction and its
    variance: NaN and 0 when no usable pixel surrounds it.
    """
    margin = int(np.ceil(2 * ring_width)) + 2
    hole_radius = np.sqrt(np.count_nonzero(labels[slices] == index) / np.pi)
    width = max(ring_width, 0.5 * hole_radius)
    # A large hole's ring is wider than the usual margin: the cutout must hold all of it.
    window = _grow(slices, max(margin, int(np.ceil(width))), labels.shape)
    component = labels[window] == index
    # Each hole's subsample is seeded by the hole's own shape, so that its fill does
    # not depend on the other holes of the map (a chunk of a mosaic sees fewer).
    rng = np.random.default_rng([seed, zlib.crc32(np.packbits(component).tobytes()),
                                 *component.shape])
    usable = usable_map[window]
    rows, cols = _conditioning_points(component, usable, width, max_points, rng)
    target_rows, target_cols = np.nonzero(component)
    map_rows, map_cols = target_rows + window[0].start, target_cols + window[1].start
    if rows.size == 0:
        return map_rows, map_cols, np.nan, 0.0
    cutout = np.where(usable, data[window], np.nan)
    values = cutout[rows, cols]
    nugget, amplitude, exponent = fit_generalized_covariance(cutout, max_lag=int(2 * width) + 1)
    points = np.stack([rows, cols], axis=1).astype(float)
    targets = np.stack([target_rows, target_cols], axis=1).astype(float)
    kriged = None
    if amplitude > 0 and rows.size >= 6:
        kriged = _universal_kriging(points, values, targets, nugget=nugget,
                                    amplitude=amplitude, exponent=exponent)
    if kriged is None:
        kriged = _trend_fill(points, values, targets, nugget=nugget)
    return (map_rows, map_cols, *kriged)


def biharmonic_fill(data: np.ndarray, hole_mask: np.ndarray) -> np.ndarray:
    """
    Fill holes with the biharmonic (thin-plate) interpolant.

    The hole pixels minimise the sum of squared discrete Laplacians over
    every pixel whose 5-point stencil lies in data or in one hole (NaN
    pixels and the pixels of other holes are outside its domain), a weak
    membrane term keeping the problem well posed next to NaN pixels. Each
    connected hole is thus solved on its own, all of them in one sparse
    system. Hole pixels that NaN pixels cut off from every data pixel stay
    NaN.

    Parameters
    ----------
    data : `~numpy.ndarray`
        2-D map, NaN where there is no data.
    hole_mask : `~numpy.ndarray`
        2-D bool, True for the pixels to fill.

    Returns
    -------
    `~numpy.ndarray`
        Copy of ``data`` with the holes filled.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:20, :20]
    >>> data = 0.3 * xx - 0.2 * yy
    >>> holes = np.zeros(data.shape, bool)
    >>> holes[8:12, 8:12] = True
    >>> bool(np.allclose(biharmonic_fill(data, holes), data))
    True
    """
    data, hole_mask = _check_inputs(data, hole_mask)
    return _biharmonic_fill(data, hole_mask, _label_holes(hole_mask)[0])


def _unique_of_sorted_runs(keys):
    """
    `numpy.unique` of integers that are a few sorted runs one after the other.

    A stable sort merges such runs in linear time, ten times faster than
    np.unique's sort on the biharmonic fill's stencil centres.
    """
    keys = np.sort(keys, kind="stable")
    first = np.empty(keys.size, bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return keys[first]


def _biharmonic_fill(data, hole_mask, labels):
    """`biharmonic_fill` of checked inputs whose holes are labelled already (`_label_holes`)."""
    filled = data.copy()
    hole_pixels = np.flatnonzero(hole_mask)
    filled.ravel()[hole_pixels] = _biharmonic_values(data, hole_pixels, labels)
    return filled


def _biharmonic_values(data, hole_pixels, labels, *, usable=None):
    """
    The biharmonic fill of the hole pixels, in their order (NaN where cut off from data).

    ``hole_pixels`` are the row-major indices of every hole pixel of the map,
    sorted (those of `numpy.flatnonzero`); ``usable`` marks the data pixels
    the fill may use (by default the finite ones).
    """
    n_rows, n_cols = data.shape
    if hole_pixels.size == 0:
        return np.zeros(0)
    hole_rows, hole_cols = np.divmod(hole_pixels, n_cols)
    laplacian_stencil = ((0, 0, -4.0), (1, 0, 1.0), (-1, 0, 1.0), (0, 1, 1.0), (0, -1, 1.0))
    # A weak membrane (first differences) pins pixels that no full Laplacian
    # stencil reaches, e.g. along a no-coverage edge.
    membrane_stencils = (((0, 0, -0.03), (1, 0, 0.03)), ((0, 0, -0.03), (0, 1, 0.03)))
    blocks, constants, data_rows = [], [], []
    for stencil in (laplacian_stencil, *membrane_stencils):
        # Stencils that touch a hole: centred on a hole pixel or next to one.
        centre_rows = np.concatenate([hole_rows - shift_row for shift_row, _, _ in stencil])
        centre_cols = np.concatenate([hole_cols - shift_col for _, shift_col, _ in stencil])
        # Unique centres through row-major indices of a grid one pixel wider on every side.
        centres = _unique_of_sorted_runs((centre_rows + 1) * (n_cols + 2) + centre_cols + 1)
        centre_rows, centre_cols = np.divmod(centres, n_cols + 2)
        centre_rows, centre_cols = centre_rows - 1, centre_cols - 1
        points = [(centre_rows + shift_row, centre_cols + shift_col, weight)
                  for shift_row, shift_col, weight in stencil]
        inside = np.ones(centres.size, bool)
        for rows, cols, _ in points:
            inside &= (rows >= 0) & (rows < n_rows) & (cols >= 0) & (cols < n_cols)
        points = [(rows[inside], cols[inside], weight) for rows, cols, weight in points]
        point_labels = np.stack([labels[rows, cols] for rows, cols, _ in points])
        # Every point of a stencil in its domain is a hole pixel or a data pixel.
        in_domain = np.all((point_labels > 0) | np.stack(
            [np.isfinite(data[rows, cols]) if usable is None else usable[rows, cols]
             for rows, cols, _ in points]), axis=0)
        # A stencil that reaches into two holes belongs to neither (each hole is solved
        # with the others outside its domain).
        hole_label = point_labels.max(axis=0)
        one_hole = np.all((point_labels == 0) | (point_labels == hole_label), axis=0)
        keep = in_domain & one_hole
        row_ids, column_ids, coefficients = [], [], []
        constant = np.zeros(int(keep.sum()))
        touches_data = np.zeros(constant.size, bool)
        for rows, cols, weight in points:
            is_unknown = labels[rows[keep], cols[keep]] > 0
            # An unknown's number is its rank among the sorted hole pixels.
            ids = np.searchsorted(hole_pixels, rows[keep] * n_cols + cols[keep])
            row_ids.append(np.flatnonzero(is_unknown))
            column_ids.append(ids[is_unknown])
            coefficients.append(np.full(int(is_unknown.sum()), weight))
            constant += weight * np.where(is_unknown, 0.0, data[rows[keep], cols[keep]])
            touches_data |= ~is_unknown
        blocks.append(sparse.csr_matrix(
            (np.concatenate(coefficients), (np.concatenate(row_ids), np.concatenate(column_ids))),
            shape=(constant.size, hole_rows.size),
        ))
        constants.append(constant)
        data_rows.append(touches_data)
    operator = sparse.vstack(blocks).tocsr()
    constant = np.concatenate(constants)
    normal = (operator.T @ operator + 1e-12 * sparse.identity(operator.shape[1])).tocsc()
    solution = spsolve(normal, -(operator.T @ constant))
    # Hole pixels linked by no chain of stencils to a data pixel (cut off by NaN pixels)
    # would get the regularisation's 0: they have no fill.
    links = abs(operator)
    _, groups = csgraph.connected_components(links.T @ links, directed=False)
    anchored_pixels = np.flatnonzero(links[np.concatenate(data_rows)].getnnz(axis=0))
    solution[~np.isin(groups, groups[anchored_pixels])] = np.nan
    return solution


def classical_fill(
    data: np.ndarray,
    hole_mask: np.ndarray,
    *,
    fwhm_pixels: float,
    method: str = "kriging",
) -> tuple[np.ndarray, np.ndarray]:
    """
    Fill holes with a classical interpolant and give its 1-sigma uncertainty.

    Parameters
    ----------
    data : `~numpy.ndarray`
        2-D map, NaN where there is no data.
    hole_mask : `~numpy.ndarray`
        2-D bool, True for the pixels to fill.
    fwhm_pixels : float
        Beam FWHM in pixels.
    method : {"kriging", "biharmonic"}, optional
        ``"kriging"`` (local universal kriging, with its kriging standard
        deviation) or ``"biharmonic"`` (whose uncertainty is taken from the
        kriging variance of the same holes).

    Returns
    -------
    filled, error : `~numpy.ndarray`
        The filled map and the fill's 1-sigma uncertainty (0 outside holes).

    Raises
    ------
    ValueError
        If ``method`` is unknown, or as `kriging_fill` does.

    Examples
    --------
    >>> import numpy as np
    >>> data = np.ones((32, 32))
    >>> holes = np.zeros(data.shape, bool)
    >>> holes[10:14, 10:14] = True
    >>> filled, error = classical_fill(data, holes, fwhm_pixels=2.0)
    >>> float(filled[12, 12])
    1.0
    """
    if method not in ("kriging", "biharmonic"):
        raise ValueError(f"method must be 'kriging' or 'biharmonic', not {method!r}")
    filled, variance = kriging_fill(data, hole_mask, fwhm_pixels=fwhm_pixels)
    if method == "biharmonic":
        filled = biharmonic_fill(data, hole_mask)
    return filled, np.sqrt(variance)
