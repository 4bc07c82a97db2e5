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

#: Failed tries in a row after which `draw_samples` gives up.
_MAX_FAILURES = 200

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

    Parameters
    ----------
    views, real_views : list of `~nemesis_bkg.training.data.BackgroundView`
        Simulated and real backgrounds (either may be empty, not both).
    count : int
        Samples to draw.
    rng : `numpy.random.Generator`
        Random numbers: the same state gives the same samples.
    real_fraction : float
        Chance that a sample is cut from ``real_views`` (all of them are
        when ``views`` is empty).
    sample_options : dict
        Keywords of `~nemesis_bkg.training.data.make_sample`.

    Returns
    -------
    list of `~nemesis_bkg.training.data.Sample`

    Raises
    ------
    ValueError
        If there is no view to draw from, or no sample can be made from
        them (every try in a row of many fails).

    Examples
    --------
    >>> draw_samples([], [], 0, np.random.default_rng(0), real_fraction=0.0, sample_options={})
    []
    """
    if count > 0 and not views and not real_views:
        raise ValueError("no background views to draw training samples from: give simulated "
                         "maps (data.simulated_maps) or real maps (NEMESIS_BKG_REAL_MAPS)")
    samples: list[Sample] = []
    failures = 0
    while len(samples) < count:
        use_real = bool(real_views) and (not views or rng.uniform() < real_fraction)
        source = real_views if use_real else views
        sample = make_sample(source[int(rng.integers(len(source)))], rng, **sample_options)
        if sample is not None:
            samples.append(sample)
            failures = 0
            continue
        failures += 1
        if failures >= _MAX_FAILURES:
            raise ValueError(
                f"no training sample could be made in {failures} tries in a row: the background "
                "views have too few finite pixels, or none that varies, to cut tiles from"
            )
    return samples


def batch_tensors(samples: list[Sample], device: torch.device) -> dict[str, torch.Tensor]:
    """
    Stack samples into the tensors the losses take.

    Parameters
    ----------
    samples : list of `~nemesis_bkg.training.data.Sample`
        Samples of one tile size.
    device : `torch.device`
        Where the tensors go.

    Returns
    -------
    dict of `torch.Tensor`
        ``inputs`` (N, 4, T, T), ``coverage``, ``target``, ``holes`` and
        ``valid`` (N, 1, T, T), float32; empty for no samples.

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
    Call `close` (or use the pool as a context manager) to stop the workers;
    a pool that fails while it fills (Ctrl-C included) stops them itself.

    Examples
    --------
    >>> from nemesis_bkg.training.data import BackgroundView
    >>> rng = np.random.default_rng(0)
    >>> view = BackgroundView(rng.normal(size=(64, 64)), None, 0.1, 3.0, "noise")
    >>> with SamplePool([view], [], 4, rng, real_fraction=0.0,
    ...                 sample_options={"tile_size": 16, "context": 8}) as pool:
    ...     batch = pool.batch(2, torch.device("cpu"))
    >>> tuple(batch["inputs"].shape)
    (2, 4, 16, 16)
    """

    def __init__(
        self,
        views: list[BackgroundView],
        real_views: list[BackgroundView],
        size: int,
        rng: np.random.Generator,
        *,
        real_fraction: float,
        sample_options: dict,
        progress: bool = False,
        workers: int = 0,
    ) -> None:
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
        try:
            self._fill(size, progress)
        except BaseException:
            # Ctrl-C or a failed sample while filling: no caller holds the pool to close it.
            self.close()
            raise

    def _fill(self, size, progress):
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

        Parameters
        ----------
        count : int
            New samples to make now, without workers; with workers it is
            ignored and every sample that has arrived since the last call is
            taken in.
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
        """
        Stop the worker processes, if any.

        Tasks not yet started are cancelled; a worker ends once the task it
        is running is done.
        """
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            self._pending.clear()

    def __enter__(self) -> SamplePool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def batch(self, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
        """
        A random batch, rotated and flipped at random (the task is D4-symmetric).

        Parameters
        ----------
        batch_size : int
            Samples in the batch, distinct, at most the pool's size.
        device : `torch.device`
            Where the tensors go.

        Returns
        -------
        dict of `torch.Tensor`
            As `batch_tensors` returns them.
        """
        chosen = self.rng.choice(len(self.samples), size=batch_size, replace=False)
        tensors = batch_tensors([self.samples[index] for index in chosen], device)
        rotation, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
        for name, tensor in tensors.items():
            tensor = torch.rot90(tensor, rotation, dims=(2, 3))
            tensors[name] = torch.flip(tensor, dims=(3,)) if flip else tensor
        return tensors
