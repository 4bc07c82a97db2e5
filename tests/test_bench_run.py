"""The benchmark run, summary and report, end to end on small maps."""

import json
import sys
import types

import numpy as np
import pytest

from nemesis_bkg.bench import command, methods
from nemesis_bkg.bench.methods import MethodResult
from nemesis_bkg.bench.report import format_report, to_json, write_report
from nemesis_bkg.bench.run import ANNULUS, TRUTH, score_map
from nemesis_bkg.bench.suite import MapSpec, reference_map, suite_specs
from nemesis_bkg.bench.summary import best_peers, summarize

OFFSET = 0.1


@pytest.fixture(scope="module")
def small_map():
    spec = MapSpec("reference-small", "reference", "generic", "reference", (160, 160), 12, 7)
    return reference_map(spec)


@pytest.fixture(scope="module")
def scored(small_map):
    truth = small_map.true_background

    def offset_with_error(data, hole_mask, coverage, fwhm_pixels):
        # Off by a constant inside the holes, with a claimed error of twice that.
        background = np.where(hole_mask, truth + OFFSET, data)
        return MethodResult(background, np.where(hole_mask, 2 * OFFSET, 0.0))

    def broken(data, hole_mask, coverage, fwhm_pixels):
        raise RuntimeError("no model")

    chosen = {
        "ours": offset_with_error,
        "background2d": methods.background2d,
        "inpaint_biharmonic": methods.inpaint_biharmonic,
        "broken": broken,
    }
    panel = {}
    entry = score_map(small_map, chosen, hole_sets=("true",), panel=panel)
    return entry, panel


def test_score_map_known_answers(scored, small_map):
    entry, _ = scored
    assert entry["n_sources"] == 12
    scores = entry["holes"]["true"]["methods"]
    assert scores[TRUTH]["in_hole_rms_over_noise"] == 0.0
    assert scores["ours"]["in_hole_rms_over_noise"] == pytest.approx(OFFSET / small_map.noise_std)
    assert scores["ours"]["calibration_fraction"] == 1.0
    assert (
        scores["background2d"]["in_hole_rms_over_noise"]
        > (scores["inpaint_biharmonic"]["in_hole_rms_over_noise"])
    )
    assert scores["broken"]["error"] == "RuntimeError: no model"
    assert ANNULUS in scores and "flux_relative_error" in scores[ANNULUS]
    # The true background leaves only the noise in the photometry of bright sources.
    truth_errors = np.array(scores[TRUTH]["flux_relative_error"], dtype=float)
    bright = np.array(entry["peak_snr"]) > 100
    assert np.all(np.abs(truth_errors[bright]) < 0.02)


def test_panel_holds_crops_of_each_method(scored):
    _, panel = scored
    assert {"ours", "background2d", "inpaint_biharmonic"} <= set(panel["backgrounds"])
    assert panel["data"].shape == panel["holes"].shape


def test_summary_names_best_peer_and_ratio(scored):
    entry, _ = scored
    summary = summarize([{**entry, "family": "simulated"}], ours="ours", exclude=(TRUTH,))
    best = summary["true"]["best_peer"]["in_hole_rms_over_noise"]
    assert best["method"] == "inpaint_biharmonic"
    assert best["ratio"] == pytest.approx(best["ours"] / best["value"])
    assert summary["true"]["methods"]["broken"]["n_failed"] == 1


def test_reference_summary_is_in_background_std_units(scored, small_map):
    entry, _ = scored
    summary = summarize([entry], ours="ours", exclude=(TRUTH,))
    assert summary["reference"]["in_hole_rms"]["ours"] == pytest.approx(OFFSET)
    assert "background2d" in summary["reference"]["design_note"]


def test_best_peers_rank_bias_by_magnitude_and_skip_missing():
    summaries = {
        "a": {"flux_bias": -0.02, "seconds_per_source": None},
        "b": {"flux_bias": 0.05, "seconds_per_source": 1.0},
        "ours": {"flux_bias": 0.01},
    }
    best = best_peers(summaries, ours="ours")
    assert best["flux_bias"]["method"] == "a"
    assert best["flux_bias"]["ratio"] == pytest.approx(0.5)
    assert best["seconds_per_source"] == {"method": "b", "value": 1.0, "ours": None, "ratio": None}
    assert best["calibration_fraction"]["method"] is None


