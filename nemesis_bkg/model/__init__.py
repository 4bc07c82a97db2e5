"""
The partial-convolution U-Net, its bundled weights and their loading.

The weights are stored as safetensors (no pickle is ever loaded) next to a
model card, ``weights/MODEL_CARD.md``, whose ``sha256:`` line is checked
before the weights are read. The safetensors metadata holds the network's
configuration and the facts the engine needs (tile size, the range of beam
sampling it was trained on, the uncertainty calibration): it is the one
source of truth for them.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch

from .pconv import PartialConv2d, PartialConvBlock
from .unet import PConvUNet

__all__ = [
    "DEFAULT_WEIGHTS",
    "MODEL_CARD",
    "PConvUNet",
    "PartialConv2d",
    "PartialConvBlock",
    "load_model",
    "read_card_sha256",
    "resolve_device",
    "save_model",
]

#: The bundled weights and their model card.
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "nemesis_pconv_unet.safetensors"
MODEL_CARD = Path(__file__).parent / "weights" / "MODEL_CARD.md"

_FORMAT = "nemesis_bkg.pconv_unet/1"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """
    Turn ``"auto"``, ``"cpu"``, ``"cuda"`` (or a `torch.device`) into a device.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available; use 'cpu'")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from error


def read_card_sha256(card: str | Path) -> str:
    """
    Read the ``sha256: <hex>`` line of a model card.

    Examples
    --------
    >>> len(read_card_sha256(MODEL_CARD)) if MODEL_CARD.exists() else 64
    64
    """
    text = Path(card).read_text(encoding="utf-8")
    match = re.search(r"^sha256:\s*`?([0-9a-f]{64})`?\s*$", text, flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"model card {card} has no 'sha256: <64 hex digits>' line")
    return match.group(1)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sorted_metadata(blob: bytes) -> bytes:
    """
    The same safetensors file with its metadata keys in sorted order.

    safetensors writes its metadata from a hash map, in an order that changes
    from one process to the next; sorting it makes the bytes, hence the
    sha256 in the model card, a function of the weights and metadata alone.
    The header keeps its length (same keys and values), so the tensor data
    that follows it is untouched.
    """
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + length])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > length:
        raise RuntimeError("re-serialised safetensors header is longer than the original")
    # safetensors pads its header with spaces to an 8-byte boundary; keep its length.
    return blob[:8] + text.ljust(length, b" ") + blob[8 + length :]


def save_model(model: PConvUNet, path: str | Path, *, metadata: dict[str, str]) -> str:
    """
    Write a network to a safetensors file with its metadata.

    Parameters
    ----------
    model : `PConvUNet`
        The network.
    path : str or `~pathlib.Path`
        Output file.
    metadata : dict of str
        Facts the engine needs (``tile_size``, ``fwhm_pixels_range``,
        ``sigma_calibration``, ...); the network configuration is added.

    Returns
    -------
    str
        The file's sha256, for the model card.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> net = PConvUNet(channels=(4, 8))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     digest = save_model(net, pathlib.Path(folder) / "m.safetensors", metadata={})
    >>> len(digest)
    64
    """
    from safetensors.torch import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in
               model.state_dict().items()}
    full_metadata = {str(key): str(value) for key, value in metadata.items()}
    full_metadata["format"] = _FORMAT
    full_metadata["config"] = json.dumps(
        {"in_channels": model.in_channels, "channels": list(model.channels)}
    )
    blob = _sorted_metadata(save(tensors, metadata=full_metadata))
    # Written beside the target and renamed over it, so no half-written file is ever left.
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(blob)
    # Package data must be readable by everyone.
    partial.chmod(0o644)
    partial.replace(path)
    return _file_sha256(path)


def load_model(
    path: str | Path | None = None,
    *,
    sha256: str | None = None,
    device: str | torch.device = "auto",
) -> PConvUNet:
    """
    Load the network from safetensors, verifying its checksum first.

    Parameters
    ----------
    path : str or `~pathlib.Path`, optional
        Weights file; the bundled weights when None.
    sha256 : str, optional
        Expected sha256 of the file. When None, it is read from the model
        card: the bundled card for the bundled weights, or a
        ``MODEL_CARD.md`` next to ``path`` when there is one (otherwise the
        file is loaded unverified).
    device : str or `torch.device`, optional
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    `PConvUNet`
        The network in eval mode on ``device``; its ``metadata`` attribute
        holds the file's metadata (tile size, sampling range, calibration),
        its ``sha256`` attribute the checksum of the file.

    Raises
    ------
    FileNotFoundError
        If the weights file is missing.
    ValueError
        If the checksum does not match, or the file is truncated, altered or
        not a network saved by `save_model`.

    Examples
    --------
    >>> model = load_model(device="cpu")  # doctest: +SKIP
    >>> model.training  # doctest: +SKIP
    False
    """
    from safetensors import SafetensorError, safe_open

    bundled = path is None
    path = DEFAULT_WEIGHTS if bundled else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no weights at {path}"
            + ("; the package was installed without its weights, reinstall it" if bundled else "")
        )
    if sha256 is None:
        card = MODEL_CARD if bundled else path.parent / "MODEL_CARD.md"
        if card.is_file():
            sha256 = read_card_sha256(card)
    actual = _file_sha256(path)
    if sha256 is not None:
        if actual != sha256.lower():
            raise ValueError(
                f"checksum mismatch for {path}: sha256 is {actual}, expected {sha256}; "
                "the file is altered or truncated, reinstall or re-export it"
            )
    target = resolve_device(device)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as stream:
            metadata = dict(stream.metadata() or {})
            state = {name: stream.get_tensor(name) for name in stream.keys()}
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"{path} is not a readable safetensors file (truncated or altered?): {error}"
        ) from error
    if metadata.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a nemesis_bkg network (metadata format missing)")
    config = json.loads(metadata["config"])
    model = PConvUNet(in_channels=config["in_channels"], channels=tuple(config["channels"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{path} does not match its configuration: {error}") from error
    model.metadata = metadata
    # Outputs record which weights made them (MODELSHA in the FITS header).
    model.sha256 = actual
    return model.eval().to(target)
