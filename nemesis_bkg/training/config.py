"""Reading and checking a training configuration file (TOML)."""

from __future__ import annotations

import tomllib
from pathlib import Path

__all__ = ["DEFAULT_CONFIG", "load_config"]

#: The configuration of the bundled weights.
DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.toml"

_SECTIONS = ("model", "data", "optimizer", "loss", "run")


def load_config(path: str | Path = DEFAULT_CONFIG) -> dict:
    """
    Read a training configuration.

    Parameters
    ----------
    path : str or `~pathlib.Path`, optional
        TOML file with the sections ``model``, ``data``, ``optimizer``,
        ``loss`` and ``run`` (see ``configs/default.toml``).

    Returns
    -------
    dict
        The configuration, with ``"source"`` (the file's text) added.

    Examples
    --------
    >>> config = load_config()
    >>> config["data"]["tile_size"]
    64
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no configuration file at {path}")
    text = path.read_text(encoding="utf-8")
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from error
    missing = [section for section in _SECTIONS if section not in config]
    if missing:
        raise ValueError(f"{path} lacks the section(s) {missing}; start from {DEFAULT_CONFIG}")
    config["source"] = text
    config["path"] = str(path)
    return config
