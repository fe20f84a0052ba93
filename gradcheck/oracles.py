"""Independent answers to "what is the gradient?": reverse-mode autograd and central finite
differences, both evaluated in float64 on upcast copies of the inputs, each traced by the running
error model (``gradcheck.rounding``) so that it comes with its own error bound.

Nothing here calls the hand-written VJP; the check compares against these.

Complex inputs follow PyTorch's convention. A cotangent ``G`` stands for the real loss
``L = Re⟨G, f(x)⟩ = Re Σ conj(G)·f(x)``, and the gradient of ``x`` is the ``v`` with
``dL = Re⟨v, dx⟩`` for every complex ``dx`` (the conjugate Wirtinger derivative, times 2): for ``C = A·B``,
``dA = G·Bᴴ`` and ``dB = Aᴴ·G``, what ``torch.autograd`` returns. So finite differences of
``φ = Re⟨G, f⟩`` along a complex direction ``d`` check ``Re⟨v, d⟩``, which sees a wrong real part along
real directions and a wrong imaginary part along imaginary ones; random directions move both parts
of every element, coordinate probes move each part alone. For real tensors all of this is the plain
``⟨G, f⟩`` and ``⟨v, d⟩``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gradcheck.rounding import Decision, RunningError, same_decisions
from gradcheck.tolerance import gamma, reference_dtype

Tensor = torch.Tensor
REFERENCE_DTYPE = torch.float64
FULL_JACOBIAN_MAX_ELEMENTS = 4  # up to this many input elements in all, one probe per element (localizes)
RANDOM_PROBES = 2  # above it, this many joint random directions across every input …
LARGE_INPUT_ELEMENTS = 1 << 16  # … and one alone past this many elements, where a probe costs two full forwards
DIRECTION_QUANTUM = 32  # directions are multiples of 1/32 in [-4, 4), so h·v and 2h·v are exact
FAST_TWO_SUM_FLOOR = 2.0**-14  # nonzero |x| at least this: |x| > |step| and x + step loses what FastTwoSum says
FAST_TWO_SUM_FROM = 1 << 12  # elements: below, Knuth's TwoSum throughout
STEP_REFINEMENTS = 3  # a probe whose extrapolation gap is not small beside its difference retries at h/4, h/16, h/64 …
REFINE_ABOVE = 1e-3  # … while that gap exceeds this fraction of the difference and the probe's rounding


class OracleUnavailable(Exception):
    """The oracle cannot answer for this function (e.g. its forward is not differentiable by autograd)."""


def upcast(tensors: Sequence[Tensor], copy: bool = True) -> tuple[Tensor, ...]:
    """Contiguous float64 (complex128) copies, detached from any graph. Upcasting is exact for every dtype.
    ``copy=False``: a tensor already so is returned as it is (for tensors the caller owns), unless made
    under ``torch.inference_mode`` (autograd cannot take it as a leaf)."""
    return tuple(t.detach().to(reference_dtype(t.dtype), copy=copy or t.is_inference()).contiguous() for t in tensors)


def _parts(t: Tensor) -> Tensor:
    return torch.view_as_real(t.resolve_conj()) if t.is_complex() else torch.stack((t, torch.zeros_like(t)), -1)


def inner_terms(a: Tensor, b: Tensor) -> Tensor:
    """The real terms whose sum is ``Re⟨a, b⟩ = Re Σ conj(a)·b``: ``a·b`` for real tensors; for complex
    ones the products of the real parts and of the imaginary parts, so that the sum is a real dot
    product (twice as long) and its rounding is bounded as one."""
    if not (a.is_complex() or b.is_complex()):
        return a * b
    return _parts(a) * _parts(b)


@dataclass
class Reference:
    """Autograd's VJP of ``f`` in float64, with a bound on its own rounding per element, and what the
    traced forward revealed: its output, decisions taken at their boundary (a kink at the point),
    ops the error model had no rule for, and overflow."""

    grads: tuple[Tensor, ...]
    errors: tuple[Tensor, ...]
    output: Tensor
    kinks: list[str] = field(default_factory=list)
    fallbacks: dict[str, str] = field(default_factory=dict)
    overflows: list[str] = field(default_factory=list)


@dataclass
class TracedForward:
    """Autograd's forward of ``f``, traced and kept for its backward: the leaves (sharing the inputs'
    memory: autograd refuses to write into a leaf that requires grad), the mode, what ``f`` returned
    and the tensor autograd differentiates (``flatten`` of it), and the kinks the point sits on."""

    leaves: tuple[Tensor, ...]
    mode: RunningError
    result: Any
    output: Any
    kinks: list[str]


def autograd_forward(f: Callable[..., Any], inputs: Sequence[Tensor], *, exact: bool = False, probabilistic: float | None = None,
                     flatten: Callable[[Any], Any] = lambda out: out) -> TracedForward:
    leaves = tuple(t.detach().requires_grad_(True) for t in inputs)
    mode = RunningError(exact=exact, probabilistic=probabilistic)
    mode.watch(*leaves)
    with torch.enable_grad(), mode:
        result = f(*leaves)
        output = flatten(result)
    return TracedForward(leaves, mode, result, output, mode.at_kink())


def autograd_reference(f: Callable[..., Tensor], inputs: Sequence[Tensor], cotangent: Tensor, *, exact: bool = False,
                       probabilistic: float | None = None, forward: TracedForward | None = None) -> Reference:
    """``Jᵀ·G`` for every input by ``torch.autograd.grad`` on ``f``, traced; an input ``f`` ignores gets zeros.
    ``forward``: ``autograd_forward`` of ``f`` at ``inputs``, when it has been run already."""
    forward = forward if forward is not None else autograd_forward(f, inputs, exact=exact, probabilistic=probabilistic)
    leaves, mode, out, kinks = forward.leaves, forward.mode, forward.output, forward.kinks
    if not isinstance(out, Tensor) or not out.requires_grad:
        raise OracleUnavailable("the forward's output is not connected to its inputs in autograd's graph")
    mode.record_decisions = False
    with torch.enable_grad(), mode:
        grads = torch.autograd.grad(out, leaves, cotangent, allow_unused=True)
    forward.result = forward.output = None  # single use: the graph goes now, not when the caller lets go
    values, errors = [], []
    for x, g in zip(leaves, grads):
        if g is None:
            values.append(torch.zeros_like(x))
            errors.append(torch.zeros_like(x))
            continue
        e = mode.error(g)
        values.append(g.detach())
        errors.append(torch.zeros_like(x) if e is None else e)
    return Reference(tuple(values), tuple(errors), out.detach(), kinks, dict(mode.fallbacks), list(mode.overflows))


KINK_NUDGE_ULPS = 8  # how far nudged_references move each element: a few ulps, or a tiny normal number at 0


def nudged_references(f: Callable[..., Tensor], inputs: Sequence[Tensor], cotangent: Tensor,
                      generator: torch.Generator) -> list[tuple[Tensor, ...]]:
    """Autograd's VJP at points a few ulps away, on each side of every kink that the point sits on:
    all elements up, all down, and two random sign patterns. Smooth parts barely move; a gradient
    element that jumps between these is one where any one-sided derivative is a right answer."""
    signs = [torch.ones_like(x) for x in inputs]
    random = [torch.randint(0, 2, x.shape, generator=generator).to(x) * 2 - 1 for x in inputs]
    found = []
    for pattern in (signs, [-s for s in signs], random, [-r for r in random]):
        moved = [x + s * torch.maximum(x.abs() * KINK_NUDGE_ULPS * torch.finfo(x.dtype).eps, torch.full_like(x, 2.0**-1000))
                 for x, s in zip(inputs, pattern)]
        found.append(autograd_reference(f, moved, cotangent).grads)
    return found


def traced_vjp(f: Callable[..., Tensor], inputs: Sequence[Tensor], cotangent: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Autograd's VJP of ``f`` run in the inputs' own dtype, with its traced error bound: the fallback
    model of a hand-written VJP that the mode cannot see into (numpy, a compiled kernel)."""
    leaves = tuple(t.detach().clone().requires_grad_(True) for t in inputs)
    mode = RunningError()
    mode.watch(*leaves)
    with torch.enable_grad(), mode:
        out = f(*leaves)
        grads = torch.autograd.grad(out, leaves, cotangent.to(out.dtype), allow_unused=True)
    values = tuple(torch.zeros_like(x) if g is None else g.detach() for x, g in zip(leaves, grads))
    errors = tuple(torch.zeros(x.shape, dtype=REFERENCE_DTYPE) if g is None or (err := mode.error(g)) is None else err
                   for x, g in zip(leaves, grads))
    return values, errors


