"""
Whole-map inpainting: classical fill of every hole, then the network's
correction on tiles centred on the holes, batched.

Each connected hole (or cluster of touching holes) gets one tile centred on
it, at least the model's tile size and large enough to hold the hole plus a
margin of context. Every hole pixel is written by exactly one tile, so there
is nothing to blend and no seam; tiles overlap freely when holes are close.
Outside the holes the output is the input, bit for bit.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from ..model import load_model, resolve_device
from .features import network_inputs, network_outputs
from .fill import _biharmonic_values, _krige_holes, _label_holes
from .normalize import TileScaling, power_of_two_exponent, tile_scaling

__all__ = ["PRECISIONS", "check_engine_settings", "default_batch_size", "hole_tiles", "inpaint_map"]

#: Arithmetic the network may run in: full single precision, or mixed
#: precision (matrix work in 16 bits, accumulations in 32) through `torch.autocast`.
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}

#: Most tiles per forward pass on a CPU (a shape's tiles are split into equal batches of at
#: most this many): 20 to 25 tiles a batch were fastest on the speed benchmark's map, 16
#: some 5 % slower and 50 more so, the decoded region growing with the batch.
CPU_BATCH_SIZE = 24

#: Bounds of the tiles per forward pass on a GPU.
GPU_BATCH_SIZES = (16, 1024)


def default_batch_size(device: str | torch.device, model: torch.nn.Module, tile_pixels: int) -> int:
    """
    Tiles per forward pass: fixed on a CPU, sized to the free memory on a GPU.

    On a GPU a quarter of the free memory is given to one batch, counting
    4 bytes for every activation of every level of the network, its
    encoder, decoder, skips and masks (about six maps of the level's
    channels), so that large cards take large batches.

    Parameters
    ----------
    device : str or `torch.device`
        Where the network runs.
    model : `~nemesis_bkg.model.PConvUNet`
        Its ``channels`` set the activations per pixel.
    tile_pixels : int
        Pixels of one tile.

    Returns
    -------
    int
        Tiles per forward pass.

    Examples
    --------
    >>> from nemesis_bkg.model import PConvUNet
    >>> default_batch_size("cpu", PConvUNet(channels=(8, 16)), 64 * 64)
    24
    """
    device = torch.device(device)
    if device.type != "cuda":
        return CPU_BATCH_SIZE
    free_bytes, _ = torch.cuda.mem_get_info(device)
    channels = getattr(model, "channels", (128,))
    floats_per_pixel = 6 * sum(width / 4**level for level, width in enumerate(channels))
    per_tile = 4 * floats_per_pixel * tile_pixels
    low, high = GPU_BATCH_SIZES
    return int(np.clip(free_bytes // 4 // per_tile, low, high))


#: Networks in use by `_evaluating`: id -> [calls using it, was training, previous device].
_networks_in_use: dict[int, list] = {}
_networks_lock = threading.Lock()


@contextlib.contextmanager
def _evaluating(model, device):
    """
    Run ``model`` in eval mode on ``device``, then give it back as it was.

    `torch.nn.Module.to` and ``eval`` change the caller's network in place:
    a network being trained, or kept on another device, is restored, once
    the last of the calls using it at the same time (threads of a mosaic
    sharing one network) is done; restoring it earlier would put the others'
    batch norm in training mode in the middle of their work.
    """
    key = id(model)
    with _networks_lock:
        if key not in _networks_in_use:
            previous_device = next(model.parameters(), torch.empty(0)).device
            _networks_in_use[key] = [0, model.training, previous_device]
            model.to(device).eval()
        _networks_in_use[key][0] += 1
    try:
        yield
    finally:
        with _networks_lock:
            state = _networks_in_use[key]
            state[0] -= 1
            if not state[0]:
                del _networks_in_use[key]
                _, was_training, previous_device = state
                if was_training:
                    model.train()
                if previous_device != device:
                    model.to(previous_device)


@contextlib.contextmanager
def _torch_threads(n_threads):
    """Run torch with ``n_threads`` CPU threads (None: as it is), then restore."""
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def hole_tiles(
    hole_mask: np.ndarray, *, tile_size: int, multiple: int, margin: int
) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """
    One tile per connected hole, centred on it.

    Parameters
    ----------
    hole_mask : `~numpy.ndarray`
        2-D bool, True in the holes.
    tile_size : int
        Smallest tile side (rounded up to a multiple of ``multiple``).
    multiple : int
        Tile sides are multiples of this (the network's downsampling factor).
    margin : int
        Context kept around each hole's bounding box.

    Returns
    -------
    list of (component, (row0, col0, rows, cols))
        For each connected hole: a bool array of the tile's shape marking
        its pixels, and the tile's placement in the map (top-left corner and
        sides; tiles may extend beyond the map).

    Examples
    --------
    >>> import numpy as np
    >>> holes = np.zeros((100, 100), bool)
    >>> holes[40:45, 50:55] = True
    >>> [placement for _, placement in hole_tiles(holes, tile_size=32, multiple=16, margin=8)]
    [(26, 36, 32, 32)]
    """
    return _hole_tiles(*_label_holes(np.asarray(hole_mask, dtype=bool)), tile_size=tile_size,
                       multiple=multiple, margin=margin)


def _hole_tiles(labels, hole_slices, *, tile_size, multiple, margin):
    """`hole_tiles` of holes labelled already (`~nemesis_bkg.engine.fill._label_holes`)."""
    smallest_side = -(-tile_size // multiple) * multiple
    tiles = []
    for index, (row_slice, col_slice) in enumerate(hole_slices, start=1):
        placement = []
        for span in (row_slice, col_slice):
            extent = span.stop - span.start
            side = max(smallest_side, -(-(extent + 2 * margin) // multiple) * multiple)
            start = (span.start + span.stop) // 2 - side // 2
            placement.extend([start, side])
        row0, rows, col0, cols = placement
        component = np.zeros((rows, cols), bool)
        component_rows, component_cols = np.nonzero(labels[row_slice, col_slice] == index)
        component[component_rows + row_slice.start - row0,
                  component_cols + col_slice.start - col0] = True
        tiles.append((component, (row0, col0, rows, cols)))
    return tiles


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The thread pools of the loaded libraries, found once (a search costs 0.7 ms a call)."""
    return ThreadpoolController()


