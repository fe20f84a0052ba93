"""The error model: how far a correctly computed gradient may lie from the exact one.

Every bound here is a forward error bound from the standard model of floating-point arithmetic,
``fl(a op b) = (a op b)(1 + δ)`` with ``|δ| ≤ u``. A value computed through at most ``d`` roundings on
any path from the inputs (a dot product of length ``k`` has ``d = k``) differs from the exact value
by at most ``γ_d · M``, where ``γ_d = d·u / (1 − d·u)`` and ``M`` is the same expression evaluated on
absolute values (for ``dA = G·Bᵀ`` that is ``|G|·|Bᵀ|``; Higham, *Accuracy and Stability of Numerical
Algorithms*, §3.1–3.5). Underflow adds at most one smallest-normal spacing per rounding, which also
covers hardware that flushes subnormals to zero.
"""

from __future__ import annotations

import torch

FLOATING_DTYPES: tuple[torch.dtype, ...] = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def unit_roundoff(dtype: torch.dtype) -> float:
    """``u``: half the distance from 1 to the next representable number (2⁻⁵³ for float64)."""
    if not dtype.is_floating_point:
        raise TypeError(f"unit_roundoff needs a floating dtype, got {dtype}")
    return torch.finfo(dtype).eps / 2


def gamma(depth: int, dtype: torch.dtype) -> float:
    """``γ_d = d·u/(1 − d·u)``; infinite once ``d·u ≥ 1``, where no bound exists."""
    du = depth * unit_roundoff(dtype)
    return du / (1 - du) if du < 1 else float("inf")


def underflow_allowance(depth: int, dtype: torch.dtype) -> float:
    """Absolute error that underflow (gradual or flushed) can add over ``depth`` roundings."""
    return depth * torch.finfo(dtype).tiny


def rounding_bound(magnitude: torch.Tensor, reference: torch.Tensor, depth: int, dtype: torch.dtype) -> torch.Tensor:
    """Per-element bound on ``|computed − exact|`` for a value computed in ``dtype`` through ``depth`` roundings.

    ``magnitude`` is the expression on absolute values; ``reference`` the exact (float64) value. The
    ``max`` keeps the bound valid when a caller's magnitude underestimates (a lone subtraction still
    rounds relative to its result), and costs nothing when the magnitude is right, since then
    ``magnitude ≥ |reference|``.
    """
    scale = torch.maximum(magnitude.abs(), reference.abs())
    return gamma(depth, dtype) * scale + underflow_allowance(depth, dtype)