# ---- finite differences -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Phi:
    """``φ(x) = ⟨G, f(x)⟩`` at one point, with a bound on its rounding and what the trace saw."""

    value: float
    error: float
    degree: float
    decisions: list[Decision]


def phi(f: Callable[..., Tensor], point: Sequence[Tensor], cotangent: Tensor, *, exact: bool,
        lost: Sequence[Tensor | None] | None = None) -> Phi:
    """Evaluate φ under the error model: ``Σ |G|·E_f`` plus the rounding of the final dot product;
    ``lost``: how far each input element is from the exact point meant (an input error)."""
    mode = RunningError(exact=exact)
    mode.watch(*point)
    for t, e in zip(point, lost or ()):
        if e is not None and e.numel() and not bool(e.amax() == 0):  # e ≥ 0: its maximum says whether any is not
            mode.set_error(t, e, copy=False)
    with torch.no_grad(), mode:
        out = f(*point)
    out64 = out.detach().to(reference_dtype(out.dtype))
    err = mode.error(out)
    if exact or out64.is_complex() or cotangent.is_complex():
        terms = inner_terms(cotangent, out64)
        value = float(terms.sum())
        magnitude = float(terms.abs().sum())
        propagated = float((cotangent.abs() * err).sum()) if err is not None else 0.0
        integer = exact and bool(torch.equal(terms, terms.round())) and magnitude < 2.0**53
    else:  # dot products: the same sums (in another order, which γ_n covers) without their terms in memory
        g, o = cotangent.reshape(-1), out64.reshape(-1)
        value = float(torch.dot(g, o))
        magnitude = _weighted_sum(g, o, absolute=True)
        propagated = _weighted_sum(g, err.reshape(-1)) if err is not None else 0.0
        integer = False
    rounding = 0.0 if integer else gamma(max(out64.numel() * (2 if out64.is_complex() or cotangent.is_complex() else 1), 1), REFERENCE_DTYPE) * magnitude
    if not math.isfinite(value):
        propagated = math.inf
    return Phi(value, propagated + rounding, mode.degree(out), mode.decisions)