@dataclass(frozen=True)
class _HoleFills:
    """
    The classical fills of a map's hole pixels, held for those pixels only.

    ``pixels`` are the hole pixels' row-major indices in a map of ``n_cols``
    columns, sorted; ``fill`` and ``variance`` (the kriging's) and
    ``biharmonic`` hold their values in that order. Maps of the fills would
    have their pages touched around every hole and read around every tile:
    8 ms more on the speed benchmark's map than these arrays.
    """

    pixels: np.ndarray
    n_cols: int
    fill: np.ndarray
    variance: np.ndarray
    biharmonic: np.ndarray

    def tiles(self, hole_tiles, placements):
        """The fills on a stack of tiles whose holes are ``hole_tiles``: zeros elsewhere."""
        tile_index, rows, cols = np.nonzero(hole_tiles)
        origins = np.array([placement[:2] for placement in placements])
        pixels = (origins[tile_index, 0] + rows) * self.n_cols + origins[tile_index, 1] + cols
        where = np.searchsorted(self.pixels, pixels)
        stacks = {}
        for name in ("fill", "variance", "biharmonic"):
            stacks[name] = np.zeros(hole_tiles.shape)
            stacks[name][tile_index, rows, cols] = getattr(self, name)[where]
        return stacks


def _classical_fills(values, holes, trusted, labels, hole_slices, *, fwhm_pixels, side_by_side):
    """
    The kriging fill and its variance, and the biharmonic fill, of labelled holes.

    Only the ``trusted`` pixels of ``values`` (data, not holes) are read; the
    fills come back for the hole pixels only (`_HoleFills`). The biharmonic
    fill, mostly compiled code that lets other threads run, is computed in a
    second thread beside the kriging when ``side_by_side`` and there is more
    than one hole. (Not the network: while a second thread that has run
    torch is alive, torch in this one was measured 40 % slower.)
    """
    side_by_side = side_by_side and len(hole_slices) > 1
    pixels = np.flatnonzero(holes)
    n_cols = values.shape[1]
    # Every hole pixel belongs to one hole, whose kriging writes it.
    fill, variance = np.empty(pixels.size), np.empty(pixels.size)
    # Hundreds of small solves: a multi-threaded BLAS beside torch's threads only
    # oversubscribes the cores (measured 2x slower on 2 cores), so BLAS gets one thread.
    with _thread_pools().limit(limits=1, user_api="blas"), ThreadPoolExecutor(1) as pool:
        if side_by_side:
            biharmonic_job = pool.submit(_biharmonic_values, values, pixels, labels,
                                         usable=trusted)
        for rows, cols, prediction, prediction_variance in _krige_holes(
                values, trusted, labels, hole_slices, fwhm_pixels=fwhm_pixels):
            where = np.searchsorted(pixels, rows * n_cols + cols)
            fill[where], variance[where] = prediction, prediction_variance
        if side_by_side:
            biharmonic = biharmonic_job.result()
        else:
            biharmonic = _biharmonic_values(values, pixels, labels, usable=trusted)
    return _HoleFills(pixels, n_cols, fill, variance, biharmonic)


