"""
One simulated field seen in three Herschel bands, with the same cores in
each: the stand-in for your own multi-band maps in the SED examples.

Each band gets its own simulated cloud and noise (``simulate_map`` with no
sources, all on the same sky centre), and the same eight cores, modified
blackbodies of 12 to 20 K with a dust emissivity index of 2, are added at
the same sky positions through each band's beam.
"""

import astropy.units as u
import numpy as np
from astropy.modeling.physical_models import BlackBody
from astropy.nddata import CCDData
from astropy.stats import gaussian_fwhm_to_sigma
from astropy.table import QTable

from nemesis_bkg.instruments import get_instrument
from nemesis_bkg.simulate import simulate_map

#: Band -> 1-sigma pixel noise, in the band's usual unit.
NOISE = {"pacs160": 0.002, "spire250": 0.02, "spire350": 0.02}
FIELD = 12 * u.arcmin


def greybody(wavelength, temperature, solid_angle, beta=2.0):
    """Flux density of an optically thin modified blackbody."""
    frequency = wavelength.to(u.Hz, equivalencies=u.spectral())
    intensity = BlackBody(temperature=temperature)(wavelength)
    return (solid_angle * (frequency / (1 * u.THz)) ** beta * intensity).to(u.Jy)


def simulate_field(seed=3):
    """
    The maps (band -> CCDData) and the truth (a QTable of the cores).

    Parameters
    ----------
    seed : int
        Seed of the cloud, the noise and the cores.
    """
    rng = np.random.default_rng(seed)
    n_cores = 8
    offsets = rng.uniform(-0.35, 0.35, size=(n_cores, 2)) * FIELD
    truth = QTable()
    truth["temperature"] = rng.uniform(12, 20, n_cores) * u.K
    truth["solid_angle"] = 10 ** rng.uniform(-10.5, -9.5, n_cores) * u.sr
    maps = {}
    for band, noise in NOISE.items():
        instrument = get_instrument(band)
        size = int(round((FIELD / instrument.pixel_scale).decompose().value))
        sim = simulate_map((size, size), instrument=band, n_sources=0, noise_std=noise,
                           nan_border=False, background_contrast=50, seed=seed)
        wcs = sim.data.wcs
        centre = wcs.pixel_to_world((size - 1) / 2, (size - 1) / 2)
        cores = centre.spherical_offsets_by(offsets[:, 0], offsets[:, 1])
        x, y = wcs.world_to_pixel(cores)
        flux = greybody(instrument.wavelength, truth["temperature"], truth["solid_angle"])
        sigma = sim.fwhm_pixels * gaussian_fwhm_to_sigma
        # Peak pixel value of a point source of that flux, in Jy/beam or Jy/pixel.
        peak = flux.value if instrument.bunit == "Jy/beam" else flux.value / (2 * np.pi * sigma**2)
        rows, columns = np.mgrid[:size, :size]
        sources = sum(p * np.exp(-((columns - xc) ** 2 + (rows - yc) ** 2) / (2 * sigma**2))
                      for p, xc, yc in zip(peak, x, y, strict=True))
        maps[band] = CCDData(sim.data.data + sources, unit=sim.data.unit, wcs=wcs,
                             uncertainty=sim.data.uncertainty, meta=sim.data.meta)
        truth["sky_centroid"] = cores
        truth[f"flux_{band}"] = flux
    return maps, truth
