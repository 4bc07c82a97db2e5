"""
A PNG preview of a simulated map: the observed map and the true background
side by side, on the same colour scale.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np

from ..io import check_output_path, publish_file
from .maps import SimulatedMap

__all__ = ["plot_preview"]


def plot_preview(
    sim: SimulatedMap, path: str | os.PathLike, *, overwrite: bool = False, dpi: int = 100
) -> Path:
    """
    Save a PNG with the simulated map and its true background side by side.

    Both panels share one colour scale (0.5 to 99.5 percentiles of the
    map); the injected sources are circled on the map. Uses matplotlib's
    Agg canvas, so no display is needed and pyplot's state is untouched.
    The image is written to a temporary name and renamed into place, so a
    failure never leaves half a file.

    Parameters
    ----------
    sim : `~nemesis_bkg.simulate.SimulatedMap`
    path : str or path-like
        Output file; PNG unless its suffix names another format matplotlib
        writes (e.g. ``.pdf``).
    overwrite : bool, optional
        Replace an existing file.
    dpi : int, optional
        Resolution of the PNG.

    Returns
    -------
    `~pathlib.Path`

    Raises
    ------
    TypeError
        If ``sim`` is not a `~nemesis_bkg.simulate.SimulatedMap`.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the folder of ``path`` does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from nemesis_bkg.simulate import plot_preview, simulate_map
    >>> sim = simulate_map((64, 64), n_sources=2, seed=0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     plot_preview(sim, pathlib.Path(folder) / "sim.png").suffix
    '.png'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(sim, SimulatedMap):
        raise TypeError(
            f"sim must be a SimulatedMap (from simulate_map), got {type(sim).__name__}."
        )
    path = Path(path)
    check_output_path(path, overwrite=overwrite)
    observed = np.asarray(sim.data.data)
    low, high = np.nanpercentile(observed, [0.5, 99.5])
    unit = sim.data.unit.to_string() if sim.data.unit is not None else ""

    figure = Figure(figsize=(11, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharex=True, sharey=True)
    for ax, image, title in (
        (axes[0], observed, f"simulated {sim.instrument.name} map ({sim.regime})"),
        (axes[1], sim.background, "true background"),
    ):
        shown = ax.imshow(image, origin="lower", cmap="inferno", vmin=low, vmax=high)
        ax.set_title(title)
        ax.set_xlabel("x [pix]")
    axes[0].set_ylabel("y [pix]")
    axes[0].scatter(
        sim.catalog["x"],
        sim.catalog["y"],
        s=40,
        facecolors="none",
        edgecolors="cyan",
        linewidths=0.6,
    )
    figure.colorbar(shown, ax=axes, shrink=0.8, label=unit)
    temporary = path.with_name(f".nemesis-{uuid.uuid4().hex}{path.suffix}.part")
    try:
        figure.savefig(temporary, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png")
        publish_file(temporary, path, overwrite=overwrite)
    finally:
        temporary.unlink(missing_ok=True)
    return path