def _cut_tiles(array, placements, fill_value):
    """The tiles of ``array`` at ``placements`` (one shape), stacked, padded with ``fill_value``."""
    rows, cols = placements[0][2:]
    tiles = np.full((len(placements), rows, cols), fill_value, dtype=array.dtype)
    for tile, (row0, col0, _, _) in zip(tiles, placements, strict=True):
        top, left = max(row0, 0), max(col0, 0)
        bottom, right = min(row0 + rows, array.shape[0]), min(col0 + cols, array.shape[1])
        if bottom > top and right > left:
            tile[top - row0 : bottom - row0, left - col0 : right - col0] = array[top:bottom,
                                                                                 left:right]
    return tiles


def _inpaint_batch(batch, model, device, arrays, fills, background, background_error,
                   calibration, precision):
    """
    Run the network on one batch of same-shape tiles and write the holes back.

    The tiles are stacked and prepared together. Returns the number of
    holes whose classical fill was kept because the network's inputs or
    outputs were not finite.
    """
    placements = [placement for _, placement in batch]
    tiles = {name: _cut_tiles(array, placements, np.nan if array.dtype.kind == "f" else False)
             for name, array in arrays.items()}
    tiles.update(fills.tiles(tiles["holes"], placements))
    # The map as the network sees it: data where trusted, the kriging fill in the holes.
    tiles["filled"] = np.where(tiles["holes"], tiles.pop("fill"),
                               np.where(tiles["trusted"], tiles.pop("values"), np.nan))
    tiles["error"] = np.sqrt(tiles.pop("variance"))
    tiles["usable"] = tiles["trusted"] | (tiles["holes"] & np.isfinite(tiles["filled"]))
    holes, scalings = [], []
    for (component, placement), filled, error, trusted in zip(
            batch, tiles["filled"], tiles["error"], tiles["trusted"], strict=True):
        rows, cols = np.nonzero(component)
        classical = (filled[rows, cols], error[rows, cols])
        holes.append(((rows, cols), (rows + placement[0], cols + placement[1]), classical))
        scalings.append(tile_scaling(filled, trusted))

    def write(map_pixels, hole_background, hole_error):
        background[map_pixels] = hole_background
        # Hole pixels with no data around them could not be filled: they stay invalid.
        background_error[map_pixels] = np.where(np.isnan(hole_background), np.nan, hole_error)

    def keep_classical(index):
        _, map_pixels, classical = holes[index]
        write(map_pixels, *classical)

    # Nothing to normalise by (flat or empty surroundings): the classical fill is kept.
    for index in np.flatnonzero([scaling is None for scaling in scalings]):
        keep_classical(index)
    jobs = np.flatnonzero([scaling is not None for scaling in scalings])
    if not jobs.size:
        return 0
    tiles = {name: tile[jobs] for name, tile in tiles.items()}
    scaling = TileScaling(np.array([scalings[index].offset for index in jobs])[:, None, None],
                          np.array([scalings[index].scale for index in jobs])[:, None, None])
    # Pixels over 1e38 times the tile's spread from its median overflow float32: such a
    # tile keeps its classical fill (counted, and reported by the caller).
    with np.errstate(over="ignore"):
        inputs, coverage = network_inputs(tiles["filled"], tiles["holes"], tiles["error"],
                                          tiles["biharmonic"], tiles["usable"], scaling)
    finite = np.isfinite(inputs).all(axis=(1, 2, 3))
    for index in jobs[~finite]:
        keep_classical(index)
    n_not_finite = int(np.count_nonzero(~finite))
    if not finite.any():
        return n_not_finite
    jobs = jobs[finite]
    tiles = {name: tile[finite] for name, tile in tiles.items()}
    scaling = TileScaling(scaling.offset[finite], scaling.scale[finite])
    # Only the holes' pixels are kept: the network computes the box around all of the
    # batch's holes (tiles of one shape are centred on their holes, so the boxes nearly agree).
    hole_pixels = [holes[index][0] for index in jobs]
    top = min(int(rows.min()) for rows, _ in hole_pixels)
    left = min(int(cols.min()) for _, cols in hole_pixels)
    region = (slice(top, max(int(rows.max()) for rows, _ in hole_pixels) + 1),
              slice(left, max(int(cols.max()) for _, cols in hole_pixels) + 1))
    autocast = (torch.autocast(device.type, dtype=PRECISIONS[precision])
                if PRECISIONS[precision] is not None else contextlib.nullcontext())
    with autocast:
        outputs = model(torch.from_numpy(inputs[finite]).to(device),
                        torch.from_numpy(coverage[finite]).to(device), region=region)
    region_background, region_error = network_outputs(
        outputs.float().cpu().numpy(), tiles["filled"][:, region[0], region[1]],
        tiles["error"][:, region[0], region[1]], scaling, sigma_calibration=calibration,
    )
    for tile_index, index in enumerate(jobs):
        (rows, cols), map_pixels, classical = holes[index]
        hole_background = region_background[tile_index, rows - top, cols - left]
        hole_error = region_error[tile_index, rows - top, cols - left]
        fillable = np.isfinite(tiles["filled"][tile_index, rows, cols])
        if not (np.isfinite(hole_background[fillable]).all()
                and np.isfinite(hole_error[fillable]).all()):
            hole_background, hole_error = classical
            n_not_finite += 1
        write(map_pixels, hole_background, hole_error)
    return n_not_finite


