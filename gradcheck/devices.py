"""Which devices exist, and CUDA precision settings held fixed while a check runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def available_devices() -> list[str]:
    """``["cpu"]``, plus ``"cuda"`` when a CUDA device is usable."""
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def resolve_device(device: str | torch.device) -> torch.device:
    """A ``torch.device``, or a ``ValueError`` that says which devices exist here."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a device name; expected one of {available_devices()}") from exc
    if resolved.type not in available_devices():
        raise ValueError(f"device {device!r} is not available here; available: {available_devices()}")
    return resolved


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """Pin float32 matmuls to IEEE float32 (no TF32) and fp16/bf16 reductions to full accumulation.

    TF32 rounds operands to 10 mantissa bits, an error of 2⁻¹¹ that no float32 bound allows; the
    error model in ``tolerance`` assumes each dtype's own unit roundoff. Settings are restored on exit.
    """
    matmul = torch.backends.cuda.matmul
    saved = (
        torch.get_float32_matmul_precision(),
        matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        matmul.allow_fp16_reduced_precision_reduction,
        matmul.allow_bf16_reduced_precision_reduction,
    )
    try:
        torch.set_float32_matmul_precision("highest")
        matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        matmul.allow_fp16_reduced_precision_reduction = False
        matmul.allow_bf16_reduced_precision_reduction = False
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        matmul.allow_tf32 = saved[1]
        torch.backends.cudnn.allow_tf32 = saved[2]
        matmul.allow_fp16_reduced_precision_reduction = saved[3]
        matmul.allow_bf16_reduced_precision_reduction = saved[4]
