"""Which devices exist, and CUDA precision settings held fixed while a check runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def available_devices() -> list[str]:
    """``["cpu"]``, plus ``"cuda"`` when a CUDA device is usable."""
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _precision_knobs() -> list[tuple[object, str, object]]:
    """(owner, attribute, full-precision value) for every setting that lets CUDA round below the dtype.

    torch ≥ 2.9 has the ``fp32_precision`` API and refuses a mix with the legacy ``allow_tf32``
    flags, so only one family is touched.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    knobs: list[tuple[object, str, object]]
    if hasattr(matmul, "fp32_precision"):
        # cudnn.conv: torch swaps the cudnn module for a CudnnModule at import; the stubs see the plain module
        knobs = [(matmul, "fp32_precision", "ieee"), (cudnn.conv, "fp32_precision", "ieee")]  # type: ignore[attr-defined]
    else:  # torch < 2.9
        knobs = [(matmul, "allow_tf32", False), (cudnn, "allow_tf32", False)]
    knobs += [(matmul, "allow_fp16_reduced_precision_reduction", False),
              (matmul, "allow_bf16_reduced_precision_reduction", False)]
    return [(owner, name, value) for owner, name, value in knobs if hasattr(owner, name)]


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """Pin float32 matmuls and convolutions to IEEE float32 (no TF32) and fp16/bf16 reductions to full
    accumulation while a check runs; restore the caller's settings on exit.

    TF32 rounds operands to 10 mantissa bits, an error of 2⁻¹¹ that no float32 bound allows; the
    error model in ``tolerance`` assumes each dtype's own unit roundoff.
    """
    knobs = _precision_knobs()
    saved = [getattr(owner, name) for owner, name, _ in knobs]
    try:
        for owner, name, value in knobs:
            setattr(owner, name, value)
        yield
    finally:
        for (owner, name, _), value in zip(knobs, saved):
            setattr(owner, name, value)
