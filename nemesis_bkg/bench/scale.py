"""
Scaling: many files on a Dask cluster, mosaics in chunks, and the peak
memory of an 8192x8192 mosaic.

- files: `~nemesis_bkg.parallel.remove_files` over several small simulated
  maps on a `distributed.LocalCluster` of 1 and 2 worker processes (one
  thread each, PyTorch and BLAS limited to one thread per worker);
- mosaic: `~nemesis_bkg.parallel.remove_mosaic` against the in-memory
  removal of the same map: both times and the largest relative difference
  of the background, its error, the noise map and the hole mask;
- memory: an 8192x8192 float32 FITS mosaic (a simulated map tiled, so that
  the map itself is never in memory) written through the mosaic path in a
  fresh process, with its tracemalloc peak and its growth of resident
  memory (all of it, and the anonymous part alone: the pages of the
  memory-mapped input count as resident while they are cached).
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ..parallel import remove_files, remove_mosaic
from ..parallel.mosaic import CHUNK_SIZE
from ..parallel.mosaic_fits import MosaicFitsWriter
from ..remover import CompactSourceRemover
from ..simulate import simulate_map, write_simulated_map

__all__ = ["format_scale_report", "relative_difference", "run_scale_benchmark",
           "write_tiled_mosaic"]


def relative_difference(chunked: np.ndarray, whole: np.ndarray, valid: np.ndarray) -> float:
    """
    ``max |chunked - whole| / max |whole|`` over the ``valid`` pixels.

    Examples
    --------
    >>> import numpy as np
    >>> relative_difference(np.array([1.0, 2.1]), np.array([1.0, 2.0]), np.array([True, True]))
    0.05
    """
    scale = float(np.max(np.abs(whole[valid]))) if valid.any() else 0.0
    difference = float(np.max(np.abs(chunked - whole)[valid])) if valid.any() else 0.0
    return round(difference / scale, 12) if scale > 0 else difference


def _single_threaded() -> None:
    """Run on each worker: one PyTorch and one BLAS thread (the worker is one core)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def _time_files(paths: list[Path], out_dir: Path, n_workers: int, warm_up: Path,
                device: str) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    with (LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                       dashboard_address=None) as cluster,
          Client(cluster) as client):
        client.run(_single_threaded)
        # One-time costs (imports, loading the network) on every worker, untimed.
        for index in range(n_workers):
            remove_files([warm_up], out_dir / f"warm-up-{index}", client=client, device=device,
                         progress=False)
        start = time.perf_counter()
        table = remove_files(paths, out_dir / f"workers-{n_workers}", client=client,
                             device=device, progress=False)
        seconds = time.perf_counter() - start
    megapixels = sum(fits.getval(path, "NAXIS1") * fits.getval(path, "NAXIS2")
                     for path in paths) / 1e6
    return {"n_workers": n_workers, "seconds": seconds, "files_per_second": len(paths) / seconds,
            "megapixels_per_second": megapixels / seconds,
            "n_done": int((table["status"] == "done").sum())}


def _compare_mosaic(size: int, chunk_size: int, instrument: str, seed: int,
                    device: str) -> dict[str, Any]:
    import dask

    sim = simulate_map((size, size), instrument=instrument, n_sources=size * size // 5000,
                       seed=seed)
    data = np.asarray(sim.data.data, dtype=float)
    remover = CompactSourceRemover(beam_fwhm=sim.fwhm_pixels, device=device)
    remover.remove(data[:128, :128])  # warm-up, untimed
    start = time.perf_counter()
    whole = remover.remove(data)
    whole_seconds = time.perf_counter() - start
    start = time.perf_counter()
    mosaic = remove_mosaic(data, remover=remover, chunk_size=chunk_size)
    background, error, noise, holes = dask.compute(
        mosaic.background.data, mosaic.background_error, mosaic.background_rms,
        mosaic.source_mask, scheduler="synchronous")
    mosaic_seconds = time.perf_counter() - start
    valid = np.isfinite(data)
    return {
        "shape": [size, size], "instrument": instrument, "fwhm_pixels": sim.fwhm_pixels,
        "chunk_size": chunk_size, "halo": mosaic.halo,
        "n_chunks": int(np.prod(mosaic.source_mask.numblocks)),
        "whole_seconds": whole_seconds, "mosaic_seconds": mosaic_seconds,
        "mosaic_megapixels_per_second": size * size / 1e6 / mosaic_seconds,
        "background_difference": relative_difference(background, whole.background.data, valid),
        "error_difference": relative_difference(error, whole.background_error, valid),
        "noise_difference": relative_difference(noise, whole.background_rms, valid),
        "mask_differences": int((holes != whole.source_mask).sum()),
        "n_hole_pixels": int(whole.source_mask.sum()),
    }


