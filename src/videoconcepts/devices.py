"""Where and in what precision torch work runs: the one device rule every stage shares."""

from __future__ import annotations

from typing import Literal

import torch

Precision = Literal["auto", "float32", "bfloat16"]


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"`` is CUDA when present, else CPU; anything else is taken as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_native_bf16() -> bool:
    """Whether the CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX tiles).

    torch exposes the test only under private names (checked in torch 2.13); without them
    the answer is no, which keeps fp32.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def pick_precision(precision: Precision, device: torch.device) -> torch.dtype:
    """The compute dtype: ``auto`` is bf16 on CUDA and on CPUs with native bf16, else fp32.

    bf16 runs under autocast (weights and inputs stay fp32, matrix products in bf16), so
    scores move by rounding noise only; the demo's comparison is in the README.
    """
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be auto, float32 or bfloat16, got {precision!r}")
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return torch.bfloat16 if native else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` as the config and the stores spell it: ``bfloat16``."""
    return str(dtype).removeprefix("torch.")


def describe(device: torch.device, dtype: torch.dtype) -> str:
    """One log line: the device, the chosen precision and what the CPU can do."""
    cpu = (
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16 {'yes' if cpu_has_native_bf16() else 'no'}"
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return f"device {name}, precision {dtype_name(dtype)} ({cpu})"