def test_photometry_only_peers_compete_on_flux_only():
    summaries = {
        "annulus": {"flux_bias": 0.001, "seconds_per_source": 1e-5},
        "mesh": {"flux_bias": 0.05, "seconds_per_source": 1e-3},
    }
    best = best_peers(summaries, ours="ours", photometry_only=("annulus",))
    assert best["flux_bias"]["method"] == "annulus"
    assert best["seconds_per_source"]["method"] == "mesh"


def test_report_files(scored, tmp_path):
    entry, panel = scored
    results = {
        "config": {"quick": True, "seed": 0, "holes": ["true"], "real_maps": False},
        "environment": {"cpu_count": 2, "load_average_at_start": [0.0, 0.0, 0.0]},
        "methods": {"ours": "available"},
        "skipped": ["real maps: absent"],
        "maps": [{**entry, "family": "simulated"}],
        "total_seconds": 1.0,
    }
    results["summary"] = summarize(results["maps"], ours="ours", exclude=(TRUTH,))
    written = write_report(results, tmp_path, panels={"generic": panel})
    assert len(written["plots"]) == 2
    loaded = json.loads((tmp_path / "bench.json").read_text())
    assert loaded["summary"]["true"]["best_peer"]["in_hole_rms_over_noise"]["method"]
    markdown = (tmp_path / "bench.md").read_text()
    assert "| inpaint_biharmonic |" in markdown and "skipped: real maps: absent" in markdown
    assert format_report(results) == markdown


def test_json_has_no_nan():
    assert "NaN" not in to_json({"value": float("nan"), "nested": [np.float64("inf")]})


def test_suite_is_fixed_by_seed():
    assert suite_specs(seed=3) == suite_specs(seed=3)
    assert suite_specs(seed=3)[0].seed != suite_specs(seed=4)[0].seed
    full = suite_specs()
    assert {spec.band for spec in full if spec.family == "simulated"} == {
        "pacs70",
        "pacs100",
        "pacs160",
        "spire250",
        "spire350",
        "spire500",
    }
    sides = {spec.shape[0] for spec in full if spec.family == "simulated"}
    assert min(sides) == 512 and max(sides) == 2048


def test_bad_hole_set_is_rejected():
    from nemesis_bkg.bench import run_benchmark

    with pytest.raises(ValueError, match="holes must be"):
        run_benchmark(holes="guessed")


def test_masks_subcommand_calls_the_masking_benchmark(monkeypatch, tmp_path, capsys):
    calls = {}

    def run_mask_benchmark(*, quick=False, seed=0, real_maps=True):
        calls.update(quick=quick, seed=seed, real_maps=real_maps)
        return {"recall": 0.9}

    fake = types.ModuleType("nemesis_bkg.bench.masks")
    fake.run_mask_benchmark = run_mask_benchmark
    fake.format_mask_report = lambda results: f"recall {results['recall']}\n"
    monkeypatch.setitem(sys.modules, "nemesis_bkg.bench.masks", fake)
    parser = __import__("argparse").ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["masks", "--quick", "--seed", "4", "--out", str(tmp_path)])
    assert command.run(args) == 0
    assert calls == {"quick": True, "seed": 4, "real_maps": True}
    assert json.loads((tmp_path / "masks.json").read_text()) == {"recall": 0.9}
    assert "recall 0.9" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_benchmark_command(tmp_path, capsys):
    parser = __import__("argparse").ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--quick", "--out", str(tmp_path)])
    assert command.run(args) == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    assert len(results["maps"]) == 6
    assert {entry["band"] for entry in results["maps"]} == {
        "pacs70",
        "pacs100",
        "pacs160",
        "spire250",
        "spire350",
        "spire500",
    }
    for hole_set in ("detected", "true"):
        summary = results["summary"][hole_set]["methods"]
        assert (
            summary["inpaint_biharmonic"]["in_hole_rms_over_noise"]
            < (summary["background2d"]["in_hole_rms_over_noise"])
        )
    assert (tmp_path / "bench.md").exists()
    assert len(list(tmp_path.glob("panel_*.png"))) == 6
    assert "Best peer per metric" in capsys.readouterr().out


