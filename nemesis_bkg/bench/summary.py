"""
Summaries of the per-map benchmark figures: per hole set and method, by
regime and band, the best peer on each metric and our ratio to it, and the
design note's reference case next to the figures measured there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from . import metrics

__all__ = ["DESIGN_REFERENCE", "HEADLINE_MIN_SNR", "band_averaged_ratios", "best_peers",
           "summarize"]

#: Sources with at least this true peak SNR make the headline flux figures.
HEADLINE_MIN_SNR = 10.0

#: In-hole RMS error (units of the background's std) measured for the
#: design note on its reference case.
DESIGN_REFERENCE = {
    "background2d": 0.455,
    "background2d_masked": 0.523,
    "sep": 0.445,
    "interpolate_replace_nans": 0.216,
    "maskfill": 0.207,
    "inpaint_biharmonic": 0.177,
}

#: metric -> how to rank it: "lower" (smaller is better), "abs" (smaller
#: magnitude is better) or "calibration" (closest to 0.683 is better).
RANKED_METRICS = {
    "in_hole_rms_over_noise": "lower",
    "flux_bias": "abs",
    "flux_scatter": "lower",
    "calibration_fraction": "calibration",
    "seconds_per_megapixel": "lower",
    "seconds_per_source": "lower",
    "peak_memory_mb": "lower",
}

#: The metrics a photometry-only method (no background map) is ranked on.
FLUX_METRICS = ("flux_bias", "flux_scatter")

_GAUSSIAN_ONE_SIGMA = 0.6827


def _group(map_entry: dict, key: str) -> str:
    """The map's ``key`` (band or regime); the real-background maps are a group of their own."""
    return "real" if map_entry["family"] == "real" else map_entry[key]


def _median(values: Iterable[float | None]) -> float | None:
    finite = [value for value in values if value is not None and np.isfinite(value)]
    return float(np.median(finite)) if finite else None


def _pooled_flux(entries: list[tuple[dict, dict, dict]]) -> dict:
    errors, snr = [], []
    for map_entry, hole_entry, method_entry in entries:
        values = method_entry.get("flux_relative_error")
        if values is None:
            continue
        masked = np.asarray(hole_entry["source_masked"], dtype=bool)
        values = np.array([np.nan if value is None else value for value in values])
        errors.append(values[masked])
        snr.append(np.asarray(map_entry["peak_snr"], dtype=float)[masked])
    if not errors:
        return {"flux_bias": None, "flux_scatter": None, "flux_n_sources": 0, "flux_by_snr": []}
    errors, snr = np.concatenate(errors), np.concatenate(snr)
    headline = errors[(snr >= HEADLINE_MIN_SNR) & np.isfinite(errors)]
    return {
        "flux_bias": float(np.median(headline)) if headline.size else None,
        "flux_scatter": metrics.robust_scatter(headline) if headline.size else None,
        "flux_n_sources": int(headline.size),
        "flux_by_snr": metrics.error_statistics_by_snr(errors, snr),
    }