def write_tiled_mosaic(path: str | Path, *, size: int = 8192, tile: int = 2048,
                       instrument: str = "spire250", seed: int = 0) -> Path:
    """
    Write a ``size`` x ``size`` float32 FITS map made of one simulated map tiled.

    Only one tile is ever in memory.

    Parameters
    ----------
    path : str or path-like
    size : int, optional
        Side of the mosaic (a multiple of ``tile``).
    tile : int, optional
        Side of the simulated map.
    instrument : str, optional
    seed : int, optional

    Returns
    -------
    `~pathlib.Path`

    Examples
    --------
    >>> import tempfile, os
    >>> from astropy.io import fits
    >>> path = os.path.join(tempfile.mkdtemp(), "tiled.fits")
    >>> fits.getdata(write_tiled_mosaic(path, size=128, tile=64), "MAP").shape
    (128, 128)
    """
    if size % tile:
        raise ValueError(f"size ({size}) must be a multiple of tile ({tile}).")
    sim = simulate_map((tile, tile), instrument=instrument, n_sources=tile * tile // 5000,
                       seed=seed, nan_border=False)
    header = sim.data.wcs.to_header()
    for key in ("INSTRUME", "WAVELNTH", "TELESCOP", "BUNIT"):
        if key in sim.data.meta:
            header[key] = sim.data.meta[key]
    tile_data = np.asarray(sim.data.data, dtype=np.float32)
    with MosaicFitsWriter(path, (size, size), [("MAP", np.float32, header)],
                          fits.Header()) as writer:
        for row in range(0, size, tile):
            for col in range(0, size, tile):
                writer.write_block("MAP", (row, col), tile_data)
        writer.finish(fits.BinTableHDU(name="EMPTY"))
    return Path(path)


def _resident_megabytes(field: str = "VmRSS") -> float:
    """A resident-memory figure of this process from /proc/self/status (Linux), MB."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024


class _AnonymousPeak:
    """Largest anonymous resident memory (RssAnon) seen while running, sampled."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval, self.peak = interval, _resident_megabytes("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _resident_megabytes("RssAnon"))

    def __enter__(self) -> _AnonymousPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def _mosaic_memory(path: str, output: str, chunk_size: int, device: str) -> dict[str, Any]:
    """In a fresh process: write the mosaic, measuring memory above the loaded baseline."""
    import torch

    torch.set_num_threads(1)
    remover = CompactSourceRemover(device=device)
    remover.remove(simulate_map((128, 128), instrument="spire250", n_sources=3, seed=0).data)
    baseline, baseline_anonymous = _resident_megabytes(), _resident_megabytes("RssAnon")
    # Peak resident memory from here on: Linux resets it on writing 5 to clear_refs.
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    tracemalloc.start()
    start = time.perf_counter()
    with _AnonymousPeak() as anonymous:
        result = remove_mosaic(path, remover=remover, chunk_size=chunk_size)
        result.write(output, chunks_at_once=1, scheduler="synchronous")
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_resident = _resident_megabytes("VmHWM")
    return {"seconds": seconds, "tracemalloc_peak_mb": peak / 2**20,
            "baseline_rss_mb": baseline, "peak_rss_mb": peak_resident,
            "rss_growth_mb": peak_resident - baseline,
            "anonymous_growth_mb": anonymous.peak - baseline_anonymous, "halo": result.halo,
            "n_sources": len(result.catalog)}


