"""Where torch work runs: the one device rule every stage shares."""

from __future__ import annotations

import torch


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"`` is CUDA when present, else CPU; anything else is taken as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