def _method_summary(entries: list[tuple[dict, dict, dict]]) -> dict:
    ok = [triple for triple in entries if not triple[2].get("error")]
    by_regime, by_band = defaultdict(list), defaultdict(list)
    for map_entry, _, entry in ok:
        if "in_hole_rms_over_noise" in entry:
            by_regime[_group(map_entry, "regime")].append(entry["in_hole_rms_over_noise"])
            by_band[_group(map_entry, "band")].append(entry["in_hole_rms_over_noise"])
    timed = [(map_entry, entry) for map_entry, _, entry in ok if "seconds" in entry]
    seconds = sum(entry["seconds"] for _, entry in timed)
    megapixels = sum(map_entry["megapixels"] for map_entry, _ in timed)
    n_sources = sum(
        entry["seconds"] / entry["seconds_per_source"]
        for _, entry in timed
        if entry.get("seconds_per_source")
    )
    memory = [entry["peak_memory_mb"] for _, entry in timed]
    memory = [value for value in memory if value is not None]
    regime_flux = {}
    for regime in sorted({_group(triple[0], "regime") for triple in ok}):
        pooled = _pooled_flux([triple for triple in ok if _group(triple[0], "regime") == regime])
        regime_flux[regime] = {key: pooled[key] for key in ("flux_bias", "flux_scatter")}
    summary = {
        "n_maps": len(entries),
        "n_failed": len(entries) - len(ok),
        "failures": [
            f"{map_entry['name']}: {entry['error']}"
            for map_entry, _, entry in entries
            if entry.get("error")
        ],
        "in_hole_rms_over_noise": _median(entry.get("in_hole_rms_over_noise") for *_, entry in ok),
        "in_hole_rms_over_noise_by_regime": {
            key: _median(values) for key, values in sorted(by_regime.items())
        },
        "in_hole_rms_over_noise_by_band": {
            key: _median(values) for key, values in sorted(by_band.items())
        },
        "calibration_fraction": _median(entry.get("calibration_fraction") for *_, entry in ok),
        "flux_calibration_fraction": _median(
            entry.get("flux_calibration_fraction") for *_, entry in ok
        ),
        "seconds_per_megapixel": seconds / megapixels if timed and megapixels else None,
        "seconds_per_source": seconds / n_sources if n_sources else None,
        "peak_memory_mb": max(memory) if memory else None,
        "flux_by_regime": regime_flux,
    }
    summary.update(_pooled_flux(ok))
    return summary


def _completeness(maps: list[dict], hole_set: str) -> list[dict]:
    masked, snr = [], []
    for map_entry in maps:
        masked.append(np.asarray(map_entry["holes"][hole_set]["source_masked"], dtype=bool))
        snr.append(np.asarray(map_entry["peak_snr"], dtype=float))
    if not masked:
        return []
    masked, snr = np.concatenate(masked), np.concatenate(snr)
    bins = []
    for low, high in zip(metrics.SNR_BIN_EDGES[:-1], metrics.SNR_BIN_EDGES[1:], strict=True):
        in_bin = (snr >= low) & (snr < high)
        bins.append({
            "snr_min": float(low),
            "snr_max": float(high),
            "n": int(in_bin.sum()),
            "fraction_masked": float(masked[in_bin].mean()) if in_bin.any() else None,
        })
    return bins


def _score(value: float, how: str) -> float:
    if how == "abs":
        return abs(value)
    if how == "calibration":
        return abs(value - _GAUSSIAN_ONE_SIGMA)
    return value


def best_peers(
    method_summaries: dict[str, dict],
    *,
    ours: str,
    exclude: Iterable[str] = (),
    photometry_only: Iterable[str] = (),
) -> dict:
    """
    The best peer on each ranked metric, and our ratio to it.

    Parameters
    ----------
    method_summaries : dict
        Method name -> its summary (metric name -> value or None).
    ours : str
        Name of our method (never a peer).
    exclude : iterable of str, optional
        Other names that are not peers (e.g. the true background).
    photometry_only : iterable of str, optional
        Peers that give fluxes but no background map: ranked on
        `FLUX_METRICS` only (their time and memory are not a background's).

    Returns
    -------
    dict
        Metric -> ``{"method", "value", "ours", "ratio"}``; ``method`` is
        None when no peer has the metric, ``ratio`` (ours / best, in
        magnitude for the flux bias) is None when either side is missing.

    Examples
    --------
    >>> from nemesis_bkg.bench.summary import best_peers
    >>> summaries = {"a": {"in_hole_rms_over_noise": 4.0}, "b": {"in_hole_rms_over_noise": 2.0},
    ...              "ours": {"in_hole_rms_over_noise": 1.0}}
    >>> best_peers(summaries, ours="ours")["in_hole_rms_over_noise"]
    {'method': 'b', 'value': 2.0, 'ours': 1.0, 'ratio': 0.5}
    """
    excluded = {ours, *exclude}
    photometry_only = set(photometry_only)
    ours_summary = method_summaries.get(ours, {})
    best = {}
    for metric, how in RANKED_METRICS.items():
        candidates = [
            (name, summary[metric])
            for name, summary in method_summaries.items()
            if name not in excluded
            and summary.get(metric) is not None
            and (metric in FLUX_METRICS or name not in photometry_only)
        ]
        entry = {"method": None, "value": None, "ours": ours_summary.get(metric), "ratio": None}
        if candidates:
            name, value = min(candidates, key=lambda item: _score(item[1], how))
            entry.update(method=name, value=value)
            our_value = entry["ours"]
            if our_value is not None and _score(value, how) > 0:
                entry["ratio"] = _score(our_value, how) / _score(value, how)
        best[metric] = entry
    return best


