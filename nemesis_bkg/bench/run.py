"""
Run the benchmark: every method on every map of the suite, on the same holes.

`run_benchmark` builds the suite, cuts the holes, calls each method under
`~nemesis_bkg.bench.metrics.measure_call`, measures the sources on the
data minus each background, and gathers every figure in one dictionary
(JSON-ready) with a summary per hole set and the best peer per metric.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import time
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from . import metrics
from .holes import HOLE_SETS, HoleSet, make_holes
from .methods import MESH_METHODS, MethodResult, available_peers, load_ours
from .photometry import (
    annulus_fluxes,
    aperture_fluxes,
    aperture_noise_errors,
    measurable_sources,
)
from .suite import BenchMap, iter_suite, suite_specs
from .summary import summarize

__all__ = ["ANNULUS", "OURS", "TRUTH", "run_benchmark", "score_map"]

log = logging.getLogger(__name__)

#: Name of our method in every table.
OURS = "ours"
#: The true background: the floor of the photometry, not a competitor.
TRUTH = "truth"
#: The paper's "standard" annulus photometry (no background map).
ANNULUS = "annulus"

#: Side of the crops kept for the data / background / residual panels.
PANEL_SIDE = 192


def _rounded(values: np.ndarray, digits: int = 5) -> list[float | None]:
    return [None if not np.isfinite(value) else float(f"{value:.{digits}g}") for value in values]


def _map_entry(bench_map: BenchMap, measurable: np.ndarray) -> dict:
    spec = bench_map.spec
    covered = bench_map.true_background[bench_map.coverage]
    return {
        "name": spec.name,
        "family": spec.family,
        "band": spec.band,
        "regime": spec.regime,
        "shape": list(bench_map.image.shape),
        "seed": spec.seed,
        "background_path": None if spec.background_path is None else spec.background_path.name,
        "fwhm_pixels": bench_map.fwhm_pixels,
        "noise_std": bench_map.noise_std,
        "background_std_over_noise": float(np.std(covered) / bench_map.noise_std),
        "megapixels": bench_map.image.size / 1e6,
        "n_sources": len(bench_map.catalog),
        "n_measurable": int(measurable.sum()),
        "n_excluded_at_edge": int((~measurable).sum()),
        "peak_snr": _rounded(np.asarray(bench_map.catalog["peak_snr"], dtype=float)[measurable]),
        "holes": {},
    }


def _score_background(
    bench_map: BenchMap,
    hole_mask: np.ndarray,
    result: MethodResult,
    positions: tuple[np.ndarray, np.ndarray],
    true_flux: np.ndarray,
    source_masked: np.ndarray,
) -> dict:
    holes = hole_mask & bench_map.coverage
    background = np.asarray(result.background, dtype=float)
    if background.shape != bench_map.image.shape:
        raise ValueError(
            f"the method returned a background of shape {background.shape}, "
            f"not {bench_map.image.shape}."
        )
    flux = aperture_fluxes(bench_map.image - background, *positions, bench_map.fwhm_pixels)
    entry = {
        "in_hole_rms_over_noise": metrics.in_hole_rms_error(
            background, bench_map.true_background, holes, bench_map.noise_std
        ),
        "nonfinite_in_holes": int(np.count_nonzero(~np.isfinite(background[holes]))),
        "flux_relative_error": _rounded(metrics.relative_flux_error(flux, true_flux)),
        "calibration_fraction": None,
        "flux_calibration_fraction": None,
    }
    if result.error is not None:
        error_map = np.asarray(result.error, dtype=float)
        entry["calibration_fraction"] = metrics.calibration_fraction(
            (background - bench_map.true_background)[holes], error_map[holes]
        )
        # The background error taken as fully correlated within the aperture (it
        # is, within one hole), plus the map's noise (correlated stripes included)
        # on the aperture pixels where the residual keeps it: outside its holes an
        # inpainter returns the data, noise and all, and leaves a zero residual.
        background_flux_error = aperture_fluxes(error_map, *positions, bench_map.fwhm_pixels)
        kept = bench_map.coverage & (background != bench_map.image)
        noise_flux_error = aperture_noise_errors(
            bench_map.noise, kept, *positions, bench_map.fwhm_pixels,
            noise_std=bench_map.noise_std,
        )
        sigma = np.hypot(background_flux_error, noise_flux_error)
        entry["flux_calibration_fraction"] = metrics.calibration_fraction(
            (flux - true_flux)[source_masked], sigma[source_masked]
        )
    return entry


def _with_cost(entry: dict, measurement: metrics.Measurement, megapixels: float, n_sources: int):
    entry.update(
        seconds=measurement.seconds,
        seconds_per_megapixel=measurement.seconds / megapixels,
        seconds_per_source=measurement.seconds / n_sources if n_sources else None,
        peak_memory_mb=measurement.peak_memory_mb,
        error=measurement.error,
    )
    return entry


def _panel_window(hole_mask: np.ndarray) -> tuple[slice, slice]:
    """The `PANEL_SIDE` square holding the most hole pixels: the panel shows holes."""
    side = min(PANEL_SIDE, *hole_mask.shape)
    density = ndimage.uniform_filter(hole_mask.astype(np.float32), size=side, mode="constant")
    centre = np.unravel_index(np.argmax(density), density.shape)
    starts = [
        int(np.clip(position - side // 2, 0, size - side))
        for position, size in zip(centre, hole_mask.shape, strict=True)
    ]
    return slice(starts[0], starts[0] + side), slice(starts[1], starts[1] + side)


def _crop(array: np.ndarray, window: tuple[slice, slice]) -> np.ndarray:
    return np.array(array[window], dtype=np.float32)


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view: a method that writes into its inputs fails instead of changing them."""
    view = array.view()
    view.flags.writeable = False
    return view


