"""The masking benchmark's verdict: targets judged on the pooled figures, worst set shown."""

import math

from nemesis_bkg.bench.masks import TARGETS, format_mask_report, mask_verdict


def _summary(**changes):
    summary = {
        "n_maps": 1, "n_holes": 10,
        "completeness_snr5": 0.5, "completeness_snr10": 0.6,
        "completeness_local_snr5": 0.97, "completeness_local_snr10": 1.0,
        "leftover_ok_fraction": 0.9, "leftover_ok_own_hole_fraction": 1.0,
        "leftover_ok_local_snr5_fraction": 0.995,
        "hole_without_source_fraction": 0.0, "false_hole_fraction": 0.0,
        "filament_masked_fraction": 0.01, "filament_masked_perfect_fraction": 0.05,
        "filament_masked_excess_fraction": 0.001, "masked_pixel_fraction": 0.02,
    }
    return summary | changes


def _results(overall, by_regime, seconds=1.0):
    return {"targets": dict(TARGETS), "overall": overall, "by_regime": by_regime,
            "timing": {"best_seconds": seconds, "median_seconds": seconds, "shape": [2048, 2048],
                       "n_sources": 500, "n_catalog": 120},
            "maps": []}


def test_verdict_fails_a_missed_target_and_names_the_worst_set():
    by_regime = {"cirrus": _summary(), "confusion": _summary(completeness_local_snr5=0.9)}
    rows = mask_verdict(_results(_summary(completeness_local_snr5=0.94), by_regime, seconds=4.0))
    completeness, *_, timing = rows
    assert not completeness["met"]
    assert completeness["worst_set"] == "confusion" and math.isclose(completeness["worst"], 0.9)
    assert not timing["met"]
    assert all(row["met"] for row in rows[1:-1])


def test_verdict_ignores_the_gaussian_rule_on_a_non_gaussian_beam():
    # The realistic beam with Gaussian holes is reported, but the psf holes are what is judged.
    by_regime = {"cirrus": _summary(),
                 "realistic-beam": _summary(leftover_ok_local_snr5_fraction=0.05),
                 "realistic-beam, psf holes": _summary(leftover_ok_local_snr5_fraction=0.992)}
    leftover = mask_verdict(_results(_summary(), by_regime))[2]
    assert leftover["worst_set"] == "realistic-beam, psf holes"
    report = format_mask_report(_results(_summary(), by_regime))
    assert "only 5.0% of the masked sources pass" in report


def test_verdict_survives_a_json_round_trip_of_missing_figures():
    by_regime = {"cirrus": _summary(), "real": _summary(filament_masked_fraction=None)}
    filament = mask_verdict(_results(_summary(), by_regime))[4]
    assert filament["worst_set"] == "cirrus" and filament["met"]
