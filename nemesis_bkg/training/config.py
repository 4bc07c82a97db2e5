"""Reading and checking a training configuration file (TOML)."""

from __future__ import annotations

import json
import numbers
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_CONFIG", "check_config", "checkpoint_config", "initial_weights_path",
           "load_config", "read_checkpoint"]

#: The configuration of the bundled weights.
DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.toml"

#: Keys ``load_config`` adds to a configuration: not part of the file's sections.
_ADDED_KEYS = ("source", "path")

_INTEGER, _NUMBER, _RANGE = "an integer", "a number", "a pair [low, high] of positive numbers"

#: Every key of every section: (kind, lowest value allowed or None, required).
_SCHEMA: dict[str, dict[str, tuple[str, float | None, bool]]] = {
    "model": {"channels": ("channels", None, True),
              "initial_weights": ("a weights file", None, False)},
    "data": {
        "tile_size": (_INTEGER, 1, True),
        "context": (_INTEGER, 0, True),
        "fwhm_range": (_RANGE, None, True),
        "snr_range": (_RANGE, None, True),
        "contrast_range": (_RANGE, None, True),
        "simulated_maps": (_INTEGER, 0, True),
        "simulated_map_size": (_INTEGER, 1, True),
        "real_views_per_map": (_INTEGER, 0, True),
        "real_fraction": ("a probability", None, True),
        "real_maps_exclude": ("names", None, False),
        "real_zoom_range": (_RANGE, None, False),
        "max_extra_sources": (_INTEGER, 0, True),
        "extra_hole_probability": ("a probability", None, True),
        "nan_edge_probability": ("a probability", None, True),
        "pool_size": (_INTEGER, 1, True),
        "refresh_per_step": (_INTEGER, 0, True),
    },
    "optimizer": {
        "learning_rate": (_NUMBER, 0, True),
        "weight_decay": (_NUMBER, 0, True),
        "warmup_steps": (_INTEGER, 0, True),
        "batch_size": (_INTEGER, 1, True),
        "max_steps": (_INTEGER, 1, True),
        "max_minutes": (_NUMBER, 0, True),
    },
    "loss": {name: (_NUMBER, 0, True)
             for name in ("hole", "valid", "flux", "ssim", "gradient", "nll")},
    "run": {
        "seed": (_INTEGER, 0, True),
        "threads": (_INTEGER, 1, True),
        "workers": (_INTEGER, 0, False),
        "checkpoint_minutes": (_NUMBER, 0, True),
        "validate_minutes": (_NUMBER, 0, True),
        # Export fits the uncertainty calibration on one half and scores the other.
        "validation_samples": (_INTEGER, 2, True),
    },
}

#: Keys whose value must be strictly above the lowest value of `_SCHEMA`.
_POSITIVE = {"learning_rate", "max_minutes", "checkpoint_minutes", "validate_minutes"}


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_value(name: str, value, kind: str, lowest: float | None) -> str | None:
    """What is wrong with one value, or None."""
    if kind == _INTEGER and not _is_integer(value):
        return f"{name} must be an integer, not {value!r}"
    if kind == _NUMBER and not _is_number(value):
        return f"{name} must be a number, not {value!r}"
    if kind == "a probability" and not (_is_number(value) and 0 <= value <= 1):
        return f"{name} must be a number from 0 to 1, not {value!r}"
    if kind == _RANGE and not (
        isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))
        and 0 < value[0] <= value[1]
    ):
        return f"{name} must be {_RANGE}, not {value!r}"
    if kind == "names" and not (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    ):
        return f"{name} must be a list of strings (parts of file names), not {value!r}"
    if kind == "a weights file" and not (isinstance(value, str) and value):
        return (f"{name} must be \"bundled\" or the path of a safetensors weights file, "
                f"not {value!r}")
    if kind == "channels" and not (
        isinstance(value, list) and len(value) >= 2
        and all(_is_integer(item) and item > 0 for item in value)
    ):
        return f"{name} must be a list of at least two positive integers, not {value!r}"
    if lowest is not None:
        key = name.rsplit(".", 1)[1]
        if key in _POSITIVE and not value > lowest:
            return f"{name} must be above {lowest}, not {value!r}"
        if not value >= lowest:
            return f"{name} must be at least {lowest}, not {value!r}"
    return None