def band_averaged_ratios(maps: list[dict], hole_set: str, *, ours: str,
                         peers: Iterable[str]) -> dict:
    """
    In-hole RMS error averaged per group of maps, and our ratio to each peer.

    The groups are the simulated maps of each band and the real-background
    maps together; each group's figure is the mean over its maps of the
    in-hole RMS / noise. The issue's accuracy targets are averaged this way
    "over the six bands and over the real-background maps". Our ratio to a
    peer in a group compares the two on the same maps: those where both have
    a figure (a map where one of them failed counts for neither).

    Parameters
    ----------
    maps : list of dict
        Per-map entries of a benchmark run (suite maps only).
    hole_set : str
    ours : str
    peers : iterable of str
        Background methods to compare with.

    Returns
    -------
    dict
        ``groups``: group -> ``{"n_maps", "rms": {method: mean}}`` (each
        method's mean over the maps where it has a figure);
        ``ratios``: peer -> ``{"per_group": {group: ours / peer},
        "n_maps": {group: maps compared}, "mean_of_ratios",
        "ratio_of_means"}`` (the mean over groups of the per-group ratios,
        and the ratio of the means over groups).

    Examples
    --------
    >>> rms = lambda value: {"in_hole_rms_over_noise": value}
    >>> entry = lambda family, band, a, b: {"family": family, "band": band, "holes": {"true": {
    ...     "methods": {"ours": rms(a), "peer": rms(b)}}}}
    >>> maps = [entry("simulated", "pacs70", 1.0, 2.0), entry("real", "pacs70", 3.0, 3.0)]
    >>> ratios = band_averaged_ratios(maps, "true", ours="ours", peers=["peer"])["ratios"]["peer"]
    >>> ratios["per_group"], ratios["mean_of_ratios"], ratios["ratio_of_means"]
    ({'pacs70': 0.5, 'real': 1.0}, 0.75, 0.8)
    """
    # group -> one {method: in-hole RMS / noise} per map
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    for map_entry in maps:
        methods = map_entry["holes"].get(hole_set, {}).get("methods")
        if methods is None:
            continue
        # A map where this hole set has no hole (nothing detected) has no figure.
        row = {
            name: entry["in_hole_rms_over_noise"]
            for name, entry in methods.items()
            if entry.get("in_hole_rms_over_noise") is not None
            and np.isfinite(entry["in_hole_rms_over_noise"])
            and not entry.get("error")
        }
        if row:
            rows[_group(map_entry, "band")].append(row)
    groups = {}
    for group, group_rows in sorted(rows.items()):
        names = dict.fromkeys(name for row in group_rows for name in row)
        groups[group] = {
            "n_maps": len(group_rows),
            "rms": {name: float(np.mean([row[name] for row in group_rows if name in row]))
                    for name in names},
        }
    ratios = {}
    for peer in peers:
        paired = {}
        for group, group_rows in sorted(rows.items()):
            shared = [row for row in group_rows if ours in row and peer in row]
            if shared and np.mean([row[peer] for row in shared]) > 0:
                paired[group] = (float(np.mean([row[ours] for row in shared])),
                                 float(np.mean([row[peer] for row in shared])), len(shared))
        if not paired:
            continue
        per_group = {group: ours_mean / peer_mean
                     for group, (ours_mean, peer_mean, _) in paired.items()}
        ratios[peer] = {
            "per_group": per_group,
            "n_maps": {group: count for group, (*_, count) in paired.items()},
            "mean_of_ratios": float(np.mean(list(per_group.values()))),
            "ratio_of_means": float(np.mean([value[0] for value in paired.values()])
                                    / np.mean([value[1] for value in paired.values()])),
        }
    return {"groups": groups, "ratios": ratios}