def _sources_in_holes(hole_mask: np.ndarray, positions: tuple[np.ndarray, np.ndarray]):
    rows = np.clip(np.round(positions[1]).astype(int), 0, hole_mask.shape[0] - 1)
    columns = np.clip(np.round(positions[0]).astype(int), 0, hole_mask.shape[1] - 1)
    return hole_mask[rows, columns]


def _score_methods(
    bench_map: BenchMap,
    holes: HoleSet,
    methods: dict[str, Callable[..., MethodResult]],
    truth: tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray],
    panel: dict | None,
) -> dict:
    """Score each method on one hole set; ``truth`` is (positions, true flux, in-hole flags)."""
    scores = {TRUTH: _score_background(
        bench_map, holes.mask, MethodResult(bench_map.true_background), *truth
    )}
    megapixels = bench_map.image.size / 1e6
    for method_name, method in methods.items():
        log.debug("%s / %s holes / %s", bench_map.spec.name, holes.name, method_name)
        call = method
        if bench_map.mesh_box_size is not None and method_name in MESH_METHODS:
            call = functools.partial(method, box_size=bench_map.mesh_box_size)
        # Every method gets the same arrays, read-only, so none can change them for the next.
        measurement = metrics.measure_call(
            call,
            _read_only(bench_map.image),
            _read_only(holes.mask),
            _read_only(bench_map.coverage),
            bench_map.fwhm_pixels,
        )
        entry: dict = {}
        if measurement.error is None:
            try:
                entry = _score_background(bench_map, holes.mask, measurement.value, *truth)
            except ValueError as exc:
                measurement.error = f"ValueError: {exc}"
            else:
                # The in-hole RMS leaves non-finite pixels out: a method that leaves
                # holes unfilled has failed on this map, it must not score better.
                if entry["nonfinite_in_holes"]:
                    measurement.error = (
                        f"left {entry['nonfinite_in_holes']} covered hole pixels non-finite"
                    )
        if panel is not None and measurement.error is None:
            panel["backgrounds"][method_name] = _crop(
                measurement.value.background, panel["window"]
            )
        scores[method_name] = _with_cost(entry, measurement, megapixels, holes.n_sources)
    return scores