def check_config(config: dict) -> None:
    """
    Check a training configuration: every key known, present and of a sensible value.

    Parameters
    ----------
    config : dict
        A configuration, as `load_config` returns it (the keys ``"source"``
        and ``"path"`` it adds are allowed).

    Raises
    ------
    ValueError
        Naming every missing, unknown or wrong key at once.

    Examples
    --------
    >>> config = load_config()
    >>> config["data"]["tile_size"] = 60
    >>> check_config(config)
    Traceback (most recent call last):
    ...
    ValueError: data.tile_size (60) must be a multiple of 16, the network's downsampling factor
    """
    if not isinstance(config, dict):
        raise TypeError(f"a configuration is a dict (from load_config), not {type(config)}")
    problems = []
    missing = [section for section in _SCHEMA if section not in config]
    if missing:
        problems.append(f"lacks the section(s) {missing}")
    unknown = [key for key in config if key not in _SCHEMA and key not in _ADDED_KEYS]
    if unknown:
        problems.append(f"has unknown section(s) {unknown}")
    for section, schema in _SCHEMA.items():
        values = config.get(section)
        if values is None:
            continue
        if not isinstance(values, dict):
            problems.append(f"[{section}] must be a table of keys")
            continue
        for key in values:
            if key not in schema:
                problems.append(f"{section}.{key} is not a known key (known: {sorted(schema)})")
        for key, (kind, lowest, required) in schema.items():
            if key not in values:
                if required:
                    problems.append(f"{section}.{key} is missing")
                continue
            problem = _check_value(f"{section}.{key}", values[key], kind, lowest)
            if problem is not None:
                problems.append(problem)
    if not problems:
        problems += _check_consistency(config)
    if problems:
        raise ValueError("; ".join(problems))


def _check_consistency(config: dict) -> list[str]:
    """What is wrong between keys whose values are each fine."""
    data, optimizer = config["data"], config["optimizer"]
    problems = []
    factor = 2 ** (len(config["model"]["channels"]) - 1)
    if data["tile_size"] % factor:
        problems.append(f"data.tile_size ({data['tile_size']}) must be a multiple of {factor}, "
                        "the network's downsampling factor")
    canvas = data["tile_size"] + 2 * data["context"]
    if data["simulated_maps"] and data["simulated_map_size"] < canvas:
        problems.append(f"data.simulated_map_size ({data['simulated_map_size']}) must be at least "
                        f"tile_size + 2 * context = {canvas}")
    if data["simulated_maps"] == 0 and (data["real_fraction"] == 0
                                        or data["real_views_per_map"] == 0):
        problems.append("no backgrounds to train on: set data.simulated_maps above 0, or "
                        "data.real_fraction and data.real_views_per_map above 0")
    if data["pool_size"] < optimizer["batch_size"]:
        problems.append(f"data.pool_size ({data['pool_size']}) must be at least "
                        f"optimizer.batch_size ({optimizer['batch_size']})")
    return problems


def initial_weights_path(config: dict) -> Path | None:
    """
    The weights a run starts from (``model.initial_weights``), or None for a fresh network.

    ``"bundled"`` names the package's weights; a relative path is taken from
    the configuration file's folder.

    Examples
    --------
    >>> initial_weights_path(load_config()) is None
    True
    """
    initial = config["model"].get("initial_weights")
    if initial is None:
        return None
    if initial == "bundled":
        from ..model import DEFAULT_WEIGHTS

        return Path(DEFAULT_WEIGHTS)
    path = Path(initial).expanduser()
    if not path.is_absolute() and config.get("path"):
        path = Path(config["path"]).parent / path
    return path


