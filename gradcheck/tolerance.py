"""Unit roundoff and the constants of rounding-error bounds.

The standard model of floating-point arithmetic: ``fl(a op b) = (a op b)(1 + δ)`` with ``|δ| ≤ u``.
A sum or dot product of length ``k`` computed in any order errs by at most ``γ_k·Σ|terms|`` with
``γ_k = k·u/(1 − k·u)`` (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1). The
probabilistic variant (Higham & Mary, 2019) replaces ``γ_k`` by ``γ̃_k(λ) = exp(λ·√k·u + k·u²/(1 − u)) − 1``,
which holds with probability at least ``1 − 2·exp(−λ²(1 − u)²/2)`` per value when rounding errors
are independent and mean-independent.
"""

from __future__ import annotations

import math

import torch

FLOATING_DTYPES: tuple[torch.dtype, ...] = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
# A complex number is a pair of its real dtype's numbers (complex64: two float32s), each part rounded
# with that dtype's u; what a complex operation loses in modulus is bounded from there (rounding.py).
COMPLEX_DTYPES: tuple[torch.dtype, ...] = (torch.complex128, torch.complex64)


def differentiable_dtype(dtype: torch.dtype) -> bool:
    """Floating point or complex: the dtypes autograd differentiates."""
    return dtype.is_floating_point or dtype.is_complex


def reference_dtype(dtype: torch.dtype) -> torch.dtype:
    """Where the oracles and the error model compute: float64, or complex128 for a complex dtype."""
    return torch.complex128 if dtype.is_complex else torch.float64


def unit_roundoff(dtype: torch.dtype) -> float:
    """``u``: half the distance from 1 to the next representable number (2⁻⁵³ for float64); a complex
    dtype's is that of its parts (complex64: float32's)."""
    if not differentiable_dtype(dtype):
        raise TypeError(f"unit_roundoff needs a floating or complex dtype, got {dtype}")
    return torch.finfo(dtype).eps / 2


def gamma(k: int, dtype: torch.dtype) -> float:
    """``γ_k = k·u/(1 − k·u)``; infinite once ``k·u ≥ 1``, where no bound exists (a caller turns
    that into "no power", never into a NaN)."""
    ku = k * unit_roundoff(dtype)
    return ku / (1 - ku) if ku < 1 else math.inf


def probabilistic_gamma(k: int, dtype: torch.dtype, lam: float) -> float:
    """``γ̃_k(λ)`` of Higham & Mary (2019): grows like ``λ·√k·u`` instead of ``k·u``."""
    u = unit_roundoff(dtype)
    return math.expm1(lam * math.sqrt(k) * u + k * u * u / (1 - u))


def failure_probability(lam: float, dtype: torch.dtype) -> float:
    """The probability with which one ``γ̃_k(λ)`` bound may fail: ``2·exp(−λ²(1 − u)²/2)``."""
    u = unit_roundoff(dtype)
    return min(1.0, 2 * math.exp(-(lam**2) * (1 - u) ** 2 / 2))