def check_engine_settings(*, batch_size: int | None = None,
                          n_threads: int | None = None) -> None:
    """
    Refuse a batch size or thread count the engine cannot use.

    Parameters
    ----------
    batch_size, n_threads : int or None
        Tiles per forward pass and CPU threads; None leaves the default.

    Raises
    ------
    ValueError
        If either is given and is not a positive whole number.

    Examples
    --------
    >>> check_engine_settings(batch_size=0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be a positive number of tiles, got 0.
    """
    for name, value, what in (("batch_size", batch_size, "tiles"),
                              ("n_threads", n_threads, "threads")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{name} must be a positive number of {what}, got {value!r}.")


def inpaint_map(
    data: np.ndarray,
    hole_mask: np.ndarray,
    coverage: np.ndarray | None,
    fwhm_pixels: float,
    *,
    model: torch.nn.Module | None = None,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    tile_size: int | None = None,
    precision: str = "float32",
    n_threads: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """
    Inpaint the holes of a map with the classical fill corrected by the network.

    Parameters
    ----------
    data : `~numpy.ndarray`
        2-D map; NaN where there is no data.
    hole_mask : `~numpy.ndarray`
        2-D bool, True for pixels to inpaint.
    coverage : `~numpy.ndarray` or None
        2-D bool, True where the map has data; None means the finite pixels.
        Hole pixels outside the coverage are not inpainted: they keep their
        input value, like the pixels outside the holes.
    fwhm_pixels : float
        Beam FWHM in pixels.
    model : `~nemesis_bkg.model.PConvUNet`, optional
        The network; the bundled weights when None. It is run in eval mode
        on ``device`` and given back in the mode and on the device it had.
    device : str or `torch.device`, optional
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    batch_size : int, optional
        Most tiles per forward pass (the tiles of one shape are split into
        equal batches); by default 24 on a CPU and, on a GPU, as many as a
        quarter of its free memory holds (`default_batch_size`).
    tile_size : int, optional
        Smallest tile side, rounded up to a multiple of the network's
        downsampling factor; by default the tile size the model was trained
        on (its ``tile_size`` metadata). Larger holes get larger tiles.
    precision : {"float32", "bfloat16", "float16"}, optional
        The network's arithmetic: single precision, or mixed precision
        (`torch.autocast`), faster on GPUs; ``"float16"`` needs a GPU.
        Mixed precision changes the background by a small fraction of its
        uncertainty (measured in ``tests/test_engine.py``).
    n_threads : int, optional
        CPU threads for the network (`torch.set_num_threads`, restored
        afterwards); torch's setting when None. With more than one, the
        biharmonic fill is computed in a second thread beside the kriging.
    progress : bool, optional
        Show a progress bar over the batches.

    Returns
    -------
    background : `~numpy.ndarray`
        The map with its holes inpainted, of the dtype of ``data`` (float64
        for integer maps); identical to ``data`` outside them. Holes with
        no data around them stay NaN.
    background_error : `~numpy.ndarray`
        1-sigma uncertainty of ``background``: 0 outside the holes, NaN
        where a hole could not be filled.

    Raises
    ------
    ValueError
        If the arrays' shapes, ``fwhm_pixels`` or an option is invalid.
    TypeError
        If ``data`` is complex.

    Warns
    -----
    UserWarning
        If ``fwhm_pixels`` is outside the sampling range the network was
        trained on.
    RuntimeWarning
        If the network's inputs or outputs were not finite for some holes
        (values beyond float32's range relative to the map around them);
        those holes keep their classical fill.

    Examples
    --------
    >>> import numpy as np
    >>> from nemesis_bkg.model import PConvUNet
    >>> rng = np.random.default_rng(1)
    >>> data = rng.normal(size=(64, 64))
    >>> holes = np.zeros(data.shape, bool)
    >>> holes[30:34, 30:34] = True
    >>> background, error = inpaint_map(data, holes, None, 3.0,
    ...                                 model=PConvUNet(channels=(8, 16)), device="cpu")
    >>> bool(np.array_equal(background[~holes], data[~holes]))
    True
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"data must be a 2-D map, got shape {data.shape}")
    if np.iscomplexobj(data):
        raise TypeError("data must be real; give the real part or the modulus explicitly")
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(float)
    hole_mask = np.asarray(hole_mask, dtype=bool)
    if hole_mask.shape != data.shape:
        raise ValueError(f"hole_mask shape {hole_mask.shape} differs from data {data.shape}")
    coverage = np.isfinite(data) if coverage is None else np.asarray(coverage, dtype=bool)
    if coverage.shape != data.shape:
        raise ValueError(f"coverage shape {coverage.shape} differs from data {data.shape}")
    if not (np.isfinite(fwhm_pixels) and fwhm_pixels > 0):
        raise ValueError(f"fwhm_pixels must be a positive number, got {fwhm_pixels}")
    if tile_size is not None and tile_size <= 0:
        raise ValueError(f"tile_size must be a positive number of pixels, got {tile_size}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, not {precision!r}")
    check_engine_settings(batch_size=batch_size, n_threads=n_threads)
    target = resolve_device(device)
    if precision == "float16" and target.type != "cuda":
        raise ValueError("precision='float16' needs a CUDA device; use 'bfloat16' on a CPU")
    if model is None:
        model = load_model(device=target)

    holes = hole_mask & coverage
    trusted = coverage & np.isfinite(data) & ~holes
    background = data.copy()
    background_error = np.zeros(data.shape, dtype=float)
    if not holes.any():
        return background, background_error
    # The fills read the trusted pixels only (in native float64): no masked copy of the map.
    values = data.astype(float, copy=False)
    # Maps of huge or tiny values are worked on divided by a power of two (exact), so that
    # no square or variance of the fills overflows or underflows. The extremes of every
    # finite value are found first (cheap): only where they call for it are those of the
    # trusted pixels, which the fills use, found and the map rescaled.
    exponent = power_of_two_exponent(values)
    if exponent:
        values = np.where(trusted, values, np.nan)
        exponent = power_of_two_exponent(values)
        if exponent:
            values = np.ldexp(values, -exponent)
    labels, hole_slices = _label_holes(holes)
    metadata = getattr(model, "metadata", {})
    if "fwhm_pixels_range" in metadata:
        low, high = (float(value) for value in metadata["fwhm_pixels_range"].split(","))
        if not low <= fwhm_pixels <= high:
            warnings.warn(
                f"the beam FWHM ({fwhm_pixels:.2f} pixels) is outside the range the network "
                f"was trained on ({low:g} to {high:g} pixels); resample the map into that "
                "range for the best results",
                UserWarning,
                stacklevel=2,
            )
    if tile_size is None:
        tile_size = int(metadata.get("tile_size", 64))
    calibration = float(metadata.get("sigma_calibration", 1.0))
    multiple = model.downsampling_factor
    margin = max(tile_size // 4, int(np.ceil(2 * fwhm_pixels)))
    tiles = _hole_tiles(labels, hole_slices, tile_size=tile_size, multiple=multiple,
                        margin=margin)
    # Tiles of one shape go through the network together; inputs are built batch by batch
    # so that memory stays bounded on maps with many holes.
    groups = {}
    for tile in tiles:
        groups.setdefault(tile[1][2:], []).append(tile)
    batches = []
    for (rows, cols), group in groups.items():
        size = batch_size or default_batch_size(target, model, rows * cols)
        # As few batches as the size allows, of equal sizes: no small last batch.
        bounds = np.linspace(0, len(group), -(-len(group) // size) + 1).round().astype(int)
        batches += [group[start:stop] for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]
    # Maps worked on in power-of-two units are written back once all tiles are done; the
    # others straight into the result (every hole pixel is written by its tile).
    if exponent:
        inpainted, inpainted_error = np.full(data.shape, np.nan), np.zeros(data.shape)
    else:
        inpainted, inpainted_error = background, background_error
    arrays = {"values": values, "holes": holes, "trusted": trusted}
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(batches), desc="inpainting", unit="batch")
    else:
        bar = contextlib.nullcontext()
    fills = _classical_fills(values, holes, trusted, labels, hole_slices,
                             fwhm_pixels=fwhm_pixels,
                             side_by_side=(n_threads or torch.get_num_threads()) > 1)
    n_not_finite = 0
    # The network is moved and switched to eval mode outside inference mode: parameters
    # moved inside it would become inference tensors that can no longer be trained.
    with bar, _evaluating(model, target), torch.inference_mode(), _torch_threads(n_threads):
        for batch in batches:
            n_not_finite += _inpaint_batch(batch, model, target, arrays, fills, inpainted,
                                           inpainted_error, calibration, precision)
            if progress:
                bar.update()
    if n_not_finite:
        warnings.warn(
            f"the network's inputs or outputs were not finite for {n_not_finite} hole(s) "
            "(values far beyond the spread of the map around them); their classical fill "
            "was kept",
            RuntimeWarning,
            stacklevel=2,
        )
    if exponent:
        background[holes] = np.ldexp(inpainted[holes], exponent)
        background_error[holes] = np.ldexp(inpainted_error[holes], exponent)
    return background, background_error