def _read_toml(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict, str]:
    """
    The tables of a configuration file, those of its ``base`` file under them, and its text.

    ``base`` (a path, relative to the file's folder) names a configuration
    this one changes: its tables are read first (recursively), then each key
    of this file replaces the base's.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no configuration file at {path}")
    text = path.read_text(encoding="utf-8")
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from error
    base = tables.pop("base", None)
    if base is None:
        return tables, text
    if not isinstance(base, str):
        raise ValueError(f"{path}: base must be the path of a configuration file, not {base!r}")
    base_path = (path.parent / Path(base).expanduser()).resolve()
    if base_path in chain:
        raise ValueError(f"{path}: base files form a loop ({' -> '.join(map(str, chain))} -> "
                         f"{base_path})")
    merged, _ = _read_toml(base_path, (*chain, base_path))
    for section, values in tables.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **values}
        else:
            merged[section] = values
    return merged, text


def load_config(path: str | Path = DEFAULT_CONFIG) -> dict:
    """
    Read and check a training configuration.

    Parameters
    ----------
    path : str or `~pathlib.Path`, optional
        TOML file with the sections ``model``, ``data``, ``optimizer``,
        ``loss`` and ``run`` (see ``configs/default.toml``). A top-level
        ``base = "other.toml"`` (relative to the file's folder) reads that
        configuration first and lets this file change some of its keys
        (e.g. ``configs/gpu_refine_1.toml``).

    Returns
    -------
    dict
        The configuration, with ``"source"`` (the file's text) and
        ``"path"`` (the file's path) added.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path`` or at a ``base`` it names.
    ValueError
        If a file is not TOML, the ``base`` files form a loop, or
        `check_config` finds a problem.

    Examples
    --------
    >>> config = load_config()
    >>> config["data"]["tile_size"]
    64
    """
    path = Path(path)
    config, text = _read_toml(path, (path.resolve(),))
    try:
        check_config(config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}; start from {DEFAULT_CONFIG}") from error
    config["source"] = text
    config["path"] = str(path)
    return config


def checkpoint_config(checkpoint: str | Path) -> dict:
    """
    The configuration a checkpoint of `~nemesis_bkg.training.train` was trained with.

    Parameters
    ----------
    checkpoint : str or `~pathlib.Path`
        A ``.ckpt`` file of a run folder.

    Returns
    -------
    dict
        The configuration (overrides of the command line excluded), with
        ``"path"`` set to the file it was read from at training time.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``checkpoint``.
    ValueError
        If the file is not such a checkpoint.

    Examples
    --------
    >>> config = checkpoint_config("runs/default/last.ckpt")  # doctest: +SKIP
    """
    state = read_checkpoint(checkpoint)
    text = state["config"]
    try:
        config = json.loads(text)
    except json.JSONDecodeError:
        # Checkpoints of early versions kept the TOML text of the file.
        config = tomllib.loads(text)
    config["path"] = state.get("config_path", "")
    return config


def read_checkpoint(checkpoint: str | Path, *, device: str | torch.device = "cpu") -> dict:
    """
    Read a checkpoint written by `~nemesis_bkg.training.train` (never unpickling code).

    Parameters
    ----------
    checkpoint : str or `~pathlib.Path`
        The ``.ckpt`` file.
    device : str or `torch.device`, optional
        Where its tensors go.

    Returns
    -------
    dict
        ``model`` and ``optimizer`` states, ``step``, ``train_seconds``,
        ``config`` and the rest of the run's state.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``checkpoint``.
    ValueError
        If the file is not such a checkpoint.

    Examples
    --------
    >>> import tempfile
    >>> notes = Path(tempfile.mkdtemp()) / "notes.ckpt"
    >>> _ = notes.write_text("not a checkpoint")
    >>> read_checkpoint(notes)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../notes.ckpt is not a checkpoint written by nemesis-bkg train
    """
    import pickle

    import torch

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint at {checkpoint}")
    not_ours = ValueError(f"{checkpoint} is not a checkpoint written by nemesis-bkg train")
    try:
        state = torch.load(checkpoint, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise not_ours from error
    if not isinstance(state, dict) or not {"model", "step", "config"} <= set(state):
        raise not_ours
    return state
