"""Which torch device a command runs on: ``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lama.config import ConfigError

if TYPE_CHECKING:
    import torch

AUTO = "auto"


def check_device(device: str, key: str = "device") -> None:
    """One line naming ``key`` unless ``device`` is a device name (whether it is present is :func:`resolve_device`'s
    to say, on the machine that runs the work)."""
    if device == AUTO:
        return
    import torch  # here, not above: the command line reads AUTO without loading torch

    try:
        torch.device(device)
    except RuntimeError:
        raise ConfigError(f"{key}={device!r}: expected auto, cpu, cuda or cuda:N") from None


def resolve_device(device: str) -> torch.device:
    """The device ``device`` names on this machine; a CUDA device where there is none is a one-line error."""
    import torch

    if device == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device)
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device}: CUDA is not available on this machine; use device=cpu or auto")
    return resolved