def test_flux_summary_uses_only_sources_in_holes():
    def map_entry(masked, errors):
        return {
            "name": "m", "family": "simulated", "band": "pacs70", "regime": "cirrus",
            "megapixels": 1.0, "peak_snr": [20.0, 30.0, 40.0],
            "holes": {"detected": {
                "source_masked": masked,
                "masking": {"filament_masked_fraction": 0.0, "n_holes": 2,
                            "n_spurious_holes": 0, "n_spurious_on_filament": 0},
                "methods": {"a": {"flux_relative_error": errors, "in_hole_rms_over_noise": 1.0}},
            }},
        }

    # The unmasked source's -100 % must not enter the figures.
    summary = summarize([map_entry([True, False, True], [0.1, -1.0, 0.3])], ours="ours")
    figures = summary["detected"]["methods"]["a"]
    assert figures["flux_bias"] == pytest.approx(0.2)
    assert figures["flux_n_sources"] == 2
    completeness = summary["detected"]["completeness_by_snr"]
    assert [b["fraction_masked"] for b in completeness if b["n"]] == [1.0, 0.5]


def test_masking_failure_is_recorded_not_raised(monkeypatch, small_map):
    import nemesis_bkg.bench.run as run_module

    def failing_holes(bench_map, name):
        raise IndexError("index 512 is out of bounds")

    monkeypatch.setattr(run_module, "make_holes", failing_holes)
    entry = score_map(small_map, {"background2d": methods.background2d}, hole_sets=("true",))
    assert entry["holes"]["true"] == {"error": "IndexError: index 512 is out of bounds"}
    summary = summarize([{**entry, "family": "simulated"}], ours="ours")
    assert summary["true"]["masking_failures"] == [
        "reference-small: IndexError: index 512 is out of bounds"
    ]


def test_speed_benchmark_smoke(tmp_path):
    from nemesis_bkg.bench.speed import format_speed_report, run_speed_benchmark

    results = run_speed_benchmark(shape=(192, 192), n_sources=8, seed=1)
    assert results["whole_seconds"] > 0 and results["per_source_seconds"] > 0
    assert results["speedup"] == pytest.approx(
        results["per_source_seconds"] / results["inpaint_seconds"])
    assert results["fill_seconds"] > 0
    assert results["speedup_ceiling"] == pytest.approx(
        results["per_source_seconds"] / results["fill_seconds"])
    assert results["speedup_paper"] == pytest.approx(
        results["paper_network_seconds"] / results["inpaint_seconds"])
    assert results["speedup_paper_whole"] == pytest.approx(
        results["paper_network_seconds"] / results["whole_seconds"])
    # The paper's encoder (eleven blocks of 32 to 512 channels) with our decoder.
    assert 15e6 < results["paper_network_parameters"] < 35e6
    report = format_speed_report(results)
    assert "ceiling" in report and "paper's size" in report


def test_method_leaving_hole_pixels_unfilled_is_a_failure(small_map):
    # The in-hole RMS leaves non-finite pixels out: a method that leaves some hole
    # pixels NaN must be recorded as failing on the map, not score on the rest.
    truth = small_map.true_background

    def leaves_a_nan(data, hole_mask, coverage, fwhm_pixels):
        background = np.where(hole_mask, truth, data)
        background[np.argwhere(hole_mask)[0][0], np.argwhere(hole_mask)[0][1]] = np.nan
        return MethodResult(background)

    entry = score_map(small_map, {"leaves_a_nan": leaves_a_nan}, hole_sets=("true",))
    scores = entry["holes"]["true"]["methods"]["leaves_a_nan"]
    assert scores["nonfinite_in_holes"] == 1
    assert scores["error"] == "left 1 covered hole pixels non-finite"
    summary = summarize([{**entry, "family": "simulated"}], ours="ours", exclude=(TRUTH,))
    figures = summary["true"]["methods"]["leaves_a_nan"]
    assert figures["n_failed"] == 1 and figures["in_hole_rms_over_noise"] is None


