"""
Synthetic Herschel-like maps with known truth: lognormal power-law clouds,
filament networks, cirrus and gradients (or a real map as background),
compact sources seen through the band's beam, white and scan-correlated
noise, NaN borders; with the true background, source map, noise, filament
mask and a source catalogue.

Examples
--------
>>> from nemesis_bkg.simulate import simulate_map
>>> sim = simulate_map((128, 128), instrument="pacs70", regime="cirrus", n_sources=3, seed=2)
>>> sim.catalog.colnames[:4]
['id', 'x', 'y', 'sky_centroid']
"""

from .maps import REGIMES, Regime, SimulatedMap, simulate_map
from .preview import plot_preview
from .real_maps import load_real_map, real_map_paths
from .writing import write_simulated_map

__all__ = [
    "REGIMES",
    "Regime",
    "SimulatedMap",
    "load_real_map",
    "plot_preview",
    "real_map_paths",
    "simulate_map",
    "write_simulated_map",
]