def _reference_summary(maps: list[dict]) -> dict:
    per_method = defaultdict(list)
    for map_entry in maps:
        for name, entry in map_entry["holes"]["true"]["methods"].items():
            if entry.get("in_hole_rms_over_noise") is not None and not entry.get("error"):
                # The reference background has unit std: rms/noise * noise is in its units.
                per_method[name].append(entry["in_hole_rms_over_noise"] * map_entry["noise_std"])
    return {
        "n_seeds": len(maps),
        "noise_std": _median(map_entry["noise_std"] for map_entry in maps),
        "in_hole_rms": {name: float(np.mean(values)) for name, values in per_method.items()},
        "design_note": dict(DESIGN_REFERENCE),
    }


def summarize(
    maps: list[dict],
    *,
    ours: str,
    exclude: Iterable[str] = (),
    photometry_only: Iterable[str] = (),
) -> dict:
    """
    Summarise the per-map entries of a benchmark run.

    Parameters
    ----------
    maps : list of dict
        The ``maps`` entries of `~nemesis_bkg.bench.run_benchmark`.
    ours : str
        Name of our method.
    exclude : iterable of str, optional
        Names that are not peers.
    photometry_only : iterable of str, optional
        Peers ranked on the flux metrics only (see `best_peers`).

    Returns
    -------
    dict
        Per hole set (simulated and real maps): ``methods`` (name -> its
        summary; flux figures over the sources in a hole, the same for
        every method), ``band_averaged`` (see `band_averaged_ratios`),
        ``best_peer`` (see `best_peers`), the masking
        figures and the fraction of sources in a hole per SNR bin; ``reference``: the
        design note's case, mean in-hole RMS over seeds in units of the
        background's std, next to the note's figures. The masking figures
        (filaments, spurious holes) count simulated maps only.
    """
    exclude, photometry_only = tuple(exclude), tuple(photometry_only)
    suite_maps = [entry for entry in maps if entry["family"] != "reference"]
    summary: dict = {}
    hole_sets = sorted({name for entry in suite_maps for name in entry["holes"]})
    for hole_set in hole_sets:
        by_method = defaultdict(list)
        for map_entry in suite_maps:
            hole_entry = map_entry["holes"].get(hole_set)
            if hole_entry is None or "error" in hole_entry:
                continue
            for name, entry in hole_entry["methods"].items():
                by_method[name].append((map_entry, hole_entry, entry))
        method_summaries = {name: _method_summary(entries) for name, entries in by_method.items()}
        # Real maps hold real compact sources of their own: their holes
        # without an injected source are not spurious, so only simulated maps count.
        simulated = [
            map_entry
            for map_entry in suite_maps
            if "methods" in map_entry["holes"].get(hole_set, {})
            and map_entry["family"] == "simulated"
        ]
        masking = [map_entry["holes"][hole_set]["masking"] for map_entry in simulated]
        peers = [name for name in method_summaries
                 if name != ours and name not in exclude and name not in photometry_only]
        summary[hole_set] = {
            "methods": method_summaries,
            "band_averaged": band_averaged_ratios(suite_maps, hole_set, ours=ours, peers=peers),
            "best_peer": best_peers(
                method_summaries, ours=ours, exclude=exclude, photometry_only=photometry_only
            ),
            "filament_masked_fraction": _median(
                entry["filament_masked_fraction"] for entry in masking
            ),
            "n_spurious_holes": sum(entry["n_spurious_holes"] for entry in masking),
            "n_spurious_on_filament": sum(entry["n_spurious_on_filament"] for entry in masking),
            "n_holes": sum(entry["n_holes"] for entry in masking),
            "completeness_by_snr": _completeness(simulated, hole_set),
            "masking_failures": [
                f"{map_entry['name']}: {map_entry['holes'][hole_set]['error']}"
                for map_entry in suite_maps
                if "error" in map_entry["holes"].get(hole_set, {})
            ],
        }
    reference_maps = [entry for entry in maps if entry["family"] == "reference"]
    if reference_maps:
        summary["reference"] = _reference_summary(reference_maps)
    return summary