WEIGHTED_SUM_CHUNK = 1 << 16


def _weighted_sum(weights: Tensor, values: Tensor, absolute: bool = False) -> float:
    """``Σ |weights|·values`` (``|values|`` with ``absolute``) over flat tensors, in chunks: no |weights|
    as large as the inputs in memory."""
    if weights.numel() <= WEIGHTED_SUM_CHUNK:
        return float(torch.dot(weights.abs(), values.abs() if absolute else values))
    return sum(float(torch.dot(weights[k:k + WEIGHTED_SUM_CHUNK].abs(),
                               values[k:k + WEIGHTED_SUM_CHUNK].abs() if absolute else values[k:k + WEIGHTED_SUM_CHUNK]))
               for k in range(0, weights.numel(), WEIGHTED_SUM_CHUNK))


@dataclass(frozen=True)
class Probe:
    """One finite-difference test of the adjoint identity along a step ``delta`` (one tensor per input,
    ``None`` where that input does not move): ``⟨∇φ, delta⟩ ≈ difference`` within ``error``.

    A plain central difference ``φ(x₊) − φ(x₋)`` has ``delta = x₊ − x₋`` as realized in float64
    (``weight`` 1). When ``f`` is not known to be at most quadratic along the step, the Richardson
    combination ``8·D(h) − D(2h)`` is used, exact for polynomials of degree ≤ 4, with ``delta`` the same
    combination of the realized steps, about 6 single steps (``weight`` 6, used to express errors per
    unit step). ``crossed_kink``: the ends took different discrete decisions (relu's side, a
    comparison), so ``f`` is not smooth along the step and the probe says nothing about the gradient.
    ``element`` names the input element of a coordinate probe."""

    delta: tuple[Tensor | None, ...]
    difference: float
    weight: float
    error: float
    element: tuple[int, tuple[int, ...]] | None
    crossed_kink: bool
    degree: float
    truncation: float = 0.0  # the part of ``error`` that estimates the step's truncation (Richardson's gap)


