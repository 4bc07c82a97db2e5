"""
A pool of training samples kept in memory: generating a sample (classical
fill included) costs about as much as a network step on a CPU, so each
sample is reused a few times under random rotations and flips while a few
new ones replace old ones at every step. On a machine with a GPU the
samples are made by worker processes on the CPU cores, while the GPU
trains.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from .data import BackgroundView, Sample, make_sample

__all__ = ["SamplePool", "batch_tensors", "draw_samples"]

#: Samples made per task.
_CHUNK = 64

#: What a worker process draws from, set once when it starts.
_WORKER_STATE: dict = {}


def _start_worker(views, real_views, real_fraction, sample_options):
    from threadpoolctl import threadpool_limits

    # One worker per core: threads inside a worker would only compete.
    threadpool_limits(limits=1)
    torch.set_num_threads(1)
    _WORKER_STATE.update(views=views, real_views=real_views, real_fraction=real_fraction,
                         sample_options=sample_options)


def _draw_in_worker(count, seed):
    return draw_samples(_WORKER_STATE["views"], _WORKER_STATE["real_views"], count,
                        np.random.default_rng(seed), real_fraction=_WORKER_STATE["real_fraction"],
                        sample_options=_WORKER_STATE["sample_options"])


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
    workers : int, optional
        Processes that make samples in the background (0: made here, a
        few at every step). With workers, `refresh` takes whatever samples
        have arrived and never waits; the order in which they arrive, hence
        the run, is not reproducible bit for bit.

    Notes
    -----
    Call `close` (or use the pool as a context manager) to stop the workers.
    """

    def __init__(self, views, real_views, size, rng, *, real_fraction, sample_options,
                 progress=False, workers=0):
        self.views, self.real_views = views, real_views
        self.rng = rng
        self.real_fraction = real_fraction
        self.sample_options = sample_options
        self.samples = []
        self._executor = None
        self._pending = deque()
        if workers > 0:
            # forkserver: workers that never inherit the parent's CUDA or OpenMP state.
            self._executor = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("forkserver"),
                initializer=_start_worker,
                initargs=(views, real_views, real_fraction, sample_options),
            )
            self._in_flight = 2 * workers
        chunks = range(0, size, _CHUNK)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc="filling the sample pool", unit=f"x{_CHUNK}")
        if self._executor is None:
            for start in chunks:
                self.samples += self._draw(min(_CHUNK, size - start))
        else:
            futures = [self._submit(min(_CHUNK, size - start)) for start in range(0, size, _CHUNK)]
            for future, _ in zip(futures, chunks, strict=True):
                self.samples += future.result()
            for _ in range(self._in_flight):
                self._pending.append(self._submit(_CHUNK // 4))

    def _draw(self, count):
        return draw_samples(self.views, self.real_views, count, self.rng,
                            real_fraction=self.real_fraction, sample_options=self.sample_options)

    def _submit(self, count):
        return self._executor.submit(_draw_in_worker, count, int(self.rng.integers(2**63)))

    def refresh(self, count: int) -> None:
        """
        Replace random samples with new ones.

        Without workers, ``count`` new samples are made now; with workers,
        every sample that has arrived since the last call is taken in.
        """
        if self._executor is None:
            arrived = self._draw(count)
        else:
            arrived = []
            while self._pending and self._pending[0].done():
                arrived += self._pending.popleft().result()
                self._pending.append(self._submit(_CHUNK // 4))
        for sample in arrived:
            self.samples[int(self.rng.integers(len(self.samples)))] = sample

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> SamplePool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def batch(self, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
        """A random batch, rotated and flipped at random (the task is D4-symmetric)."""
        chosen = self.rng.choice(len(self.samples), size=batch_size, replace=False)
        tensors = batch_tensors([self.samples[index] for index in chosen], device)
        rotation, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
        for name, tensor in tensors.items():
            tensor = torch.rot90(tensor, rotation, dims=(2, 3))
            tensors[name] = torch.flip(tensor, dims=(3,)) if flip else tensor
        return tensors