def score_map(
    bench_map: BenchMap,
    methods: dict[str, Callable[..., MethodResult]],
    *,
    hole_sets: tuple[str, ...] = HOLE_SETS,
    panel: dict | None = None,
) -> dict:
    """
    Score every method on one map, for each hole set.

    Parameters
    ----------
    bench_map : `~nemesis_bkg.bench.suite.BenchMap`
    methods : dict
        Name -> ``method(data, hole_mask, coverage, fwhm_pixels)``.
    hole_sets : tuple of str, optional
        Which of `~nemesis_bkg.bench.holes.HOLE_SETS` to run.
    panel : dict, optional
        When given, filled with crops of the data, the true background, the
        holes and each method's background for the first hole set (for the
        plots), in the square of `PANEL_SIDE` pixels that holds the most
        hole pixels.

    Returns
    -------
    dict
        The map's entry of the benchmark results: map facts, then per hole
        set the masking figures (with which measurable sources are in a
        hole) and, per method, the in-hole error, the relative flux error of
        every measurable source, calibration, time and memory, and the
        ``error`` message of a method that failed: it raised, returned a
        background of the wrong shape, or left covered hole pixels
        non-finite (its figures are then kept but left out of the
        summaries). A hole set the masking fails on holds only its ``error``.

    Examples
    --------
    >>> from nemesis_bkg.bench.methods import inpaint_biharmonic
    >>> from nemesis_bkg.bench.run import score_map
    >>> from nemesis_bkg.bench.suite import MapSpec, reference_map
    >>> spec = MapSpec("small", "reference", "generic", "reference", (128, 128), 6, 1)
    >>> entry = score_map(reference_map(spec), {"inpaint_biharmonic": inpaint_biharmonic},
    ...                   hole_sets=("true",))
    >>> sorted(entry["holes"]["true"]["methods"])
    ['annulus', 'inpaint_biharmonic', 'truth']
    >>> entry["holes"]["true"]["methods"]["truth"]["in_hole_rms_over_noise"]
    0.0
    """
    catalog = bench_map.catalog
    x, y = np.asarray(catalog["x"], dtype=float), np.asarray(catalog["y"], dtype=float)
    measurable = measurable_sources(x, y, bench_map.fwhm_pixels, bench_map.coverage)
    positions = (x[measurable], y[measurable])
    true_flux = np.asarray(catalog["flux"], dtype=float)[measurable]
    entry = _map_entry(bench_map, measurable)

    # The annulus photometry needs no holes: measured once, listed in each hole set.
    annulus = metrics.measure_call(
        annulus_fluxes, _read_only(bench_map.image), *positions, bench_map.fwhm_pixels
    )
    annulus_entry = {}
    if annulus.error is None:
        errors = metrics.relative_flux_error(annulus.value, true_flux)
        annulus_entry = {"flux_relative_error": _rounded(errors)}
    annulus_entry = _with_cost(annulus_entry, annulus, entry["megapixels"], len(true_flux))

    for hole_name in hole_sets:
        try:
            holes = make_holes(bench_map, hole_name)
        except Exception as exc:  # a masking failure on one map is a result, not a crash
            message = f"{type(exc).__name__}: {exc}"
            log.warning("%s: %s holes failed: %s", bench_map.spec.name, hole_name, message)
            entry["holes"][hole_name] = {"error": message}
            continue
        source_masked = _sources_in_holes(holes.mask, positions)
        first = panel is not None and hole_name == hole_sets[0]
        if first:
            window = _panel_window(holes.mask)
            panel.update(
                name=bench_map.spec.name,
                window=window,
                data=_crop(bench_map.image, window),
                true_background=_crop(bench_map.true_background, window),
                holes=_crop(holes.mask, window),
                backgrounds={},
            )
        scores = _score_methods(
            bench_map,
            holes,
            methods,
            (positions, true_flux, source_masked),
            panel if first else None,
        )
        scores[ANNULUS] = dict(annulus_entry)
        entry["holes"][hole_name] = {
            "n_masked_sources": holes.n_sources,
            "source_masked": source_masked.tolist(),
            "hole_pixel_fraction": float(holes.mask[bench_map.coverage].mean()),
            "masking_seconds": holes.seconds,
            "masking": metrics.filament_masking(holes.mask, bench_map.filament_mask, x, y),
            "methods": scores,
        }
    return entry


