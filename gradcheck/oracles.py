"""Independent answers to "what is the gradient?": reverse-mode autograd and central finite
differences, both evaluated in float64 on upcast copies of the inputs.

Nothing here calls the hand-written VJP; the check compares against these.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from gradcheck.tolerance import gamma

Tensor = torch.Tensor
REFERENCE_DTYPE = torch.float64
FULL_JACOBIAN_MAX_ELEMENTS = 16  # above this, random directional probes keep the cost O(forward)
RANDOM_PROBES = 4


class OracleUnavailable(Exception):
    """The oracle cannot answer for this function (e.g. its forward is not differentiable by autograd)."""


def upcast(tensors: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """Contiguous float64 copies, detached from any graph. Upcasting is exact for every float dtype."""
    return tuple(t.detach().to(REFERENCE_DTYPE, copy=True).contiguous() for t in tensors)


def autograd_vjp(f: Callable[..., Tensor], inputs: Sequence[Tensor], cotangent: Tensor) -> tuple[Tensor, ...]:
    """``Jᵀ·G`` for every input, by ``torch.autograd.grad`` on ``f``; an input ``f`` ignores gets zeros."""
    leaves = tuple(t.detach().clone().requires_grad_(True) for t in inputs)
    with torch.enable_grad():
        out = f(*leaves)
        if not isinstance(out, Tensor) or not out.requires_grad:
            raise OracleUnavailable("the forward's output is not connected to its inputs in autograd's graph")
        grads = torch.autograd.grad(out, leaves, cotangent, allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g.detach() for x, g in zip(leaves, grads))


def magnitude_vjp(
    f: Callable[..., Tensor], inputs: Sequence[Tensor], cotangent: Tensor, signs: Sequence[int] | None
) -> tuple[Tensor, ...]:
    """The VJP's terms summed in absolute value: the VJP of ``f`` at ``sᵢ·|xᵢ|`` with cotangent ``|G|``.

    For a polynomial VJP (the whole rule table) this is exactly the ``M`` of the error bound
    ``γ_d·M``, provided the signs make every term positive: ``−1`` for an input that is subtracted,
    as ``y`` in ``½Σ(ŷ − y)²``. For ``dA = G·Bᵀ`` it is ``|G|·|Bᵀ|``.
    """
    signs = signs if signs is not None else (1,) * len(inputs)
    signed = tuple(s * x.abs() for s, x in zip(signs, inputs))
    return tuple(g.abs() for g in autograd_vjp(f, signed, cotangent.abs()))


@dataclass(frozen=True)
class Probe:
    """One central difference of ``φ(x) = ⟨G, f(x)⟩`` along a realized step ``delta = x₊ − x₋``:
    ``difference = φ(x₊) − φ(x₋) ≈ ⟨∇φ, delta⟩``, within ``error``; ``element`` is set for a coordinate probe."""

    delta: Tensor
    difference: float
    error: float
    element: tuple[int, ...] | None


def _phi(f: Callable[..., Tensor], inputs: Sequence[Tensor], index: int, value: Tensor, cotangent: Tensor) -> float:
    args = list(inputs)
    args[index] = value
    with torch.no_grad():
        return float((cotangent * f(*args)).sum())


def _steps(x: Tensor, exact: bool) -> Tensor:
    """Exact mode: 1. Otherwise a power of two near ``u^(1/3)·max(1, |x|)``, so ``x ± h`` loses
    little, and the rounding error of φ, divided by h, balances truncation."""
    if exact:
        return torch.ones_like(x)
    target = torch.finfo(REFERENCE_DTYPE).eps ** (1 / 3) * x.abs().clamp(min=1.0)
    return torch.exp2(torch.floor(torch.log2(target)))


def _unit(x: Tensor, element: tuple[int, ...]) -> Tensor:
    v = torch.zeros_like(x)
    v[element] = 1.0
    return v


def _random_direction(x: Tensor, generator: torch.Generator) -> Tensor:
    """Entries in {−1, 0, 1}: exact in every mode, and no element is favoured."""
    return torch.randint(-1, 2, x.shape, generator=generator).to(x)


def finite_difference_probes(
    f: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    cotangent: Tensor,
    index: int,
    *,
    exact: bool,
    quadratic: bool,
    signs: Sequence[int] | None,
    generator: torch.Generator,
) -> list[Probe]:
    """Central differences for input ``index`` (inputs and cotangent already float64).

    Small inputs get every Jacobian column (one coordinate probe per element); larger ones get
    ``RANDOM_PROBES`` random directions, checked through the adjoint identity ⟨Jᵀ·G, v⟩ = ⟨G, J·v⟩.
    ``error`` bounds the rounding of φ (its terms in absolute value, ``γ_d``), plus — unless ``f`` is
    known to be at most quadratic in each input, where a central difference is exact — a Richardson
    estimate of truncation, |D(h) − D(2h)|. In exact mode (integer inputs, step 1) the error is 0.
    """
    x = inputs[index]
    if x.numel() == 0:
        return []
    h = _steps(x, exact)
    if x.numel() <= FULL_JACOBIAN_MAX_ELEMENTS:
        directions = [(_unit(x, element), element) for element in itertools.product(*map(range, x.shape))]
    else:
        directions = [(_random_direction(x, generator), None) for _ in range(RANDOM_PROBES)]

    out_numel = max(1, cotangent.numel())
    forward_depth = sum(t.numel() for t in inputs) + out_numel + 4
    rounding = 0.0 if exact else gamma(forward_depth, REFERENCE_DTYPE)
    if rounding:
        # The terms of φ in absolute value are increasing in every |x_j|, so one evaluation at
        # |x| + 2h bounds them at every probe point.
        widened = list(inputs)
        widened[index] = x.abs() + 2 * h
        signs_ = signs if signs is not None else (1,) * len(inputs)
        widened = [s * t.abs() for s, t in zip(signs_, widened)]
        with torch.no_grad():
            terms = float((cotangent.abs() * f(*widened).abs()).sum())
        rounding_error = 2 * rounding * terms + torch.finfo(REFERENCE_DTYPE).tiny
    else:
        rounding_error = 0.0

    probes = []
    for v, element in directions:
        plus, minus = x + h * v, x - h * v
        difference = _phi(f, inputs, index, plus, cotangent) - _phi(f, inputs, index, minus, cotangent)
        error = rounding_error
        if not exact and not quadratic:
            wide = _phi(f, inputs, index, x + 2 * h * v, cotangent) - _phi(f, inputs, index, x - 2 * h * v, cotangent)
            error += abs(wide / 2 - difference) + rounding_error  # D(2h) uses a step twice as long
        probes.append(Probe(plus - minus, difference, error, element))
    return probes


def step_scale(probe: Probe) -> float:
    """Length of a probe's step, to express its error in gradient units."""
    return float(probe.delta.abs().max()) if probe.delta.numel() else 1.0
