"""
The fixed, seeded suite of maps the benchmark scores every method on.

Three families:

- simulated Herschel-like maps (`nemesis_bkg.simulate.simulate_map`) in all
  six bands and three background regimes (faint cirrus, bright filamentary
  cloud, Galactic-plane-like confusion), 512x512 to 2048x2048 pixels;
- the real maps of ``<repo>/../shared/data/real_maps`` as backgrounds with
  injected sources: the evaluation half of each map training uses, which
  training never draws from (`real_background_paths`), with added noise never
  below the map's own pixel noise, as in training (skipped, with a message,
  when that folder is absent);
- the reference case of the design note: a 512x512 power-law background of
  unit standard deviation, noise 0.05, 60 sources, holes of 2 FWHM radius
  at the true positions, several seeds.

Maps are built one at a time (`iter_suite`), so a 2048x2048 map is in
memory only while it is scored.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import QTable

__all__ = [
    "REFERENCE_FWHM_PIXELS",
    "REFERENCE_HOLE_RADIUS_FWHM",
    "REFERENCE_MESH_BOX",
    "BenchMap",
    "MapSpec",
    "build_map",
    "iter_suite",
    "real_background_paths",
    "reference_map",
    "suite_specs",
]

BANDS = ("pacs70", "pacs100", "pacs160", "spire250", "spire350", "spire500")
REGIMES = ("cirrus", "filamentary", "confusion")

#: Injected sources per megapixel in each regime: most in the confusion regime,
#: few enough overall for the 15-minute budget of the full suite on 2 cores.
SOURCES_PER_MEGAPIXEL = {"cirrus": 80, "filamentary": 120, "confusion": 200}

#: Map side per (band, regime): every band in every regime, two maps at the
#: largest size, the rest small enough for the 15-minute budget on 2 cores.
SIMULATED_SIDES = {
    ("pacs70", "cirrus"): 512,
    ("pacs70", "filamentary"): 1024,
    ("pacs70", "confusion"): 512,
    ("pacs100", "cirrus"): 512,
    ("pacs100", "filamentary"): 512,
    ("pacs100", "confusion"): 1024,
    ("pacs160", "cirrus"): 512,
    ("pacs160", "filamentary"): 512,
    ("pacs160", "confusion"): 2048,
    ("spire250", "cirrus"): 1024,
    ("spire250", "filamentary"): 2048,
    ("spire250", "confusion"): 512,
    ("spire350", "cirrus"): 512,
    ("spire350", "filamentary"): 1024,
    ("spire350", "confusion"): 512,
    ("spire500", "cirrus"): 512,
    ("spire500", "filamentary"): 512,
    ("spire500", "confusion"): 512,
}

#: Side and number of sources of the maps of ``--quick`` (one per band,
#: regimes in turn): small enough to run in well under a minute.
QUICK_SIDE = 256
QUICK_N_SOURCES = 8

#: Largest side of a real-map background (real maps are 150 to 1025 pixels).
REAL_MAP_MAX_SIDE = 512

#: The design note's reference case.
REFERENCE_SIDE = 512
REFERENCE_NOISE = 0.05
REFERENCE_N_SOURCES = 60
REFERENCE_SLOPE = -3.0
REFERENCE_FWHM_PIXELS = 4.0
REFERENCE_HOLE_RADIUS_FWHM = 2.0
REFERENCE_MESH_BOX = 32
REFERENCE_PEAK_SNR = (5.0, 2000.0)


@dataclass(frozen=True)
class MapSpec:
    """
    How to build one map of the suite.

    Attributes
    ----------
    name : str
        Unique name, used in every table.
    family : str
        ``"simulated"``, ``"real"`` or ``"reference"``.
    band : str
        Instrument preset (``"generic"`` for the reference case).
    regime : str
        Background regime (``"reference"`` for the reference case).
    shape : tuple of int
        ``(0, 0)`` for a real map: the shape of its evaluation half, each
        side capped at `REAL_MAP_MAX_SIDE`.
    n_sources : int
        0 for a real map: the regime's density times its area.
    seed : int
    background_path : `~pathlib.Path` or None
        Real map used as background.
    """

    name: str
    family: str
    band: str
    regime: str
    shape: tuple[int, int]
    n_sources: int
    seed: int
    background_path: Path | None = None


@dataclass
class BenchMap:
    """
    One map of the suite with its ground truth.

    Attributes
    ----------
    spec : `MapSpec`
    data : `~astropy.nddata.CCDData` or ndarray
        What a user would have: handed to the masking module.
    image : ndarray
        The map as float64, NaN outside coverage.
    true_background : ndarray
        Noiseless background.
    coverage : ndarray of bool
    noise_std : float
        Per-pixel 1-sigma noise.
    fwhm_pixels : float
    catalog : `~astropy.table.QTable`
        Truth: at least ``x``, ``y`` (0-based), ``flux`` (sum over pixels)
        and ``peak_snr``.
    filament_mask : ndarray of bool
        True filament pixels (all False when there are none).
    hole_radius_fwhm : float or None
        Fixed hole radius in beams (reference case); None: holes come from
        the masking module.
    mesh_box_size : int or None
        Box of the mesh methods in pixels (reference case); None: they
        scale it with the beam.
    noise : ndarray or None
        The noise realisation added to the map (NaN outside coverage), from
        which the photometry's noise errors are measured; None: white noise
        of ``noise_std``.
    """

    spec: MapSpec
    data: object
    image: np.ndarray
    true_background: np.ndarray
    coverage: np.ndarray
    noise_std: float
    fwhm_pixels: float
    catalog: QTable
    filament_mask: np.ndarray
    hole_radius_fwhm: float | None = None
    mesh_box_size: int | None = None
    noise: np.ndarray | None = None


def _n_sources(regime: str, shape: tuple[int, int]) -> int:
    return max(int(round(SOURCES_PER_MEGAPIXEL[regime] * shape[0] * shape[1] / 1e6)), 10)


def real_background_paths() -> list[Path]:
    """
    The real maps usable as backgrounds: those the default training configuration uses.

    Maps that configuration leaves out (``real_maps_exclude``: the GLIMPSE
    field, whose "background" is mostly crowded stars, i.e. compact sources)
    are no backgrounds to score an inpainter on either: the error in their
    holes would be that of reproducing stars.

    Returns
    -------
    list of `~pathlib.Path`
        Empty when the real maps are absent.

    Examples
    --------
    >>> from nemesis_bkg.bench.suite import real_background_paths
    >>> any("glimpse" in path.name for path in real_background_paths())
    False
    """
    from nemesis_bkg.simulate import real_map_paths
    from nemesis_bkg.training.config import load_config

    excluded = load_config()["data"].get("real_maps_exclude", [])
    return [path for path in real_map_paths() if not any(name in path.name for name in excluded)]


def suite_specs(
    *, quick: bool = False, seed: int = 0, real_maps: list[Path] | None = None, n_reference: int = 5
) -> list[MapSpec]:
    """
    The list of maps of the suite, fixed by ``seed``.

    Parameters
    ----------
    quick : bool, optional
        One small simulated map per band (regimes in turn), nothing else.
    seed : int, optional
        Base seed; each map gets its own seed derived from it.
    real_maps : list of `~pathlib.Path`, optional
        Real maps to use as backgrounds (ignored with ``quick``).
    n_reference : int, optional
        Number of seeds of the reference case (ignored with ``quick``).

    Returns
    -------
    list of `MapSpec`

    Examples
    --------
    >>> from nemesis_bkg.bench.suite import suite_specs
    >>> [spec.band for spec in suite_specs(quick=True)]
    ['pacs70', 'pacs100', 'pacs160', 'spire250', 'spire350', 'spire500']
    """
    specs = []
    if quick:
        for index, band in enumerate(BANDS):
            regime = REGIMES[index % len(REGIMES)]
            shape = (QUICK_SIDE, QUICK_SIDE)
            specs.append(
                MapSpec(f"{band}-{regime}-{QUICK_SIDE}", "simulated", band, regime, shape,
                        QUICK_N_SOURCES, seed * 1000 + index)
            )
        return specs
    for index, ((band, regime), side) in enumerate(SIMULATED_SIDES.items()):
        shape = (side, side)
        specs.append(
            MapSpec(f"{band}-{regime}-{side}", "simulated", band, regime, shape,
                    _n_sources(regime, shape), seed * 1000 + index)
        )
    for index, path in enumerate(real_maps or []):
        band = BANDS[index % len(BANDS)]
        specs.append(
            MapSpec(f"real-{path.stem}", "real", band, "filamentary", (0, 0), 0,
                    seed * 1000 + 100 + index, background_path=path)
        )
    for index in range(n_reference):
        shape = (REFERENCE_SIDE, REFERENCE_SIDE)
        specs.append(
            MapSpec(f"reference-seed{index}", "reference", "generic", "reference", shape,
                    REFERENCE_N_SOURCES, seed * 1000 + 200 + index)
        )
    return specs


def reference_map(spec: MapSpec) -> BenchMap:
    """
    The design note's reference case for one seed.

    A Gaussian random field with a power-law spectrum (slope -3) of unit
    standard deviation, white noise of 0.05, and `REFERENCE_N_SOURCES`
    circular Gaussian sources (FWHM `REFERENCE_FWHM_PIXELS`, peak SNR
    log-uniform in `REFERENCE_PEAK_SNR`); holes are discs of
    `REFERENCE_HOLE_RADIUS_FWHM` beams at the true positions; the mesh
    methods use a box of `REFERENCE_MESH_BOX` pixels, as in the note.

    Parameters
    ----------
    spec : `MapSpec`
        A spec of family ``"reference"``.

    Returns
    -------
    `BenchMap`

    Examples
    --------
    >>> from nemesis_bkg.bench.suite import reference_map, suite_specs
    >>> spec = [s for s in suite_specs() if s.family == "reference"][0]
    >>> bench_map = reference_map(spec)
    >>> len(bench_map.catalog), round(float(bench_map.true_background.std()), 6)
    (60, 1.0)
    """
    from nemesis_bkg.simulate.fields import power_law_field

    rng = np.random.default_rng(spec.seed)
    background = power_law_field(spec.shape, REFERENCE_SLOPE, rng)
    margin = 3.0 * REFERENCE_FWHM_PIXELS
    x = rng.uniform(margin, spec.shape[1] - 1 - margin, spec.n_sources)
    y = rng.uniform(margin, spec.shape[0] - 1 - margin, spec.n_sources)
    low, high = np.log10(REFERENCE_PEAK_SNR)
    peak_snr = 10.0 ** rng.uniform(low, high, spec.n_sources)
    sigma = REFERENCE_FWHM_PIXELS / math.sqrt(8.0 * math.log(2.0))
    rows, columns = np.arange(spec.shape[0]), np.arange(spec.shape[1])
    sources = np.zeros(spec.shape)
    fluxes = np.empty(spec.n_sources)
    for index in range(spec.n_sources):
        # A separable Gaussian: one outer product per source.
        profile = np.outer(
            np.exp(-0.5 * ((rows - y[index]) / sigma) ** 2),
            np.exp(-0.5 * ((columns - x[index]) / sigma) ** 2),
        ) * (peak_snr[index] * REFERENCE_NOISE)
        fluxes[index] = profile.sum()
        sources += profile
    noise = rng.normal(0.0, REFERENCE_NOISE, spec.shape)
    image = background + sources + noise
    catalog = QTable(
        {
            "id": np.arange(1, spec.n_sources + 1),
            "x": x,
            "y": y,
            "flux": fluxes,
            "peak_snr": peak_snr,
        }
    )
    return BenchMap(
        spec=spec,
        data=image,
        image=image,
        true_background=background,
        coverage=np.ones(spec.shape, dtype=bool),
        noise_std=REFERENCE_NOISE,
        fwhm_pixels=REFERENCE_FWHM_PIXELS,
        catalog=catalog,
        filament_mask=np.zeros(spec.shape, dtype=bool),
        hole_radius_fwhm=REFERENCE_HOLE_RADIUS_FWHM,
        mesh_box_size=REFERENCE_MESH_BOX,
        noise=noise,
    )


def _simulated_map(spec: MapSpec) -> BenchMap:
    from nemesis_bkg.simulate import load_real_map, simulate_map
    from nemesis_bkg.simulate.maps import REGIMES
    from nemesis_bkg.simulate.real_maps import real_map_noise

    from .metrics import robust_scatter

    background = None
    contrast = None
    shape = spec.shape
    if spec.background_path is not None:
        # The half of the real map that training never draws from.
        background = load_real_map(spec.background_path, part="evaluation")
        shape = tuple(min(side, REAL_MAP_MAX_SIDE) for side in background.shape)
        # The map's own pixel noise stays in its truth, where no method can predict it: as in
        # training, the added noise is never below it (the contrast is lowered if need be).
        spread = robust_scatter(background)
        own_noise = real_map_noise(background)
        contrast = REGIMES[spec.regime].contrast
        if own_noise > 0 and spread > 0:
            contrast = min(contrast, spread / own_noise)
    sim = simulate_map(
        shape,
        instrument=spec.band,
        regime=spec.regime,
        background=background,
        background_contrast=contrast,
        n_sources=spec.n_sources or _n_sources(spec.regime, shape),
        seed=spec.seed,
    )
    image = np.array(sim.data.data, dtype=float)
    coverage = np.asarray(sim.coverage, dtype=bool) & np.isfinite(image)
    image[~coverage] = np.nan
    return BenchMap(
        spec=spec,
        data=sim.data,
        image=image,
        true_background=np.asarray(sim.background, dtype=float),
        coverage=coverage,
        noise_std=float(sim.noise_std),
        fwhm_pixels=float(sim.fwhm_pixels),
        catalog=sim.catalog,
        filament_mask=np.asarray(sim.filament_mask, dtype=bool),
        noise=np.asarray(sim.noise, dtype=float),
    )


def build_map(spec: MapSpec) -> BenchMap:
    """
    Build the map a spec describes.

    Parameters
    ----------
    spec : `MapSpec`

    Returns
    -------
    `BenchMap`

    Examples
    --------
    >>> from nemesis_bkg.bench.suite import build_map, suite_specs
    >>> bench_map = build_map(suite_specs(quick=True)[0])
    >>> bench_map.spec.name, bench_map.image.shape, len(bench_map.catalog)
    ('pacs70-cirrus-256', (256, 256), 8)
    """
    if spec.family == "reference":
        return reference_map(spec)
    return _simulated_map(spec)


def iter_suite(specs: list[MapSpec]) -> Iterator[BenchMap]:
    """
    Build the maps of ``specs`` one at a time.

    Parameters
    ----------
    specs : list of `MapSpec`

    Yields
    ------
    `BenchMap`

    Examples
    --------
    >>> from nemesis_bkg.bench.suite import iter_suite, suite_specs
    >>> [bench_map.spec.band for bench_map in iter_suite(suite_specs(quick=True)[:2])]
    ['pacs70', 'pacs100']
    """
    for spec in specs:
        yield build_map(spec)