def _environment() -> dict:
    import astropy
    import photutils

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "astropy": astropy.__version__,
        "photutils": photutils.__version__,
    }


def run_benchmark(
    *,
    quick: bool = False,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    holes: str = "both",
    real_maps: bool = True,
    methods: dict[str, Callable[..., MethodResult]] | None = None,
) -> dict:
    """
    Score ours and every peer on the fixed suite, on the same maps and holes.

    Parameters
    ----------
    quick : bool, optional
        One small simulated map per band (about a minute on 2 cores),
        instead of the full suite (6 bands x 3 regimes up to 2048x2048, the
        real maps with injected sources and the design note's reference
        case).
    out : str or path-like, optional
        Folder for ``bench.json``, ``bench.md`` and the PNG plots (created;
        files in it are replaced). Nothing is written when None.
    seed : int, optional
        Seed of the suite; the same seed gives the same maps and holes.
    holes : {"both", "detected", "true"}, optional
        Hole sets to run: from the masking module's detections, at the true
        positions, or both.
    real_maps : bool, optional
        Use the real maps of ``../shared/data/real_maps`` when present.
    methods : dict, optional
        Name -> method, replacing the peers and ours (for tests and
        experiments).

    Returns
    -------
    dict
        ``config``, ``environment``, ``methods`` (name -> available or the
        reason it is not), ``skipped`` (messages), ``maps`` (one entry per
        map, see `score_map`), ``summary`` (per hole set and method, with
        the best peer per metric and our ratio to it), ``total_seconds``.

    Examples
    --------
    >>> from nemesis_bkg.bench import run_benchmark
    >>> results = run_benchmark(quick=True)  # doctest: +SKIP
    >>> results["summary"]["detected"]["best_peer"]["in_hole_rms_over_noise"]  # doctest: +SKIP
    {'method': 'inpaint_biharmonic', 'value': ..., 'ours': ..., 'ratio': ...}
    """
    if holes not in ("both", *HOLE_SETS):
        raise ValueError(f"holes must be 'both', 'detected' or 'true', not {holes!r}.")
    hole_sets = HOLE_SETS if holes == "both" else (holes,)
    start = time.perf_counter()
    results: dict = {
        "config": {"quick": quick, "seed": seed, "holes": list(hole_sets), "real_maps": real_maps},
        "environment": _environment(),
        "methods": {},
        "skipped": [],
        "maps": [],
    }
    if methods is None:
        methods, missing = available_peers()
        ours, reason = load_ours()
        if ours is None:
            missing = {OURS: reason, **missing}
        else:
            methods = {OURS: ours, **methods}
        for name, why in missing.items():
            results["skipped"].append(f"{name}: not available ({why})")
            results["methods"][name] = f"not available ({why})"
    results["methods"].update({name: "available" for name in methods})

    paths = []
    if real_maps and not quick:
        from .suite import real_background_paths

        paths = real_background_paths()
        if not paths:
            results["skipped"].append(
                "real maps: ../shared/data/real_maps is absent; only simulated maps were run"
            )
    for message in results["skipped"]:
        log.warning("skipped: %s", message)

    specs = suite_specs(quick=quick, seed=seed, real_maps=paths)
    panels: dict[str, dict] = {}
    for index, bench_map in enumerate(iter_suite(specs), start=1):
        spec = bench_map.spec
        log.info("map %d/%d: %s", index, len(specs), spec.name)
        panel = None
        if spec.family == "simulated" and spec.band not in panels:
            panel = panels[spec.band] = {}
        map_holes = hole_sets if spec.family != "reference" else ("true",)
        results["maps"].append(score_map(bench_map, methods, hole_sets=map_holes, panel=panel))

    results["summary"] = summarize(
        results["maps"], ours=OURS, exclude=(TRUTH,), photometry_only=(ANNULUS,)
    )
    results["environment"]["load_average_at_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    results["total_seconds"] = time.perf_counter() - start
    if out is not None:
        from .report import write_report

        results["files"] = write_report(results, out, panels=panels)
    return results