def test_a_method_cannot_change_the_inputs_of_the_next():
    spec = MapSpec("reference-tiny", "reference", "generic", "reference", (96, 96), 4, 11)
    bench_map = reference_map(spec)
    original = bench_map.image.copy()

    def writes_into_its_input(data, hole_mask, coverage, fwhm_pixels):
        data[hole_mask] = 0.0
        return MethodResult(np.array(data))

    entry = score_map(
        bench_map,
        {"vandal": writes_into_its_input, "background2d": methods.background2d},
        hole_sets=("true",),
    )
    scores = entry["holes"]["true"]["methods"]
    assert scores["vandal"]["error"].startswith("ValueError")
    assert scores["background2d"]["error"] is None
    np.testing.assert_array_equal(bench_map.image, original)


def test_flux_calibration_counts_correlated_noise():
    # Correlated noise (like the simulator's scan stripes) makes the noise of an
    # aperture sum several times the white-noise figure: a method that returns the
    # true background with no error of its own must still score about 0.683.
    from scipy import ndimage

    from nemesis_bkg.bench.suite import BenchMap

    shape, fwhm, peak_snr = (320, 320), 3.0, 20.0
    rng = np.random.default_rng(5)
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    noise /= noise.std()
    grid = np.arange(20.0, 301.0, 20.0)
    x, y = (axis.ravel() for axis in np.meshgrid(grid + 0.3, grid - 0.2))
    sigma = fwhm / np.sqrt(8 * np.log(2))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    sources = np.zeros(shape)
    for xc, yc in zip(x, y, strict=True):
        sources += peak_snr * np.exp(-((xx - xc) ** 2 + (yy - yc) ** 2) / (2 * sigma**2))
    flux = np.full(x.size, peak_snr * 2 * np.pi * sigma**2)
    truth = np.zeros(shape)
    bench_map = BenchMap(
        spec=MapSpec("correlated", "simulated", "generic", "cirrus", shape, x.size, 5),
        data=truth + sources + noise,
        image=truth + sources + noise,
        true_background=truth,
        coverage=np.ones(shape, dtype=bool),
        noise_std=1.0,
        fwhm_pixels=fwhm,
        catalog=__import__("astropy.table").table.QTable(
            {"x": x, "y": y, "flux": flux, "peak_snr": np.full(x.size, peak_snr)}
        ),
        filament_mask=np.zeros(shape, dtype=bool),
        hole_radius_fwhm=2.0,
        noise=noise,
    )

    def truth_with_tiny_error(data, hole_mask, coverage, fwhm_pixels):
        return MethodResult(np.where(hole_mask, truth, data), np.where(hole_mask, 1e-9, 0.0))

    entry = score_map(bench_map, {"ours": truth_with_tiny_error}, hole_sets=("true",))
    fraction = entry["holes"]["true"]["methods"]["ours"]["flux_calibration_fraction"]
    assert entry["n_measurable"] > 150
    assert 0.58 < fraction < 0.78


def test_group_ratios_compare_ours_and_peer_on_the_same_maps():
    from nemesis_bkg.bench.summary import band_averaged_ratios

    def entry(ours, peer):
        methods = {"ours": {"in_hole_rms_over_noise": ours}, "peer": peer}
        return {"family": "simulated", "band": "pacs70", "holes": {"true": {"methods": methods}}}

    # The peer failed on the hard map: ours' figure there must not enter the ratio.
    maps = [entry(1.0, {"in_hole_rms_over_noise": 2.0}),
            entry(10.0, {"error": "RuntimeError: boom"})]
    averaged = band_averaged_ratios(maps, "true", ours="ours", peers=["peer"])
    assert averaged["ratios"]["peer"]["per_group"]["pacs70"] == pytest.approx(0.5)
    assert averaged["ratios"]["peer"]["n_maps"] == {"pacs70": 1}
    assert averaged["groups"]["pacs70"]["n_maps"] == 2
    assert averaged["groups"]["pacs70"]["rms"] == {"ours": 5.5, "peer": 2.0}