_EXPONENT_BITS = 0x7FF0000000000000  # of a float64: with the mantissa cleared, a positive x is 2^floor(log2 x)


def _steps(x: Tensor, exact: bool, magnitude: Tensor | None = None) -> Tensor:
    """Exact mode: 1. Otherwise a power of two near ``u^(1/3)·max(1, |x|)``, so ``x ± h`` loses
    little, and the rounding error of φ, divided by h, balances truncation. (The power of two below the
    target: its exponent bits, in one pass.) ``magnitude``: ``|x|``, a fresh tensor the steps may be made in."""
    if exact:
        return torch.ones_like(x)
    target = (x.abs() if magnitude is None else magnitude).clamp_(min=1.0).mul_(torch.finfo(REFERENCE_DTYPE).eps ** (1 / 3))
    return target.view(torch.int64).bitwise_and_(_EXPONENT_BITS).view(REFERENCE_DTYPE)


def random_direction(x: Tensor, generator: torch.Generator, exact: bool) -> Tensor:
    """Exact mode: integers in [−2, 2]. Otherwise uniform multiples of 1/32 in [−4, 4) (256 values:
    random bytes, eight to one draw of the generator — drawing is what costs at large sizes): entries
    differ, so errors that cancel in a sum (a permuted gradient) do not cancel here, and the steps stay
    exactly representable. Complex: both parts drawn so."""
    shape = (*x.shape, 2) if x.is_complex() else tuple(x.shape)
    if exact:
        v = torch.randint(-2, 3, shape, generator=generator).to(REFERENCE_DTYPE)
    else:
        count = math.prod(shape)
        words = torch.randint(-(2**63), 2**63 - 1, (-(-count // 8),), generator=generator)
        v = words.view(torch.int8)[:count].reshape(shape).to(REFERENCE_DTYPE).mul_(1 / DIRECTION_QUANTUM)
    return (torch.view_as_complex(v) if x.is_complex() else v).to(x)


def directions(inputs: Sequence[Tensor], movable: Sequence[bool], generator: torch.Generator, *, exact: bool,
               only: int | None = None, count: int = RANDOM_PROBES) -> list[tuple[tuple[Tensor | None, ...], tuple[int, tuple[int, ...]] | None]]:
    """Unit coordinate directions when few elements move in all, else ``count`` joint random ones.
    ``only``: move that input alone (to localize a disagreement). A complex element is two coordinates,
    moved along 1 and along i."""
    moving = [i for i, m in enumerate(movable) if m and (only is None or i == only) and inputs[i].numel()]
    total = sum(inputs[i].numel() * (2 if inputs[i].is_complex() else 1) for i in moving)
    if total == 0:
        return []
    if total <= FULL_JACOBIAN_MAX_ELEMENTS and only is None:  # localizing one input needs no coordinates
        found: list[tuple[tuple[Tensor | None, ...], tuple[int, tuple[int, ...]] | None]] = []
        for i in moving:
            units = (1.0, 1j) if inputs[i].is_complex() else (1.0,)
            for element in itertools.product(*map(range, inputs[i].shape)):
                for unit in units:
                    v = torch.zeros_like(inputs[i])
                    v[element] = unit  # type: ignore[assignment]  # torch's __setitem__ stub omits complex scalars, which it accepts
                    found.append((tuple(v if j == i else None for j in range(len(inputs))), (i, element)))
        return found
    count = 1 if total > LARGE_INPUT_ELEMENTS else count
    return [(tuple(random_direction(inputs[j], generator, exact) if j in moving else None for j in range(len(inputs))), None)
            for _ in range(count)]


def _two_sum_error(a: Tensor, b: Tensor, s: Tensor) -> Tensor:
    """The exact rounding error of ``s = fl(a + b)``: ``a + b = s + e`` (Knuth's TwoSum)."""
    b_virtual = s - a
    return (a - (s - b_virtual)) + (b - b_virtual)


def _below_fast_two_sum(x: Tensor, magnitude: Tensor | None = None) -> Tensor | None:
    """The flat indices of the elements of ``x`` whose steps may outsize them (``0 < |x| < 2⁻¹⁴``), where
    FastTwoSum does not hold; None where it cannot be used at all (complex or non-contiguous ``x``).
    ``magnitude``: ``|x|``, when the caller has it."""
    if x.is_complex() or not x.is_contiguous() or x.numel() < FAST_TWO_SUM_FROM:
        return None  # (small tensors: TwoSum's six passes are fewer calls than finding the exceptions)
    magnitude = (x.abs() if magnitude is None else magnitude).reshape(-1)
    return ((magnitude < FAST_TWO_SUM_FLOOR) & (magnitude > 0)).nonzero().reshape(-1)


def _shifted(inputs: Sequence[Tensor], delta: Sequence[Tensor | None], factor: float,
             tiny: Sequence[Tensor | None] = ()) -> tuple[list[Tensor], list[Tensor | None]]:
    """The point ``x + factor·δ`` as float64 holds it (``δ = 2h·v``: a power of two times a multiple of
    1/32, so ``factor·δ`` is exact for the factors used, |factor| ≤ 1), and how far each element is from the exact
    point (``x + factor·δ`` rounds where it crosses a power of two; None for an input that does not
    move); φ is traced with that as input error. ``tiny``: per input, ``_below_fast_two_sum(x)``: every
    other element's loss is Dekker's FastTwoSum ``(s − x) − step`` (exact: the step is smaller than x),
    those elements' Knuth's TwoSum."""
    points: list[Tensor] = []
    lost: list[Tensor | None] = []
    for k, (x, d) in enumerate(zip(inputs, delta)):
        small = tiny[k] if k < len(tiny) else None
        if d is None:
            points.append(x)
            lost.append(None)
        elif small is not None:
            s = torch.add(x, d, alpha=factor)  # factor·δ is exact: one rounding, in the addition
            points.append(s)
            loss = (s - x).sub_(d, alpha=factor).abs_()
            if small.numel():
                x_small, d_small, s_small = (t.reshape(-1)[small] for t in (x, d, s))
                loss.view(-1)[small] = _two_sum_error(x_small, factor * d_small, s_small).abs()
            lost.append(loss)
        else:
            step = factor * d
            s = x + step
            points.append(s)
            lost.append(_two_sum_error(x, step, s).abs())
    return points, lost


def _phi_at(f: Callable[..., Tensor], inputs: Sequence[Tensor], delta: Sequence[Tensor | None], factor: float,
            cotangent: Tensor, exact: bool, tiny: Sequence[Tensor | None] = ()) -> Phi:
    point, lost = _shifted(inputs, delta, factor, tiny)
    return phi(f, point, cotangent, exact=exact, lost=lost)


def central_step(inputs: Sequence[Tensor], direction: Sequence[Tensor | None],
                 exact: bool) -> tuple[tuple[Tensor | None, ...], list[Tensor | None]]:
    """The span ``δ = 2h·v`` of a central difference along ``v`` (exact: h is a power of two, see ``_steps``),
    and per moving input the elements where FastTwoSum does not hold (``_below_fast_two_sum``): both from
    one ``|x|``."""
    deltas: list[Tensor | None] = []
    tiny: list[Tensor | None] = []
    for x, v in zip(inputs, direction):
        if v is None:
            deltas.append(None)
            tiny.append(None)
            continue
        magnitude = None if exact or x.is_complex() else x.abs()
        tiny.append(None if magnitude is None else _below_fast_two_sum(x, magnitude))
        h = _steps(x, exact, magnitude)  # (made in magnitude's memory)
        deltas.append(h.mul_(v).mul_(2) if not v.is_complex() else torch.mul(h, v).mul_(2))
    return tuple(deltas), tiny


def probe(f: Callable[..., Tensor], inputs: Sequence[Tensor], cotangent: Tensor,
          delta: tuple[Tensor | None, ...], element: tuple[int, tuple[int, ...]] | None, *, exact: bool,
          tiny: Sequence[Tensor | None] | None = None) -> Probe:
    """A central difference spanning ``delta`` (``central_step``); Richardson-extrapolated unless the traced forward
    shows ``f`` at most quadratic in the moving inputs. Where the extrapolation's own error estimate is
    not small beside the difference — the step outran the scale on which ``f`` varies (a normalization
    of a nearly constant column varies on the scale of √eps, however large its inputs) — the step is
    divided by 4, up to ``STEP_REFINEMENTS`` times, while that estimate exceeds the rounding part: the
    finest probe is kept, where the estimate is most trustworthy."""
    if tiny is None:
        tiny = [None if d is None or exact else _below_fast_two_sum(x) for x, d in zip(inputs, delta)]
    best = _probe_with_delta(f, inputs, cotangent, delta, element, exact=exact, tiny=tiny)
    for _ in range(0 if exact else STEP_REFINEMENTS):
        gap = best.truncation
        if best.crossed_kink or gap <= REFINE_ABOVE * abs(best.difference) or gap <= best.error - gap:
            break  # resolved, or rounding already dominates (a finer step would only add rounding)
        delta = tuple(None if d is None else d / 4 for d in delta)
        finer = _probe_with_delta(f, inputs, cotangent, delta, element, exact=exact, tiny=tiny)
        if finer.crossed_kink:
            break
        best = finer  # the gap estimate holds better the smaller the step: the finer probe is kept
    return best


def _probe_with_delta(f: Callable[..., Tensor], inputs: Sequence[Tensor], cotangent: Tensor,
                      delta: tuple[Tensor | None, ...], element: tuple[int, tuple[int, ...]] | None,
                      *, exact: bool, tiny: Sequence[Tensor | None] = ()) -> Probe:
    plus, minus = (_phi_at(f, inputs, delta, s, cotangent, exact, tiny) for s in (0.5, -0.5))
    d1 = plus.value - minus.value
    e1 = plus.error + minus.error
    degree = max(plus.degree, minus.degree)
    kink = not same_decisions(plus.decisions, minus.decisions)
    if degree <= 2:
        return Probe(delta, d1, 1.0, e1 + _subtraction(d1, exact), element, kink, degree)
    plus2, minus2 = (_phi_at(f, inputs, delta, s, cotangent, exact, tiny) for s in (1.0, -1.0))
    d2 = plus2.value - minus2.value
    kink = kink or not same_decisions(plus.decisions, plus2.decisions) or not same_decisions(minus.decisions, minus2.decisions)
    combined = 8 * d1 - d2  # = ⟨∇φ, 6·delta⟩ + O(h⁵): exact for polynomials of degree ≤ 4
    error = 8 * e1 + plus2.error + minus2.error + _subtraction(combined, exact) * 3
    gap = 0.0 if degree <= 4 else abs(combined - 6 * d1)  # smooth f: the gap between the O(h²) and O(h⁴)
    return Probe(tuple(None if d is None else 6 * d for d in delta), combined, 6.0, error + gap, element, kink, degree,
                 truncation=gap)  # estimates bounds the latter's error


def _subtraction(value: float, exact: bool) -> float:
    return 0.0 if exact and float(value).is_integer() else abs(value) * torch.finfo(REFERENCE_DTYPE).eps


def finite_difference_probes(f: Callable[..., Tensor], inputs: Sequence[Tensor], cotangent: Tensor, *, exact: bool,
                             generator: torch.Generator, movable: Sequence[bool] | None = None, only: int | None = None,
                             count: int = RANDOM_PROBES) -> list[Probe]:
    """Probes of φ for the movable inputs (all float64): coordinate probes for few elements, else
    ``count`` joint random directions; ``only`` restricts the step to one input."""
    movable = movable if movable is not None else [True] * len(inputs)
    pending = directions(inputs, movable, generator, exact=exact, only=only, count=count)
    pending.reverse()
    found = []
    while pending:  # each direction dropped once its step is made: a probe keeps δ, not the direction too
        direction, element = pending.pop()
        delta, tiny = central_step(inputs, direction, exact)
        del direction
        found.append(probe(f, inputs, cotangent, delta, element, exact=exact, tiny=tiny))
        del delta
    return found


def step_scale(p: Probe) -> float:
    """Length of a probe's step, to express its error in gradient units."""
    lengths = [float(d.abs().max()) for d in p.delta if d is not None and d.numel()]
    return max(lengths, default=1.0)
