"""
The benchmark suite: ours against every peer, on the same maps and holes.

`run_benchmark` builds a fixed, seeded suite of maps (simulated Herschel-like
maps in all six bands and three regimes, real maps with injected sources,
the design note's reference case), cuts the same holes for every method,
and scores the background inside the holes, the photometry of the injected
sources, the calibration of claimed errors, time and memory. The
``nemesis-bkg bench`` command runs it from the shell.
"""

from .run import run_benchmark

__all__ = ["run_benchmark"]
