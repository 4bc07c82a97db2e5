"""
Many files at once: each map is removed in its own task, on a
`dask.distributed` cluster when a client is given, here otherwise.

A failing file is reported and skipped, never stops the others and never
leaves a partial output (outputs are written to a temporary file and
renamed); files whose output already exists are skipped, so an interrupted
run is resumed by running it again.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astropy.table import Table

__all__ = ["FileOutcome", "output_path_for", "remove_files"]


@dataclass(frozen=True)
class FileOutcome:
    """
    What happened to one input file.

    Attributes
    ----------
    input : str
    output : str
    status : str
        ``"done"``, ``"skipped"`` (output already there) or ``"failed"``.
    message : str
        The error for a failed file, a summary otherwise.
    n_sources : int
        Sources removed (0 when not done).
    seconds : float
        Wall time of the removal.
    """

    input: str
    output: str
    status: str
    message: str
    n_sources: int = 0
    seconds: float = 0.0


def output_path_for(input_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """
    The output of ``input_path`` in ``out_dir``: ``<name>_nemesis.fits``.

    Examples
    --------
    >>> output_path_for("maps/field_250.fits", "out").as_posix()
    'out/field_250_nemesis.fits'
    """
    name = Path(input_path).name
    for suffix in (".fits.gz", ".fits", ".fit", ".fts"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return Path(out_dir) / f"{name}_nemesis.fits"


def _remove_one(input_path: str, output_path: str, remover_kwargs: dict[str, Any],
                overwrite: bool) -> FileOutcome:
    # Imported in the worker, so a task carries only paths and keywords.
    from ..io import read_fits
    from ..remover import CompactSourceRemover

    start = time.perf_counter()
    try:
        result = CompactSourceRemover(**remover_kwargs).remove(read_fits(input_path))
        result.write(output_path, overwrite=overwrite)
    except Exception as exc:  # a broken file must not stop the others: report it
        return FileOutcome(input_path, output_path, "failed", f"{type(exc).__name__}: {exc}",
                           seconds=time.perf_counter() - start)
    return FileOutcome(input_path, output_path, "done",
                       f"{len(result.catalog)} source{'' if len(result.catalog) == 1 else 's'} "
                       "removed", len(result.catalog),
                       time.perf_counter() - start)


def remove_files(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    client: Any = None,
    overwrite: bool = False,
    progress: bool = True,
    **remover_kwargs: Any,
) -> Table:
    """
    Remove the compact sources of many FITS maps.

    Parameters
    ----------
    paths : iterable of str or path-like
        Input FITS maps.
    out_dir : str or path-like
        Folder for the outputs (created if needed); each input gives
        ``<name>_nemesis.fits`` (see `output_path_for`).
    client : `dask.distributed.Client`, optional
        Run one task per file on this cluster; without one, files are
        processed one after the other in this process.
    overwrite : bool, optional
        Redo files whose output exists. By default they are skipped, which
        resumes an interrupted run.
    progress : bool, optional
        Show a progress bar.
    **remover_kwargs
        Passed to `~nemesis_bkg.CompactSourceRemover` (``instrument``,
        ``beam_fwhm``, ``snr_threshold``, ``device``, ...).

    Returns
    -------
    `~astropy.table.Table`
        One row per input: ``input``, ``output``, ``status``, ``message``,
        ``n_sources``, ``seconds``.

    Examples
    --------
    >>> import tempfile
    >>> from nemesis_bkg.parallel import remove_files
    >>> with tempfile.TemporaryDirectory() as out_dir:
    ...     table = remove_files([], out_dir, progress=False)
    >>> table.colnames
    ['input', 'output', 'status', 'message', 'n_sources', 'seconds']
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(os.fspath(path), os.fspath(output_path_for(path, out_dir))) for path in paths]
    outputs = [output for _, output in jobs]
    if len(set(outputs)) != len(outputs):
        raise ValueError("two inputs have the same file name, so their outputs would collide; "
                         "rename them or process them into different folders.")

    outcomes: dict[str, FileOutcome] = {}
    to_run = []
    for input_path, output_path in jobs:
        if os.path.exists(output_path) and not overwrite:
            outcomes[input_path] = FileOutcome(input_path, output_path, "skipped",
                                               "output exists (overwrite=True to redo it)")
        else:
            to_run.append((input_path, output_path))

    bar = tqdm(total=len(to_run), disable=not progress, unit="file")
    if client is None:
        for input_path, output_path in to_run:
            outcomes[input_path] = _remove_one(input_path, output_path, remover_kwargs, overwrite)
            bar.update()
    else:
        from distributed import as_completed

        # Keys unique to this call: a cluster hands back the result it holds for a known key.
        run_id = uuid.uuid4().hex

        futures = [
            client.submit(_remove_one, input_path, output_path, remover_kwargs, overwrite,
                          pure=False, key=f"nemesis-remove-{index}-{run_id}")
            for index, (input_path, output_path) in enumerate(to_run)
        ]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes[outcome.input] = outcome
            bar.update()
    bar.close()

    ordered = [outcomes[input_path] for input_path, _ in jobs]
    return Table(
        rows=[(o.input, o.output, o.status, o.message, o.n_sources, o.seconds) for o in ordered],
        names=("input", "output", "status", "message", "n_sources", "seconds"),
        dtype=(str, str, str, str, int, float),
    )