def test_real_maps_are_not_reported_under_a_simulated_regime_or_band():
    def map_entry(family, rms):
        methods = {"a": {"in_hole_rms_over_noise": rms, "flux_relative_error": [0.1]}}
        return {
            "name": family, "family": family, "band": "pacs70", "regime": "filamentary",
            "megapixels": 1.0, "peak_snr": [20.0],
            "holes": {"true": {
                "source_masked": [True],
                "masking": {"filament_masked_fraction": 0.0, "n_holes": 1,
                            "n_spurious_holes": 0, "n_spurious_on_filament": 0},
                "methods": methods,
            }},
        }

    summary = summarize([map_entry("simulated", 1.0), map_entry("real", 5.0)], ours="ours")
    figures = summary["true"]["methods"]["a"]
    assert figures["in_hole_rms_over_noise_by_regime"] == {"filamentary": 1.0, "real": 5.0}
    assert figures["in_hole_rms_over_noise_by_band"] == {"pacs70": 1.0, "real": 5.0}
    assert set(figures["flux_by_regime"]) == {"filamentary", "real"}


def _markdown_tables(markdown):
    tables, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_report_tables_and_labels_are_consistent(scored, small_map):
    entry, _ = scored
    maps = [{**entry, "family": "simulated"}, {**entry, "noise_std": 0.2}]
    results = {
        "config": {"quick": False, "seed": 0, "holes": ["true"], "real_maps": False},
        "environment": {"cpu_count": 2, "load_average_at_start": None},
        "methods": {"ours": "available"},
        "skipped": [],
        "maps": maps,
        "total_seconds": 1.0,
    }
    results["summary"] = summarize(maps, ours="ours", exclude=(TRUTH,))
    markdown = format_report(results)
    for table in _markdown_tables(markdown):
        widths = {line.strip("|").count("|") for line in table}
        assert len(widths) == 1, table[:2]
    # The completeness figures are per SNR bin, not cumulative "3 and above".
    assert "3-10: " in markdown and "3+:" not in markdown
    assert "SNR >=1000" in markdown
    # The reference case's noise comes from its maps, not from a fixed text.
    assert "(noise = 0.2)" in markdown


def test_paper_way_pastes_the_network_output_into_each_hole_only():
    from nemesis_bkg.bench.speed import _paper_network_per_source
    from nemesis_bkg.model import PConvUNet

    data = np.random.default_rng(3).normal(size=(120, 150))
    holes = np.zeros(data.shape, bool)
    holes[5:9, 5:9] = True  # at the map's corner: the cutout reaches beyond the map
    holes[60:66, 100:104] = True
    network = PConvUNet(channels=(4, 8)).eval()
    background, count = _paper_network_per_source(data, holes, network, "cpu")
    assert count == 2
    assert np.array_equal(background[~holes], data[~holes])
    assert np.all(np.isfinite(background)) and not np.any(background[holes] == data[holes])


def test_per_source_way_returns_the_background_and_its_error_in_the_holes_only():
    # Like the whole-map inpainting it is compared with: both maps, the holes written.
    from nemesis_bkg.bench.speed import _per_source_removal
    from nemesis_bkg.model import PConvUNet

    data = np.random.default_rng(4).normal(size=(120, 150))
    holes = np.zeros(data.shape, bool)
    holes[5:9, 5:9] = True
    holes[60:66, 100:104] = True
    network = PConvUNet(channels=(4, 8)).eval()
    background, error, count = _per_source_removal(data, holes, np.ones(data.shape, bool), 2.5,
                                                   network, "cpu")
    assert count == 2
    assert np.array_equal(background[~holes], data[~holes]) and not np.any(error[~holes])
    assert np.all(np.isfinite(background[holes])) and np.all(error[holes] > 0)