def _measure_memory(size: int, chunk_size: int, seed: int, device: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = write_tiled_mosaic(Path(folder) / "mosaic.fits", size=size, seed=seed)
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            figures = pool.apply(_mosaic_memory, (str(path), str(Path(folder) / "out.fits"),
                                                  chunk_size, device))
    map_megabytes = size * size * 4 / 2**20
    figures.update({"shape": [size, size], "chunk_size": chunk_size,
                    "map_mb": map_megabytes,
                    "rss_growth_over_map": figures["rss_growth_mb"] / map_megabytes,
                    "anonymous_growth_over_map": figures["anonymous_growth_mb"] / map_megabytes,
                    "tracemalloc_over_map": figures["tracemalloc_peak_mb"] / map_megabytes})
    return figures


def run_scale_benchmark(*, quick: bool = False, seed: int = 0,
                        device: str = "cpu") -> dict[str, Any]:
    """
    Throughput of many files and of mosaics, mosaic-vs-memory agreement, peak memory.

    Parameters
    ----------
    quick : bool, optional
        4 files of 256x256 and a 768x768 mosaic in chunks of 256, no
        8192x8192 memory run (about a minute); otherwise 8 files of
        512x512, a 2048x2048 mosaic in chunks of 1024 and the memory run
        in chunks of ``CHUNK_SIZE`` (about ten minutes on 2 cores).
    seed : int, optional
    device : str, optional

    Returns
    -------
    dict
        ``files`` (one entry per worker count: seconds, files and
        megapixels per second), ``mosaic`` (times, halo, relative
        differences) and ``memory`` (None with ``quick``).
    """
    n_files, file_size = (4, 256) if quick else (8, 512)
    results: dict[str, Any] = {"quick": quick, "device": device, "n_files": n_files,
                               "file_shape": [file_size, file_size]}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        bands = ("pacs70", "pacs160", "spire250", "spire350")
        paths = [write_simulated_map(
            simulate_map((file_size, file_size), instrument=bands[index % len(bands)],
                         n_sources=file_size * file_size // 5000, seed=seed + index),
            folder / f"map{index}.fits") for index in range(n_files)]
        warm_up = write_simulated_map(simulate_map((96, 96), instrument="pacs160", n_sources=2,
                                                   seed=seed), folder / "warm.fits")
        results["files"] = [_time_files(paths, folder, n_workers, warm_up, device)
                            for n_workers in (1, 2)]
    size, chunk = (768, 256) if quick else (2048, 1024)
    results["mosaic"] = _compare_mosaic(size, chunk, "spire250", seed, device)
    results["memory"] = None if quick else _measure_memory(8192, CHUNK_SIZE, seed, device)
    return results


def format_scale_report(results: dict[str, Any]) -> str:
    """
    The scaling figures as Markdown.

    Examples
    --------
    >>> report = format_scale_report({"quick": True, "device": "cpu", "n_files": 2,
    ...     "file_shape": [64, 64], "files": [{"n_workers": 1, "seconds": 2.0,
    ...     "files_per_second": 1.0, "megapixels_per_second": 0.004, "n_done": 2}],
    ...     "mosaic": {"shape": [64, 64], "instrument": "pacs70", "fwhm_pixels": 3.5,
    ...     "chunk_size": 32, "halo": 300, "n_chunks": 4, "whole_seconds": 1.0,
    ...     "mosaic_seconds": 4.0, "mosaic_megapixels_per_second": 0.001,
    ...     "background_difference": 0.0, "error_difference": 0.0, "noise_difference": 0.0,
    ...     "mask_differences": 0, "n_hole_pixels": 10}, "memory": None})
    >>> print(report.splitlines()[0])
    ## Scaling (device cpu)
    """
    files, mosaic, memory = results["files"], results["mosaic"], results["memory"]
    ny, nx = results["file_shape"]
    lines = [
        f"## Scaling (device {results['device']})",
        "",
        f"### {results['n_files']} files of {ny}x{nx} on a LocalCluster "
        "(processes, 1 thread per worker)",
        "",
        "| workers | seconds | files/s | megapixels/s | done |",
        "|---|---|---|---|---|",
        *(f"| {row['n_workers']} | {row['seconds']:.1f} | {row['files_per_second']:.2f} | "
          f"{row['megapixels_per_second']:.3f} | {row['n_done']} |" for row in files),
        "",
        f"### Mosaic: {mosaic['shape'][0]}x{mosaic['shape'][1]} {mosaic['instrument']} map "
        f"(beam {mosaic['fwhm_pixels']:.2f} px), {mosaic['n_chunks']} chunks of "
        f"{mosaic['chunk_size']}, halo {mosaic['halo']} px",
        "",
        "| figure | value |",
        "|---|---|",
        f"| in memory | {mosaic['whole_seconds']:.1f} s |",
        f"| mosaic path (one chunk at a time) | {mosaic['mosaic_seconds']:.1f} s "
        f"({mosaic['mosaic_megapixels_per_second']:.3f} megapixels/s) |",
        f"| background: max relative difference | {mosaic['background_difference']:.2e} |",
        f"| background error: max relative difference | {mosaic['error_difference']:.2e} |",
        f"| noise map: max relative difference | {mosaic['noise_difference']:.2e} |",
        f"| hole-mask pixels that differ | {mosaic['mask_differences']} of "
        f"{mosaic['n_hole_pixels']} |",
    ]
    if memory is not None:
        lines += [
            "",
            f"### Memory: {memory['shape'][0]}x{memory['shape'][1]} float32 FITS mosaic "
            f"({memory['map_mb']:.0f} MB), chunks of {memory['chunk_size']}, halo "
            f"{memory['halo']} px",
            "",
            "| figure | value |",
            "|---|---|",
            f"| time (read, remove, write the FITS) | {memory['seconds']:.0f} s |",
            f"| tracemalloc peak | {memory['tracemalloc_peak_mb']:.0f} MB "
            f"({memory['tracemalloc_over_map']:.2f} x the map) |",
            f"| resident memory growth, memory-mapped input pages included | "
            f"{memory['rss_growth_mb']:.0f} MB ({memory['rss_growth_over_map']:.2f} x the map) |",
            f"| anonymous resident memory growth (sampled) | "
            f"{memory['anonymous_growth_mb']:.0f} MB "
            f"({memory['anonymous_growth_over_map']:.2f} x the map) |",
            f"| sources | {memory['n_sources']} |",
        ]
    return "\n".join(lines)
