"""
A pool of training samples kept in memory: generating a sample (classical
fill included) costs about as much as a network step on a CPU, so each
sample is reused a few times under random rotations and flips while a few
new ones replace old ones at every step.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import BackgroundView, Sample, make_sample

__all__ = ["SamplePool", "batch_tensors", "draw_samples"]


def draw_samples(
    views: list[BackgroundView],
    real_views: list[BackgroundView],
    count: int,
    rng: np.random.Generator,
    *,
    real_fraction: float,
    sample_options: dict,
) -> list[Sample]:
    """
    Draw ``count`` samples, a ``real_fraction`` of them from ``real_views``.

    Examples
    --------
    >>> draw_samples([], [], 0, np.random.default_rng(0), real_fraction=0.0, sample_options={})
    []
    """
    samples: list[Sample] = []
    while len(samples) < count:
        use_real = bool(real_views) and (not views or rng.uniform() < real_fraction)
        source = real_views if use_real else views
        sample = make_sample(source[int(rng.integers(len(source)))], rng, **sample_options)
        if sample is not None:
            samples.append(sample)
    return samples


def batch_tensors(samples: list[Sample], device: torch.device) -> dict[str, torch.Tensor]:
    """
    Stack samples into the tensors the losses take.

    Examples
    --------
    >>> batch_tensors([], torch.device("cpu"))
    {}
    """
    if not samples:
        return {}

    def stack(name, add_channel):
        values = np.stack([getattr(sample, name) for sample in samples]).astype(np.float32)
        return torch.from_numpy(values[:, None] if add_channel else values).to(device)

    return {
        "inputs": stack("inputs", False),
        "coverage": stack("coverage", False),
        "target": stack("target", True),
        "holes": stack("holes", True),
        "valid": stack("valid", True),
    }


class SamplePool:
    """
    Samples in memory, refreshed a few at a time.

    Parameters
    ----------
    views, real_views : list of `~nemesis_bkg.training.data.BackgroundView`
        Simulated and real backgrounds.
    size : int
        Samples kept.
    rng : `numpy.random.Generator`
        Random numbers.
    real_fraction : float
        Share of samples cut from the real backgrounds.
    sample_options : dict
        Keywords of `~nemesis_bkg.training.data.make_sample`.
    progress : bool, optional
        Show a progress bar while filling the pool.
    """

    def __init__(self, views, real_views, size, rng, *, real_fraction, sample_options,
                 progress=False):
        self.views, self.real_views = views, real_views
        self.rng = rng
        self.real_fraction = real_fraction
        self.sample_options = sample_options
        self.samples = []
        chunks = range(0, size, 64)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc="filling the sample pool", unit="x64")
        for start in chunks:
            self.samples += self._draw(min(64, size - start))

    def _draw(self, count):
        return draw_samples(self.views, self.real_views, count, self.rng,
                            real_fraction=self.real_fraction, sample_options=self.sample_options)

    def refresh(self, count: int) -> None:
        """Replace ``count`` random samples with new ones."""
        for sample in self._draw(count):
            self.samples[int(self.rng.integers(len(self.samples)))] = sample

    def batch(self, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
        """A random batch, rotated and flipped at random (the task is D4-symmetric)."""
        chosen = self.rng.choice(len(self.samples), size=batch_size, replace=False)
        tensors = batch_tensors([self.samples[index] for index in chosen], device)
        rotation, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
        for name, tensor in tensors.items():
            tensor = torch.rot90(tensor, rotation, dims=(2, 3))
            tensors[name] = torch.flip(tensor, dims=(3,)) if flip else tensor
        return tensors
