"""Measuring what a checker catches: seeded operands, VJPs with a planted relative error, and a VJP
wrapped as a ``torch.autograd.Function`` (so that ``torch.autograd.gradcheck`` can judge it too)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

Tensor = torch.Tensor


def seeded_operands(shapes: Sequence[tuple[int, ...]], dtype: torch.dtype, seed: int) -> tuple[Tensor, ...]:
    """Standard-normal tensors of ``shapes``, drawn in float64 from ``seed`` and rounded to ``dtype``."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s, generator=generator, dtype=torch.float64).to(dtype) for s in shapes)


def perturbed_vjp(vjp: Callable[..., tuple[Any, ...]], index: int, epsilon: float) -> Callable[..., tuple[Any, ...]]:
    """``vjp`` with the gradient of input ``index`` scaled by ``1 + epsilon``."""

    def wrong(*args: Tensor) -> tuple[Any, ...]:
        grads = list(vjp(*args))
        grads[index] = grads[index] * (1 + epsilon)
        return tuple(grads)

    return wrong


def as_function(forward: Callable[..., Tensor], vjp: Callable[..., tuple[Any, ...]]) -> type[torch.autograd.Function]:
    """A ``torch.autograd.Function`` whose backward is ``vjp``."""

    class HandWritten(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, *inputs: Tensor) -> Tensor:  # ctx: Any, as in torch.autograd.Function's own signature
            ctx.save_for_backward(*inputs)
            return forward(*inputs)

        @staticmethod
        def backward(ctx: Any, G: Tensor) -> tuple[Any, ...]:
            return tuple(vjp(*ctx.saved_tensors, G))

    return HandWritten
