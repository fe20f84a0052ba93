"""The error model read off the computation: running error analysis, op by op, under a dispatch mode.

``RunningError`` is a ``TorchDispatchMode``. Code runs under it exactly as it would without it — in its
own dtypes, with its own casts and kernels — and for every floating-point tensor the code produces,
the mode keeps a float64 tensor ``E`` of the same shape with ``|computed − exact| ≤ E`` elementwise,
where *exact* is the same expression evaluated in exact arithmetic on the same inputs (Wilkinson's
running error analysis; Higham, *Accuracy and Stability of Numerical Algorithms*, §3.3).

For one op ``y = g(x)`` with inputs known to within ``E_x``, the output's bound has two parts:

* propagation — how far ``g`` moves when its inputs move by ``E_x``: ``E_a + E_b`` for ``a ± b``,
  ``|a|·E_b + E_a·|b| + E_a·E_b`` for ``a·b``, ``|A|·E_B + E_A·|B| + E_A·E_B`` for ``A·B``, the change of
  a monotone ``g`` over ``[x − E_x, x + E_x]``, ``Σ E`` for a sum, the same view or gather of ``E`` for
  views and gathers;
* the op's own rounding, *measured*: the op is evaluated again in float64 on the computed inputs,
  ``|y − y₆₄|`` is what the op's kernel actually lost, and the float64 evaluation's own rounding is
  bounded a priori (``u₆₄·|y|`` for a correctly rounded op, ``γ_k(u₆₄)·|A|·|B|`` for a reduction of
  length ``k``, a few ulps for a transcendental function).

Measuring each op's rounding makes the bound hold for whatever kernel ran (fp32 accumulation of
half-precision products, fused kernels, library transcendentals) and keeps it close to the real
error; the a-priori part is needed only for float64 itself. Composite ops are decomposed
(``torch._decomp``) and traced through their primitives; an op with neither a rule nor a
decomposition gets forward-mode propagation with a margin, and is named in ``fallbacks``.

The mode also records what a finite-difference oracle needs to know about ``f``: each tensor's
polynomial degree in the watched inputs (central differences are exact up to rounding for degree
≤ 2), the discrete decisions taken (comparisons, relu, max: two evaluations with different decisions
lie on different sides of a kink) and whether a decision was taken at its boundary (a kink *at* the
point). Boolean tensors carry, instead of an error, where their value is uncertain.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch._decomp import decomposition_table
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from gradcheck.tolerance import gamma, probabilistic_gamma, unit_roundoff

Tensor = torch.Tensor
aten = torch.ops.aten
F64 = torch.float64
C128 = torch.complex128  # where complex values are evaluated: pairs of float64s
U64 = unit_roundoff(F64)
TINY64 = torch.finfo(F64).tiny
EXACT_GRID, EXACT_LIMIT = 2.0**16, 2.0**21  # see Call.integers
TRANSCENDENTAL_ULPS = 4  # libm-quality float64 exp/log/tanh/erf/…: within a few ulps
FALLBACK_MARGIN = 2.0
# One complex multiplication (the standard formula, with or without FMA) errs by at most √2·γ₂·|a·b|
# in modulus (Higham, Lemma 3.5): 2√2·u/(1 − 2u) ≤ 2·1.5·u, i.e. 1.5 "ulps" in the terms of _local.
COMPLEX_MUL_ULPS = 1.5
POLYNOMIAL_INF = math.inf


@dataclass
class Tracked:
    """What the mode knows of one tensor: its error bound (float64; for bool tensors, 1 where the value
    is uncertain) and its polynomial degree in the watched inputs (``inf``: not a polynomial)."""

    error: Tensor
    degree: float
    opaque: bool = False  # made outside torch (numpy, a list) and only moved or copied since: not traced
    zero: ZeroError | None = None  # the error is known to be all zero (shared with views: see ZeroError)


class ZeroError:
    """Knowledge that an error tensor is all zero — an input's, a constant's — shared by a tensor and
    its views. Rules then see the error as the scalar 0 and skip its arithmetic (and the pass over it
    that asking "is any element nonzero?" costs). Writing into any of the tensors' errors in place
    withdraws the knowledge for all of them. The zeros are an expanded scalar (``_lazy``), allocated when
    a view of a tensor that is not an input is taken (an input's views stay expanded: see ``watched``)."""

    __slots__ = ("holds", "watched")

    def __init__(self, watched: bool = False) -> None:
        self.holds = True
        # An input's: its views stay lazy too (a transpose for a product costs no zeros). Written in
        # place through one of them — an input changed under the mode — the views' bounds are unknown:
        # read as infinite (``RunningError._readable``).
        self.watched = watched


def _lazy(error: Tensor) -> bool:
    """Whether an error tensor is an expanded scalar (a lazy zero), not memory of its own."""
    return error.untyped_storage().nbytes() < error.numel() * error.element_size()


def _zero_tracked(t: Tensor, degree: float, dtype: torch.dtype = F64, opaque: bool = False, watched: bool = False) -> Tracked:
    return Tracked(torch.zeros((), dtype=dtype, device=t.device).expand(t.shape), degree, opaque, ZeroError(watched))


def _known_zero(info: Tracked | None) -> bool:
    return info is None or (info.zero is not None and info.zero.holds)


@dataclass
class Call:
    """One op as a rule sees it."""

    mode: RunningError
    func: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    out: Any
    before: dict[int, Tensor] = field(default_factory=dict)  # an in-place op's operands as they were

    def tensors(self) -> list[Tensor]:
        return [a for a in _leaves((self.args, self.kwargs)) if isinstance(a, Tensor)]

    def x64(self, t: Any) -> Any:
        """The computed value in float64, complex128 for a complex one (python scalars stay as they are)."""
        if isinstance(t, Tensor) and (t.is_floating_point() or t.dtype == torch.bool):
            return self.before.get(id(t), t).detach().to(F64)
        if isinstance(t, Tensor) and t.is_complex():
            return self.before.get(id(t), t).detach().to(C128)
        return t

    def e(self, t: Any) -> Tensor | float:
        """The error bound of an argument (0 for constants and untracked tensors)."""
        if not isinstance(t, Tensor):
            return 0.0
        info = self.mode.info(t)
        return 0.0 if info is None or _known_zero(info) else self.mode._readable(info)

    def deg(self, t: Any) -> float:
        if not isinstance(t, Tensor):
            return 0.0
        info = self.mode.info(t)
        return 0.0 if info is None else info.degree

    def max_degree(self) -> float:
        return max([self.deg(t) for t in self.tensors()], default=0.0)

    def integers(self, *values: Any) -> bool:
        """In exact mode: whether float64 computes this op without rounding — every value (operands,
        result, magnitude of a reduction) on the grid of multiples of 2⁻¹⁶ and below 2²¹ in size, so
        that products (multiples of 2⁻³² below 2²¹) and their sums fit in 53 bits."""
        if not self.mode.exact:
            return False
        for v in values:
            if isinstance(v, Tensor):
                if v.numel() and not _on_exact_grid(v):
                    return False
            elif isinstance(v, (int, float)) and not _on_exact_grid(torch.tensor(float(v), dtype=F64)):
                return False
        return all(not _nonzero(self.e(t)) for t in self.tensors())


def _on_exact_grid(v: Tensor) -> bool:
    if v.is_complex():  # both parts on the grid (a complex product is then two exact real dot products)
        v = torch.view_as_real(v.detach().resolve_conj())
    scaled = v.detach().to(F64) * EXACT_GRID
    return bool(torch.equal(scaled, scaled.round())) and float(v.abs().max()) < EXACT_LIMIT


Rule = Callable[[Call], tuple[Any, Any, float]]  # -> (y64, E64 of the float64 evaluation, degree)
_RULES: dict[Any, Rule] = {}
_STRUCTURAL: set[Any] = set()


def rule(*ops: Any) -> Callable[[Rule], Rule]:
    """Register a rule for aten ops (an overload packet covers every overload)."""

    def register(fn: Rule) -> Rule:
        for op in ops:
            _RULES[op] = fn
        return fn

    return register



def _leaves(tree: Any) -> list[Any]:
    """The leaves of an op's arguments (tuples, lists and dicts nested in any way) — ``tree_flatten``
    without its generality, which costs more than many of the ops it is asked about."""
    if isinstance(tree, (tuple, list)):
        found: list[Any] = []
        for item in tree:
            if isinstance(item, (tuple, list, dict)):
                found.extend(_leaves(item))
            else:
                found.append(item)
        return found
    if isinstance(tree, dict):
        return _leaves(list(tree.values()))
    return [tree]



def all_finite(t: Tensor) -> bool:
    """Whether every element is finite: one summation first (NaN and ±inf survive a sum), the
    elementwise test only when the sum is not finite (a non-finite element, or the sum overflowed)."""
    if t.numel() == 0 or bool(torch.isfinite(t.sum())):
        return True
    return bool(torch.isfinite(t).all())


# ---- helpers ---------------------------------------------------------------------------------------

def _abs(v: Any) -> Any:
    return v.abs() if isinstance(v, Tensor) else abs(v)


def _nonzero(e: Any) -> bool:
    """Whether an error bound (≥ 0, or NaN/inf) has a nonzero element: by its maximum, a read-only
    reduction several times cheaper than ``any`` (which writes a boolean copy first)."""
    if not isinstance(e, Tensor):
        return bool(e != 0)
    if e.dtype == torch.bool or e.is_complex():
        return bool(e.any())
    return e.numel() > 0 and not bool(e.amax() == 0)  # NaN compares unequal: nonzero


def _local(y64: Tensor, ulps: float = 0.5) -> Tensor:
    """A priori rounding of one float64 op of ``ulps`` ulps accuracy (0.5: correctly rounded). An infinite
    result has none of its own: IEEE arithmetic on an infinity is exact (−inf − 3 is −inf), and one made
    from finite operands — an overflow — is left unbounded by ``RunningError._record``."""
    local = (2 * ulps * U64) * y64.abs() + TINY64
    if not all_finite(local):
        local = local.masked_fill(torch.isinf(local), 0.0)
    return local


def _inf_where(condition: Tensor, value: Tensor) -> Tensor:
    return torch.where(condition, torch.full_like(value, math.inf), value)


def _complex(v: Any) -> bool:
    return v.is_complex() if isinstance(v, Tensor) else isinstance(v, complex)


def _wide(t: Tensor) -> Tensor:
    """``t``'s values in float64, or complex128 for a complex tensor (exact for every dtype)."""
    return t.detach().to(C128 if t.is_complex() else F64)


def _as_tensor(v: Any, like: Tensor) -> Tensor:
    return v if isinstance(v, Tensor) else torch.full_like(like, float(v), dtype=F64)


# ---- arithmetic ------------------------------------------------------------------------------------

@rule(aten.add.Tensor, aten.add.Scalar, aten.sub.Tensor, aten.sub.Scalar, aten.rsub.Tensor, aten.rsub.Scalar,
      aten.add_.Tensor, aten.add_.Scalar, aten.sub_.Tensor, aten.sub_.Scalar)
def _add(c: Call) -> tuple[Any, Any, float]:
    a, b = c.args[0], c.args[1]
    alpha = c.kwargs.get("alpha", c.args[2] if len(c.args) > 2 else 1)
    name = c.func._overloadpacket.__name__
    sign = -1 if name.startswith("sub") else 1
    a64, b64 = c.x64(a), c.x64(b)
    if name.startswith("rsub"):
        y64 = b64 - alpha * a64
        err = c.e(b) + abs(alpha) * _abs(c.e(a))
    else:
        y64 = a64 + sign * alpha * b64
        err = c.e(a) + abs(alpha) * _abs(c.e(b))
    y64 = _as_tensor(y64, c.out)
    local = 0.0 if c.integers(a64, b64, y64) else _local(y64)
    return y64, err + local, max(c.deg(a), c.deg(b))


@rule(aten.mul.Tensor, aten.mul.Scalar, aten.mul_.Tensor, aten.mul_.Scalar)
def _mul(c: Call) -> tuple[Any, Any, float]:
    a, b = c.args[0], c.args[1]
    a64, b64 = c.x64(a), c.x64(b)
    ea, eb = c.e(a), c.e(b)
    y64 = _as_tensor(a64 * b64, c.out)
    err = _abs(a64) * eb + ea * _abs(b64) + ea * eb
    # complex × real scales each part (one rounding each); complex × complex is Lemma 3.5's product
    ulps = COMPLEX_MUL_ULPS if _complex(a64) and _complex(b64) else 0.5
    local = 0.0 if c.integers(a64, b64, y64) else _local(y64, ulps)
    return y64, err + local, c.deg(a) + c.deg(b)


def _real_only(fn: Rule) -> Rule:
    """A rule whose reasoning holds on the real line only (monotonicity, 1-Lipschitz sin, a division's
    single rounding): a complex operand gets the fallback, named in the report, instead."""

    def guarded(c: Call) -> tuple[Any, Any, float]:
        if any(_complex(a) for a in _leaves((c.args, c.kwargs))):
            return c.mode._fallback(c)
        return fn(c)

    guarded.__name__ = fn.__name__
    return guarded


@rule(aten.div.Tensor, aten.div.Scalar, aten.div_.Tensor, aten.div_.Scalar)
def _div(c: Call) -> tuple[Any, Any, float]:
    a, b = c.args[0], c.args[1]
    if c.kwargs.get("rounding_mode") is not None:
        return _piecewise_constant(c)
    if _complex(b):  # a complex quotient is no single rounding (a complex by a real one is, part by part)
        return c.mode._fallback(c)
    a64, b64 = c.x64(a), c.x64(b)
    ea, eb = c.e(a), c.e(b)
    y64 = _as_tensor(a64 / b64, c.out)
    # |a/b − (a+δa)/(b+δb)| ≤ (E_a + |a/b|·E_b) / (|b| − E_b), unbounded once E_b reaches |b|.
    denominator = _abs(b64) - eb
    err = (ea + y64.abs() * eb) / denominator
    if isinstance(denominator, Tensor):
        err = _inf_where(denominator <= 0, err * torch.ones_like(y64, dtype=F64))
    elif denominator <= 0:
        err = torch.full_like(y64, math.inf, dtype=F64)
    degree = c.deg(a) if c.deg(b) == 0 else POLYNOMIAL_INF
    return y64, err + _local(y64), degree


@rule(aten.neg.default, aten.neg_.default)
def _neg(c: Call) -> tuple[Any, Any, float]:
    x = c.args[0]
    return -c.x64(x), c.e(x), c.deg(x)


def _monotone(fn: Callable[[Tensor], Tensor], ulps: float, pole_at_zero: bool = False) -> Rule:
    """A monotone elementwise function: its change over the interval ``[x − E, x + E]`` is attained
    at an end, so the propagated error is rigorous (not first-order)."""

    def monotone(c: Call) -> tuple[Any, Any, float]:
        x = c.args[0]
        x64, e = c.x64(x), c.e(x)
        y64 = fn(x64)
        spread: Tensor | float
        if _nonzero(e):
            spread = torch.maximum((fn(x64 + e) - y64).abs(), (fn(x64 - e) - y64).abs())
            spread = torch.nan_to_num(spread, nan=math.inf, posinf=math.inf)
            if pole_at_zero:
                spread = _inf_where(e >= x64.abs(), spread)
        else:
            spread = 0.0
        degree = 0.0 if c.deg(x) == 0 else POLYNOMIAL_INF
        return y64, spread + _local(y64, ulps), degree

    return _real_only(monotone)


for _op, _fn, _ulps, _pole in [
    (aten.exp, torch.exp, TRANSCENDENTAL_ULPS, False), (aten.exp2, torch.exp2, TRANSCENDENTAL_ULPS, False),
    (aten.expm1, torch.expm1, TRANSCENDENTAL_ULPS, False), (aten.log, torch.log, TRANSCENDENTAL_ULPS, True),
    (aten.log2, torch.log2, TRANSCENDENTAL_ULPS, True), (aten.log10, torch.log10, TRANSCENDENTAL_ULPS, True),
    (aten.log1p, torch.log1p, TRANSCENDENTAL_ULPS, False), (aten.tanh, torch.tanh, TRANSCENDENTAL_ULPS, False),
    (aten.sigmoid, torch.sigmoid, TRANSCENDENTAL_ULPS, False), (aten.erf, torch.erf, TRANSCENDENTAL_ULPS, False),
    (aten.erfc, torch.erfc, TRANSCENDENTAL_ULPS, False), (aten.atan, torch.atan, TRANSCENDENTAL_ULPS, False),
    (aten.asinh, torch.asinh, TRANSCENDENTAL_ULPS, False), (aten.sinh, torch.sinh, TRANSCENDENTAL_ULPS, False),
    (aten.erfinv, torch.erfinv, TRANSCENDENTAL_ULPS, False), (aten.sqrt, torch.sqrt, 0.5, False),
    (aten.rsqrt, torch.rsqrt, TRANSCENDENTAL_ULPS, True), (aten.reciprocal, torch.reciprocal, 0.5, True),
]:
    rule(_op.default, getattr(aten, _op.__name__ + "_").default)(_monotone(_fn, _ulps, _pole))


@rule(aten.sin.default, aten.cos.default)
@_real_only
def _lipschitz_one(c: Call) -> tuple[Any, Any, float]:
    """sin, cos: 1-Lipschitz, so the propagated error is at most the input's."""
    x = c.args[0]
    y64 = getattr(torch, c.func._overloadpacket.__name__)(c.x64(x))
    return y64, c.e(x) + _local(y64, TRANSCENDENTAL_ULPS), 0.0 if c.deg(x) == 0 else POLYNOMIAL_INF


@rule(aten.pow.Tensor_Scalar, aten.pow_.Scalar)
@_real_only
def _pow(c: Call) -> tuple[Any, Any, float]:
    x, p = c.args[0], c.args[1]
    x64, e = c.x64(x), c.e(x)
    y64 = x64.pow(p)
    p = float(p)
    if not _nonzero(e):
        spread: Any = 0.0
    elif p >= 1 and p.is_integer():
        # |(x+δ)^p − x^p| ≤ (|x| + E)^p − |x|^p: the binomial expansion with every term made positive.
        spread = (x64.abs() + e).pow(p) - x64.abs().pow(p)
    else:
        ax = x64.abs()
        low = (ax - e).clamp(min=0)
        spread = torch.maximum(((ax + e).pow(p) - ax.pow(p)).abs(), (low.pow(p) - ax.pow(p)).abs())
        spread = torch.nan_to_num(spread, nan=math.inf, posinf=math.inf)
        if p < 0:
            spread = _inf_where(e >= ax, spread)
    degree = c.deg(x) * p if p >= 0 and p.is_integer() else (0.0 if c.deg(x) == 0 else POLYNOMIAL_INF)
    ulps = 0.5 if p in (1.0, 2.0) else TRANSCENDENTAL_ULPS
    local = 0.0 if p in (1.0, 2.0) and c.integers(x64, y64) else _local(y64, ulps)
    return y64, spread + local, degree


@rule(aten.abs.default, aten.relu.default, aten.relu_.default, aten.clamp.default, aten.clamp_min.default,
      aten.clamp_max.default, aten.clamp_.default, aten.clamp_min_.default, aten.clamp_max_.default)
def _one_lipschitz_piecewise(c: Call) -> tuple[Any, Any, float]:
    """abs, relu, clamp: piecewise linear and 1-Lipschitz; exact. Their decisions are recorded."""
    x = c.args[0]
    x64, e = c.x64(x), c.e(x)
    name = c.func._overloadpacket.__name__.rstrip("_")
    fn = {"abs": torch.abs, "relu": torch.relu}.get(name)
    y64 = fn(x64) if fn else getattr(torch, name)(x64, *c.args[1:], **c.kwargs)
    if name == "abs" and x64.is_complex():  # the modulus: 1-Lipschitz, and not differentiable at 0 alone
        c.mode.decision(x64 != 0, (x64.abs() <= e) if _nonzero(e) else (x64 == 0), name)
    elif name in ("abs", "relu"):
        c.mode.decision(x64 > 0, (x64.abs() <= e) if _nonzero(e) else (x64 == 0), name)
    else:
        lo = c.args[1] if len(c.args) > 1 and name != "clamp_max" else None
        hi = c.args[2] if len(c.args) > 2 else (c.args[1] if name == "clamp_max" else None)
        for bound in (lo, hi):
            if bound is not None:
                b64 = c.x64(bound)
                c.mode.decision(x64 > b64, (x64 - b64).abs() <= e + _abs(c.e(bound)), name)
    err = c.e(x)
    for extra in c.args[1:]:
        err = torch.maximum(_as_tensor(err, y64), _as_tensor(c.e(extra), y64)) if isinstance(extra, Tensor) else err
    if x64.is_complex():  # |z| = hypot(re, im): rounded (within an ulp), and not a polynomial
        return y64, err + _local(y64, 1.0), 0.0 if c.deg(x) == 0 else POLYNOMIAL_INF
    return y64, err, c.max_degree()


@rule(aten.maximum.default, aten.minimum.default, aten.fmax.default, aten.fmin.default)
def _max_min(c: Call) -> tuple[Any, Any, float]:
    a, b = c.args
    a64, b64 = c.x64(a), c.x64(b)
    fn = getattr(torch, c.func._overloadpacket.__name__)
    y64 = fn(a64, b64)
    ea, eb = _as_tensor(c.e(a), y64), _as_tensor(c.e(b), y64)
    c.mode.decision(a64 > b64, (a64 - b64).abs() <= ea + eb, c.func._overloadpacket.__name__)
    return y64, torch.maximum(ea, eb), c.max_degree()


@rule(aten.nextafter.default, aten.nextafter_.default)
def _nextafter(c: Call) -> tuple[Any, Any, float]:
    """One step to the next float: exact by definition; an uncertain input moves it by its error plus
    the step itself."""
    x, toward = c.args
    y64 = torch.nextafter(c.x64(x), c.x64(toward).to(F64)) if x.dtype == F64 else c.out.detach().to(F64)
    e = c.e(x)
    err = (e + 2 * (y64 - c.x64(x)).abs()) * (_as_tensor(e, y64) > 0) if _nonzero(e) else 0.0
    return y64, err, c.deg(x)


def _piecewise_constant(c: Call) -> tuple[Any, Any, float]:
    """sign, floor, round, …: exact and constant between jumps; the values themselves are the decisions."""
    args64 = tree_map(c.x64, c.args)
    y64 = c.func(*args64, **c.kwargs)
    c.mode.decision(y64, None, c.func._overloadpacket.__name__)
    return y64, torch.zeros_like(y64, dtype=F64), 0.0


for _op in (aten.sign, aten.floor, aten.ceil, aten.round, aten.trunc, aten.frac, aten.signbit):
    for _overload in _op.overloads():  # type: ignore[no-untyped-call]  # torch's OpOverloadPacket.overloads has no annotations
        rule(getattr(_op, _overload))(_piecewise_constant)


def _comparison(c: Call) -> tuple[Any, Any, float]:
    a, b = c.args[0], c.args[1]
    a64, b64 = c.x64(a), c.x64(b)
    y = c.func(a64, b64)
    err = _abs(c.e(a)) + _abs(c.e(b))
    uncertain = ((a64 - b64).abs() <= err) if _nonzero(err) else None
    boundary = (a64 == b64) if uncertain is None else uncertain
    c.mode.decision(y, _as_tensor(boundary, y).bool() if isinstance(boundary, Tensor) else None, c.func._overloadpacket.__name__)
    unc = uncertain.to(F64) if uncertain is not None else torch.zeros_like(y, dtype=F64)
    return y, unc, 0.0


for _op in (aten.gt, aten.lt, aten.ge, aten.le, aten.eq, aten.ne):
    for _overload in ("Tensor", "Scalar"):
        rule(getattr(_op, _overload))(_comparison)


@rule(aten.where.self, aten.where.ScalarSelf, aten.where.ScalarOther, aten.where.Scalar)
def _where(c: Call) -> tuple[Any, Any, float]:
    cond, a, b = c.args
    a64, b64 = c.x64(a), c.x64(b)
    y64 = torch.where(cond, a64, b64)
    ea, eb = _as_tensor(c.e(a), y64), _as_tensor(c.e(b), y64)
    err = torch.where(cond, ea, eb)
    uncertain = c.e(cond)
    if isinstance(uncertain, Tensor) and _nonzero(uncertain):  # a condition that may be wrong may pick the other branch
        err = torch.where(uncertain.bool(), torch.maximum(ea, eb) + (a64 - b64).abs(), err)
    return y64, err, max(c.deg(a), c.deg(b))


# ---- reductions and products -----------------------------------------------------------------------

def _reduced_dims(x: Tensor, dims: Any) -> tuple[int, ...]:
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return tuple(range(x.ndim))
    dims = [dims] if isinstance(dims, int) else dims
    return tuple(d % max(x.ndim, 1) for d in dims)


@rule(aten.sum.default, aten.sum.dim_IntList, aten.mean.default, aten.mean.dim)
def _sum(c: Call) -> tuple[Any, Any, float]:
    x = c.args[0]
    dims = c.args[1] if len(c.args) > 1 else c.kwargs.get("dim")
    keepdim = c.args[2] if len(c.args) > 2 else c.kwargs.get("keepdim", False)
    reduced = _reduced_dims(x, dims)
    x64, e = c.x64(x), c.e(x)
    n = math.prod(x.shape[d] for d in reduced) if x.ndim else 1
    mean = c.func._overloadpacket is aten.mean
    y64 = x64.sum(dim=reduced, keepdim=keepdim) if x.ndim else x64.clone()
    magnitude = x64.abs().sum(dim=reduced, keepdim=keepdim) if x.ndim else x64.abs()
    err = (e.sum(dim=reduced, keepdim=keepdim) if isinstance(e, Tensor) and x.ndim else e * n) * torch.ones_like(y64, dtype=F64)
    exact = c.integers(x64, magnitude)
    local = 0.0 if exact else c.mode.gamma(max(n - 1, 1)) * magnitude + n * TINY64
    err = err + local
    if mean:
        y64 = y64 / n
        err = err / n + _local(y64)
    return y64, err, c.deg(x)


@rule(aten.sort.default, aten.sort.stable, aten.topk.default)
def _sort(c: Call) -> tuple[Any, Any, float]:
    """sort, topk: selections, so exact; each output is an order statistic, which moves by at most the
    largest error along the sorted dimension (1-Lipschitz in the max norm). The order taken is a decision:
    neighbours within their errors of each other could come out the other way."""
    x = c.args[0]
    values, indices = c.out
    topk = c.func is aten.topk.default
    dim = c.args[2] if topk and len(c.args) > 2 else (c.args[1] if not topk and len(c.args) > 1 else c.kwargs.get("dim", -1))
    x64, e = c.x64(x), c.e(x)
    if x.ndim == 0:
        return (x64.clone(), torch.zeros(indices.shape, dtype=F64)), (e, torch.zeros(indices.shape, dtype=F64)), c.deg(x)
    y64 = x64.gather(dim, indices)
    spread = _as_tensor(e, x64).expand(x64.shape).amax(dim, keepdim=True).expand(values.shape) if _nonzero(e) else 0.0
    if values.shape[dim] > 1:
        gaps = y64.narrow(dim, 1, values.shape[dim] - 1) - y64.narrow(dim, 0, values.shape[dim] - 1)
        near = gaps.abs() <= (2 * spread.narrow(dim, 1, values.shape[dim] - 1) if isinstance(spread, Tensor) else 0.0)
        c.mode.decision(indices, near, c.func._overloadpacket.__name__)
    err = spread if isinstance(spread, Tensor) else torch.zeros(values.shape, dtype=F64, device=values.device)
    return (y64, torch.zeros(indices.shape, dtype=F64)), (err, torch.zeros(indices.shape, dtype=F64)), c.deg(x)


@rule(aten.amax.default, aten.amin.default, aten.max.dim, aten.min.dim, aten.max.default, aten.min.default)
def _extremum(c: Call) -> tuple[Any, Any, float]:
    """max/min over dims: selection, so the error of the result is at most the largest error reduced."""
    x = c.args[0]
    x64, e = c.x64(x), c.e(x)
    name = c.func._overloadpacket.__name__
    pick = torch.amax if name in ("amax", "max") else torch.amin
    if c.func in (aten.max.default, aten.min.default):
        dims, keepdim = tuple(range(x.ndim)), False
    else:
        dims = c.args[1] if len(c.args) > 1 else c.kwargs.get("dim", ())
        keepdim = c.args[2] if len(c.args) > 2 else c.kwargs.get("keepdim", False)
        dims = _reduced_dims(x, dims)
    y64 = pick(x64, dim=dims, keepdim=keepdim) if x.ndim else x64.clone()
    err = pick(_as_tensor(e, x64), dim=dims, keepdim=keepdim) if (x.ndim and isinstance(e, Tensor)) else e * torch.ones_like(y64)
    if x.ndim and x.numel():
        top = pick(x64, dim=dims, keepdim=True)
        c.mode.decision(x64 == top, ((top - x64).abs() <= 2 * _as_tensor(e, x64)) & (x64 != top), name)
    if isinstance(c.out, (tuple, list)):  # values and indices
        return (y64, torch.zeros(c.out[1].shape, dtype=F64)), (err, torch.zeros(c.out[1].shape, dtype=F64)), c.deg(x)
    return y64, err, c.deg(x)


_vector_norm: Callable[..., Tensor] = torch.linalg.vector_norm  # typed: torch's stub returns Any
NORM_BLOCK = 1 << 15  # elements squared at a time for norms across rows


def _norms_bound(A: Tensor, B: Tensor, func: Any, scale: float = 1.0) -> Tensor:
    """Cauchy–Schwarz: ``(|A|·|B|)_ij ≤ ‖A_i,:‖·‖B_:,j‖`` — the magnitude of a product's terms in O(n²)
    instead of a second matrix product (for normal data about 1.6× the exact value), times ``scale``
    (applied to the norms: one pass over the result). Moduli for complex. Always a fresh tensor."""
    norm = _vector_norm
    if func in (aten.dot.default, aten.vdot.default):
        return norm(A) * (norm(B) * scale)
    rows = _norms_along(A, -1) * scale
    if func is aten.mv.default:
        return rows * norm(B)
    return rows.unsqueeze(-1) * _norms_along(B, -2).unsqueeze(-2)


def _norms_along(t: Tensor, dim: int) -> Tensor:
    """Euclidean norms along ``dim``: ``vector_norm`` where that dimension is contiguous in memory,
    squares summed otherwise (``vector_norm`` across rows is several times slower than that)."""
    if t.stride(dim) == 1 or t.shape[dim] <= 1:
        return _vector_norm(t, dim=dim)
    magnitude = t.abs() if t.is_complex() else t
    if magnitude.numel() <= NORM_BLOCK:
        return (magnitude * magnitude).sum(dim).sqrt_()
    total = torch.zeros((), dtype=magnitude.dtype, device=magnitude.device)
    rows_per_block = max(1, NORM_BLOCK // max(magnitude.numel() // magnitude.shape[dim], 1))
    for block in torch.split(magnitude, rows_per_block, dim):
        total = total + (block * block).sum(dim)  # squares of a block at a time: in cache, no full-size temporary
    return total.sqrt_()


def _matmul_parts(c: Call, A: Tensor, B: Tensor, product: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, Tensor, float]:
    A64, B64 = c.x64(A), c.x64(B)
    eA, eB = c.e(A), c.e(B)
    # A float64 (complex128) result is its own evaluation there: no second product to measure against.
    y64 = c.out.detach() if isinstance(c.out, Tensor) and c.out.dtype in (F64, C128) else product(A64, B64)
    err: Any = 0.0
    k = A.shape[-1] if A.ndim else 1
    # Complex: each product errs by √2·γ₂ ≤ γ₃ of |a|·|b| (Lemma 3.5), and summing the parts by γ_{k−1}
    # of Σ|parts| ≤ Σ|products| in modulus (the triangle inequality); together γ_{k+2} (Lemma 3.3).
    length = max(k, 1) + (2 if A64.is_complex() or B64.is_complex() else 0)
    if c.func is aten.mm.default and not c.mode.exact:
        # The whole bound as one product, its output written once: [|A|, E_A, ρ, 1]·[E_B; |B| + E_B; κ; k·tiny]
        # = |A|·E_B + E_A·|B| + E_A·E_B + ρ·κ + k·tiny, with ρ·κ = γ·‖A_i,:‖·‖B_:,j‖ the rounding part.
        # Only the reduction indices where an operand carries an error contribute (a finite-difference
        # step's rounding: a few), so the product is thin.
        rows = _norms_along(A64, -1).mul_((1 + 1e-10) * c.mode.gamma(length)).unsqueeze(-1)
        tiny = torch.full((1, B64.shape[-1]), k * TINY64, dtype=F64, device=rows.device)
        left, right = [rows, torch.ones_like(rows)], [_norms_along(B64, -2).unsqueeze(-2), tiny]
        if _nonzero(eA) or _nonzero(eB):
            # an operand whose error is the scalar 0 contributes no indices, and its zeros are made thin
            in_A = (eA.expand(A64.shape).amax(0) != 0) if isinstance(eA, Tensor) else None  # errors are ≥ 0 (or NaN: != 0)
            in_B = (eB.expand(B64.shape).amax(1) != 0) if isinstance(eB, Tensor) else None
            marked = [m for m in (in_A, in_B) if m is not None]  # one at least: an error is nonzero
            used = (marked[0] | marked[1] if len(marked) == 2 else marked[0]).nonzero().flatten()
            thin = 2 * used.numel() < k
            A64, B64 = (A64[:, used], B64[used, :]) if thin else (A64, B64)
            eA = eA.expand(c.args[0].shape)[:, used] if thin and isinstance(eA, Tensor) else _as_tensor(eA, A64).expand(A64.shape)
            eB = eB.expand(c.args[1].shape)[used, :] if thin and isinstance(eB, Tensor) else _as_tensor(eB, B64).expand(B64.shape)
            left, right = [A64.abs(), eA, *left], [eB, B64.abs() + eB, *right]
        return y64, product(torch.cat(left, -1), torch.cat(right, -2)), c.deg(A) + c.deg(B)
    if c.func is aten.mm.default and (_nonzero(eA) or _nonzero(eB)):
        eA, eB = _as_tensor(eA, A64).expand(A64.shape), _as_tensor(eB, B64).expand(B64.shape)
        err = product(A64.abs(), eB) + product(eA, B64.abs()) + product(eA, eB)
    else:
        if _nonzero(eB):
            err = err + product(A64.abs(), _as_tensor(eB, B64))
        if _nonzero(eA):
            err = err + product(_as_tensor(eA, A64), B64.abs())
            if _nonzero(eB):
                err = err + product(_as_tensor(eA, A64), _as_tensor(eB, B64))
    if c.mode.exact:
        magnitude = _norms_bound(A64, B64, c.func, 1 + 1e-10)
        exact = c.integers(A64, B64) and (magnitude.numel() == 0 or float(magnitude.max()) < EXACT_LIMIT)
        local = None if exact else magnitude.mul_(c.mode.gamma(length)).add_(k * TINY64)
    else:
        local = _norms_bound(A64, B64, c.func, (1 + 1e-10) * c.mode.gamma(length)).add_(k * TINY64)
    if local is not None:
        err = local if isinstance(err, float) else err.add_(local)  # err: a fresh product of the errors
    return y64, err if isinstance(err, float) or err.shape == y64.shape else err.expand(y64.shape), c.deg(A) + c.deg(B)


@rule(aten.mm.default, aten.bmm.default, aten.dot.default, aten.mv.default, aten.vdot.default)
def _mm(c: Call) -> tuple[Any, Any, float]:
    A, B = c.args[0], c.args[1]
    product = {aten.dot.default: torch.dot, aten.vdot.default: torch.vdot, aten.mv.default: torch.mv}.get(c.func, torch.matmul)
    return _matmul_parts(c, A, B, product)


@rule(aten.addmm.default, aten.baddbmm.default, aten.addmv.default)
def _addmm(c: Call) -> tuple[Any, Any, float]:
    """``β·C + α·(A·B)``, one sum of ``k + 1`` scaled terms per element: the product's bound scaled by
    ``|α|``, ``|β|·E_C``, and ``γ_{k+3}`` of the terms' magnitudes (the two scalings and the final
    add). ``β = 0`` ignores ``C`` altogether, as the kernels do (NaN included)."""
    C, A, B = c.args[0], c.args[1], c.args[2]
    alpha, beta = c.kwargs.get("alpha", 1), c.kwargs.get("beta", 1)
    product = torch.mv if c.func is aten.addmv.default else torch.matmul
    A64, B64 = c.x64(A), c.x64(B)
    eA, eB = _as_tensor(c.e(A), A64), _as_tensor(c.e(B), B64)
    terms64 = product(A64, B64)
    err = abs(alpha) * (product(A64.abs(), eB) + product(eA, B64.abs()) + product(eA, eB))
    magnitude = abs(alpha) * _norms_bound(A64, B64, aten.mv.default if c.func is aten.addmv.default else aten.mm.default) * (1 + 1e-10)
    if beta == 0:
        y64 = alpha * terms64
        degree = c.deg(A) + c.deg(B)
    else:
        C64 = c.x64(C)
        y64 = beta * C64 + alpha * terms64
        err = err + abs(beta) * _as_tensor(c.e(C), C64)
        magnitude = magnitude + abs(beta) * C64.abs()
        degree = max(c.deg(C), c.deg(A) + c.deg(B))
    if isinstance(c.out, Tensor) and c.out.dtype in (F64, C128):
        y64 = c.out.detach()  # a float64 result is its own evaluation there: nothing more to measure
    k = A.shape[-1] if A.ndim else 1
    scalars_exact = all(complex(s) == complex(round(complex(s).real), round(complex(s).imag)) for s in (alpha, beta))
    exact = scalars_exact and c.integers(A64, B64, *(() if beta == 0 else (c.x64(C),))) and \
        (magnitude.numel() == 0 or float(magnitude.max()) < EXACT_LIMIT)
    if not exact:
        # complex: the products' own rounding is γ₃, not γ₁ (see _matmul_parts), and so is a complex α's or β's
        extra = 3 + (2 if A64.is_complex() else 0) + (2 if _complex(alpha) or _complex(beta) else 0)
        err = err + c.mode.gamma(max(k, 1) + extra) * magnitude + (k + extra) * TINY64
    return y64, err * torch.ones_like(y64, dtype=F64), degree


@rule(aten.scatter_add.default, aten.scatter_add_.default, aten.index_add.default, aten.index_add_.default)
def _scatter_add(c: Call) -> tuple[Any, Any, float]:
    """self plus src added at indices: errors add along the same paths; each output element's
    rounding is that of a sum of (1 + the number of summands landing on it) terms."""
    scatter = c.func._overloadpacket in (aten.scatter_add, aten.scatter_add_)
    base, dim, index, src = c.args[0], c.args[1], c.args[2], c.args[3]
    alpha = 1 if scatter else c.kwargs.get("alpha", 1)
    place: Callable[[Tensor, Tensor], Tensor] = (lambda into, values: into.scatter_add(dim, index, values)) if scatter else \
        (lambda into, values: into.index_add(dim, index, values))
    b64, s64 = c.x64(base), c.x64(src)
    y64 = place(b64, alpha * s64)
    err = place(_as_tensor(c.e(base), b64).clone(), abs(alpha) * _as_tensor(c.e(src), s64))
    terms = place(torch.ones_like(b64, dtype=F64), torch.ones_like(s64, dtype=F64))
    magnitude = place(b64.abs(), abs(alpha) * s64.abs())
    k = int(terms.max()) if terms.numel() else 1
    local = 0.0 if c.integers(b64, s64, magnitude) else c.mode.gamma(max(k - 1, 1)) * magnitude + k * TINY64
    return y64, err + local, max(c.deg(base), c.deg(src))


def _index_put_accumulate(c: Call) -> tuple[Any, Any, float]:
    """``index_put(…, accumulate=True)``: values added at indices — errors add along the same paths, and
    each element's rounding is that of a sum of (1 + the number of values landing on it) terms."""
    base, indices, values = c.args[0], c.args[1], c.args[2]
    b64, v64 = c.x64(base), c.x64(values)
    y64 = b64.index_put(indices, v64, accumulate=True)
    err = _as_tensor(c.e(base), b64).clone().index_put(indices, _as_tensor(c.e(values), v64).expand(v64.shape), accumulate=True)
    terms = torch.ones_like(b64, dtype=F64).index_put(indices, torch.ones_like(v64, dtype=F64), accumulate=True)
    magnitude = b64.abs().index_put(indices, v64.abs(), accumulate=True)
    k = int(terms.max()) if terms.numel() else 1
    local = 0.0 if c.integers(b64, v64, magnitude) else c.mode.gamma(max(k - 1, 1)) * magnitude + k * TINY64
    return y64, err + local, max(c.deg(base), c.deg(values))


def _accumulating(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return func._overloadpacket in (aten.index_put, aten.index_put_) and bool(
        args[3] if len(args) > 3 else kwargs.get("accumulate", False))


# ---- casts and copies ------------------------------------------------------------------------------

@rule(aten._to_copy.default, aten.clone.default, aten._to_copy.out, aten.to.dtype, aten.to.dtype_layout, aten.to.device,
      aten.to.other)
def _copy(c: Call) -> tuple[Any, Any, float]:
    x = c.args[0]
    return c.x64(x), _as_tensor(c.e(x), c.x64(x)) if _float_like(x) else torch.zeros(x.shape, dtype=F64), c.deg(x)


@rule(aten.copy_.default, aten.copy.default)
def _copy_into(c: Call) -> tuple[Any, Any, float]:
    src = c.args[1]
    src64 = c.x64(src)
    dst = c.args[0]
    y64 = src64.expand(dst.shape) if isinstance(src64, Tensor) else torch.full(dst.shape, float(src64), dtype=F64)
    e = c.e(src)
    return y64, (e.expand(dst.shape) if isinstance(e, Tensor) else torch.zeros(dst.shape, dtype=F64)), c.deg(src)


# ---- structural ops: apply the same op to the error ------------------------------------------------

for _name in (
    "view", "_unsafe_view", "reshape", "expand", "permute", "transpose", "t", "squeeze", "unsqueeze", "slice",
    "select", "as_strided", "alias", "detach", "flip", "roll", "repeat", "cat", "stack", "gather", "index_select",
    "index", "diagonal", "narrow", "split", "split_with_sizes", "unbind", "chunk", "movedim", "unfold",
    "_reshape_alias", "masked_fill", "masked_fill_", "constant_pad_nd", "index_put", "index_put_",
    "scatter", "scatter_", "take", "tril", "triu", "fill_", "zero_", "view_as_real", "view_as_complex", "contiguous",
    "expand_copy", "permute_copy", "view_copy", "t_copy", "transpose_copy", "slice_copy", "select_copy",
    "squeeze_copy", "unsqueeze_copy", "alias_copy", "unbind_copy", "split_copy", "diagonal_copy", "detach_",
    "slice_scatter", "select_scatter", "diagonal_scatter", "as_strided_scatter", "masked_select", "_unsafe_index",
    "tile", "narrow_copy", "repeat_interleave", "embedding", "new_zeros", "new_empty", "new_full", "new_ones",
    "squeeze_", "unsqueeze_", "t_", "transpose_", "as_strided_", "swapdims_", "swapaxes_",
):
    _packet = getattr(aten, _name, None)
    if _packet is not None:
        _STRUCTURAL.add(_packet)
for _name in ("broadcast_in_dim", "squeeze", "view_of", "reshape", "transpose", "collapse_view", "split_dim",
              "collapse", "slice", "slice_in_dim", "expand_dims", "rev"):
    _packet = getattr(torch.ops.prims, _name, None)
    if _packet is not None:
        _STRUCTURAL.add(_packet)


def _both_parts(e: Tensor) -> Tensor:
    return e.unsqueeze(-1).expand(*e.shape, 2)


# Complex views and exact complex ops, whose error (a modulus) cannot be computed by applying them to
# the real error tensor: a conjugate, a negated view, a real or imaginary part keep the element's error
# (|Re δ|, |Im δ| ≤ |δ|); view_as_real gives both parts the element's; view_as_complex bounds the modulus
# of a pair by the hypotenuse of its parts' errors.
_COMPLEX_VIEWS: dict[Any, Callable[[Tensor], Tensor]] = {
    **{getattr(aten, name): (lambda e: e) for name in (
        "_conj", "conj", "_conj_copy", "conj_physical", "_conj_physical", "resolve_conj", "resolve_neg", "_neg_view",
        "_neg_view_copy", "real", "imag") if hasattr(aten, name)},
    **{getattr(aten, name): _both_parts for name in ("view_as_real", "view_as_real_copy") if hasattr(aten, name)},
    **{getattr(aten, name): (lambda e: torch.hypot(e[..., 0], e[..., 1]))
       for name in ("view_as_complex", "view_as_complex_copy") if hasattr(aten, name)},
}
_STRUCTURAL.update(_COMPLEX_VIEWS)

_CREATION = {
    getattr(aten, name) for name in (
        "zeros", "ones", "full", "empty", "empty_like", "zeros_like", "ones_like", "full_like", "arange", "scalar_tensor",
        "empty_strided", "rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "eye", "linspace",
        "_local_scalar_dense", "randperm", "bernoulli", "normal",
    ) if hasattr(aten, name)
}
_METADATA = {
    aten.sym_is_contiguous.default, aten.is_contiguous.default, aten.is_contiguous.memory_format,
    aten.is_strides_like_format.default, aten.is_non_overlapping_and_dense.default, aten.size.default,
    aten.sym_size.default, aten.stride.default, aten.sym_stride.default, aten.storage_offset.default,
    aten.sym_storage_offset.default, aten.numel.default, aten.sym_numel.default, aten.dim.default,
    aten.is_same_size.default, aten.equal.default, aten.allclose.default, aten.isnan.default,
    aten.isinf.default, aten.isfinite.default, aten.any.default, aten.any.dim, aten.all.default, aten.all.dim,
    aten.argmax.default, aten.argmin.default, aten.nonzero.default, aten.argsort.default,
}
# Tensors made from outside torch (torch.tensor(array), from a list) are opaque until arithmetic the
# mode sees uses them: a gradient computed in numpy and handed back is not traced, not exact.
_FROM_OUTSIDE = {aten.lift_fresh, aten.lift_fresh_copy}
_FILLS = {aten.fill_, aten.masked_fill, aten.masked_fill_, aten.constant_pad_nd}
if hasattr(aten, "_has_same_storage_numel"):
    _METADATA.add(aten._has_same_storage_numel.default)

# Decompositions that would make things worse: these have rules or are meant to run as they are.
_KEEP = {aten.clone.default, aten._to_copy.default, aten.copy_.default, aten.relu.default, aten.where.self,
         aten.mean.dim, aten.mean.default, aten.clamp.default, aten.clamp_min.default, aten.clamp_max.default,
         aten.sum.default, aten.sum.dim_IntList}


def _float_like(t: Any) -> bool:
    return isinstance(t, Tensor) and (t.is_floating_point() or t.is_complex())


# ---- rewrites: composite ops whose torch._decomp decomposition would leave aten for prims ------------

def _var(x: Tensor, dim: Any = None, *, correction: Any = None, keepdim: bool = False) -> Tensor:
    reduced = _reduced_dims(x, dim)
    n = math.prod(x.shape[d] for d in reduced)
    centered = x - x.mean(dim=reduced, keepdim=True)
    return (centered * centered).sum(dim=reduced, keepdim=keepdim) / max(n - (1 if correction is None else correction), 0)


def _var_mean(x: Tensor, dim: Any = None, *, correction: Any = None, keepdim: bool = False) -> tuple[Tensor, Tensor]:
    return _var(x, dim, correction=correction, keepdim=keepdim), x.mean(dim=_reduced_dims(x, dim), keepdim=keepdim)


def _std(x: Tensor, dim: Any = None, *, correction: Any = None, keepdim: bool = False) -> Tensor:
    return _var(x, dim, correction=correction, keepdim=keepdim).sqrt()


def _prim_div(a: Any, b: Any) -> Tensor:
    floating = any(_float_like(v) or isinstance(v, (float, complex)) for v in (a, b))
    return torch.div(a, b) if floating else torch.div(a, b, rounding_mode="trunc")


prims = torch.ops.prims
_REWRITES: dict[Any, Callable[..., Any]] = {
    aten.var.correction: _var, aten.var_mean.correction: _var_mean, aten.std.correction: _std,
    # Some decompositions call prims directly; each is re-expressed through the aten op it stands for.
    prims.var.default: lambda x, dims, correction=1, **_: _var(x, dims, correction=correction),
    prims.sum.default: lambda x, dims, **_: torch.sum(x, dims),
    prims.amax.default: lambda x, dims, **_: torch.amax(x, dims),
    prims.amin.default: lambda x, dims, **_: torch.amin(x, dims),
    prims.where.default: torch.where,
    prims.div.default: _prim_div,
    prims.remainder.default: torch.remainder,
    prims.convert_element_type.default: lambda x, dtype: x.to(dtype),
    **{getattr(prims, name).default: getattr(torch, name) for name in (
        "mul", "add", "sub", "exp", "log", "neg", "sqrt", "rsqrt", "tanh", "erf", "sigmoid", "abs", "log1p", "expm1",
        "reciprocal", "maximum", "minimum", "gt", "lt", "ge", "le", "eq", "ne",
    ) if hasattr(prims, name) and hasattr(torch, name)},
}


# ---- the mode --------------------------------------------------------------------------------------

@dataclass
class Decision:
    """A discrete choice taken by ``f`` (a comparison, relu's side, an argmax): its outcome, and where
    the operands sat on the boundary (within their error)."""

    op: str
    outcome: Tensor
    at_boundary: int


class _ByIdentity:
    """Tensor → Tracked by object identity, the entry dropped when the tensor dies (a plain dict and a
    weakref: several times cheaper per lookup than ``torch.utils.weak.WeakIdKeyDictionary``)."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[Tensor], Tracked]] = {}

    def get(self, t: Tensor) -> Tracked | None:
        entry = self._entries.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def __setitem__(self, t: Tensor, value: Tracked) -> None:
        key = id(t)
        entries = self._entries

        def forget(_: weakref.ref[Tensor], key: int = key) -> None:
            current = entries.get(key)
            if current is not None and current[0]() is None:
                del entries[key]

        entries[key] = (weakref.ref(t, forget), value)


class RunningError(TorchDispatchMode):  # type: ignore[no-untyped-call]  # TorchDispatchMode.__init_subclass__ is unannotated
    """Trace code, keeping an elementwise error bound for every floating-point tensor it makes.

    ``exact``: integer-valued arithmetic within float64's integers is taken as exact (exact mode).
    ``probabilistic``: λ of Higham & Mary's probabilistic bound for the a-priori part of long
    reductions (opt-in; the default is the rigorous worst case).
    """

    def __init__(self, *, exact: bool = False, probabilistic: float | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # TorchDispatchMode.__init__ is unannotated
        self.exact = exact
        self.probabilistic = probabilistic
        self._tracked = _ByIdentity()
        self.decisions: list[Decision] = []
        self.fallbacks: dict[str, str] = {}
        self.overflows: list[str] = []
        self.ops = 0
        self._expanding: set[Any] = set()
        self.record_decisions = True  # off for a backward pass, whose comparisons are not f's kinks

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # The mode never runs under torch.compile; wrapping the handler for dynamo would import
        # torch._dynamo (seconds) on the first op and add a layer to every op.
        return False  # pragma: no mutate (called while the class is created, before mutmut's trampoline is set up)

    def gamma(self, k: int) -> float:
        """The a-priori constant of a float64 reduction of length k: rigorous ``γ_k``, or the
        probabilistic ``γ̃_k(λ)`` when asked for."""
        return gamma(k, F64) if self.probabilistic is None else probabilistic_gamma(k, F64, self.probabilistic)

    # -- what callers use --
    def watch(self, *tensors: Tensor, degree: float = 1.0) -> None:
        """Mark inputs: exact values, polynomial degree 1 (the variables of the degree count)."""
        for t in tensors:
            if isinstance(t, Tensor):
                self._tracked[t] = _zero_tracked(t, degree, watched=True)

    def set_error(self, t: Tensor, error: Tensor, copy: bool = True) -> None:
        """Declare an input known only to within ``error`` (elementwise). ``copy=False``: the mode may keep
        ``error`` itself (a fresh float64 tensor of ``t``'s shape that the caller does not write to)."""
        info = self._tracked.get(t)
        fresh = not copy and error.dtype == F64 and error.shape == t.shape and error.is_contiguous()
        self._tracked[t] = Tracked(error if fresh else error.to(F64).expand(t.shape).clone(), info.degree if info is not None else 1.0)

    def info(self, t: Tensor) -> Tracked | None:
        return self._tracked.get(t)

    def error(self, t: Tensor) -> Tensor | None:
        """The bound on ``|t − exact|``; None for a tensor this mode never saw made (not traced)."""
        info = self._tracked.get(t)
        return None if info is None or info.opaque else self._readable(info).to(t.device)

    @staticmethod
    def _readable(info: Tracked) -> Tensor:
        """``info.error``, or an infinite bound for a lazy zero that no longer holds (see ZeroError)."""
        zero = info.zero
        if zero is not None and not zero.holds and _lazy(info.error):
            return torch.full(info.error.shape, math.inf if info.error.dtype != torch.bool else True, dtype=info.error.dtype,
                              device=info.error.device)
        return info.error

    def degree(self, t: Tensor) -> float:
        info = self._tracked.get(t)
        return 0.0 if info is None else info.degree

    def at_kink(self) -> list[str]:
        """The decisions taken at their boundary: ``f`` is not differentiable there (or may not be)."""
        return sorted({d.op for d in self.decisions if d.at_boundary})

    def decision(self, outcome: Tensor, boundary: Tensor | None, op: str) -> None:
        if not self.record_decisions:
            return
        count = int(boundary.sum()) if boundary is not None else 0
        self.decisions.append(Decision(op, outcome.detach().clone(), count))

    # -- dispatch --
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _METADATA or func is torch.ops.prim.device.default:
            return func(*args, **kwargs)
        if func._overloadpacket in _FROM_OUTSIDE:
            out = func(*args, **kwargs)
            self._tracked[out] = _zero_tracked(out, 0.0, opaque=True)
            return out
        packet = func._overloadpacket
        tensors = [t for t in _leaves((args, kwargs)) if isinstance(t, Tensor)]
        if not any(_float_like(t) or t.dtype == torch.bool for t in tensors) or any(t.device.type == "meta" for t in tensors):
            return func(*args, **kwargs)  # integer arithmetic (indices, counts), or no values: nothing to track
        if func._overloadname.endswith("out") and isinstance(kwargs.get("out"), Tensor) and packet not in _CREATION:
            result = self._into_out(packet, args, kwargs)
            if result is not NotImplemented:
                return result
        known = func in _RULES or packet in _STRUCTURAL or packet in _CREATION
        if func not in self._expanding and (func in _REWRITES or (not known and func not in _KEEP)):
            functional_aten = func.namespace == "aten" and not packet.__name__.endswith("_")
            result = self._shadowed(func, args, kwargs) if functional_aten else self._expand(func, args, kwargs)
            if result is not NotImplemented:
                return result
        self.ops += 1
        inplace = packet.__name__.endswith("_") and (packet not in _STRUCTURAL or _accumulating(func, args, kwargs))
        before = {id(a): a.detach().clone() for a in _leaves(args) if isinstance(a, Tensor)} if inplace else {}
        out = func(*args, **kwargs)
        if packet is aten._local_scalar_dense:
            if self.record_decisions:
                self.decisions.append(Decision("item", torch.tensor(float(out)), 0))
            return out
        try:
            self._record(func, packet, before, args, kwargs, out)
        except Exception as exc:  # a rule that cannot handle these arguments must not break the user's code
            self.fallbacks[str(func)] = f"its error rule failed ({type(exc).__name__}: {exc}); bound set to inf"
            self._set_all(out, lambda t: torch.full(t.shape, math.inf, dtype=F64, device=t.device), math.inf)
        return out

    def _into_out(self, packet: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """An ``out=`` variant (``torch.mul(a, b, out=buf[:n])``): the functional op, traced by its rule,
        then copied into ``out`` — traced as a copy, so that a view's base carries the error too."""
        out = kwargs["out"]
        functional = {k: v for k, v in kwargs.items() if k != "out"}
        try:
            with self:
                result = packet(*args, **functional)
        except Exception:  # noqa: BLE001 - no functional overload takes these arguments: the op as it is
            return NotImplemented
        if not isinstance(result, Tensor) or result.shape != out.shape:
            return NotImplemented  # (a result that resizes out: left to the op itself)
        with self:
            out.copy_(result)
        return out

    def _shadowed(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A composite op computed by its own kernel, as it would be without the mode, and bounded by
        tracing what it is made of in float64 on the values it received: the output's bound is that
        trace's bound plus the kernel's measured distance from the float64 result."""
        def shadow(a: Any) -> Any:
            if not _float_like(a):
                return a
            s = _wide(a)
            info = self._tracked.get(a)
            if info is None or _known_zero(info):
                self._tracked[s] = _zero_tracked(s, info.degree if info is not None else 0.0)
            else:
                self._tracked[s] = Tracked(self._readable(info), info.degree)
            return s

        shadow_args, shadow_kwargs = tree_map(shadow, args), tree_map(shadow, kwargs)
        if func in (aten._softmax.default, aten._log_softmax.default):
            shadow_args = (*shadow_args[:2], False)  # half_to_float means nothing in float64
        known_fallbacks = dict(self.fallbacks)
        try:
            result64 = self._expand(func, shadow_args, shadow_kwargs)
        except Exception:  # noqa: BLE001 - a decomposition that cannot run in float64: trace it as it is
            return self._expand(func, args, kwargs)
        if result64 is NotImplemented:
            return NotImplemented
        if any(k not in known_fallbacks and "no propagation" in v for k, v in self.fallbacks.items()):
            self.fallbacks = known_fallbacks  # its parts are worse than the op itself: fall back on the op
            return NotImplemented
        out = func(*args, **kwargs)
        for o, s in zip(_leaves(out), _leaves(result64)):
            if not isinstance(o, Tensor) or not isinstance(s, Tensor):
                continue
            info = self._tracked.get(s)
            if o.dtype == torch.bool:
                self._assign(o, info.error.to(torch.bool) if info is not None else torch.zeros(o.shape, dtype=torch.bool), 0.0, False)
            elif _float_like(o):
                # untracked: made without floating arithmetic the mode saw (constants, integer work): exact
                error = info.error if info is not None else torch.zeros(o.shape, dtype=F64)
                measured = (_wide(o) - s.to(o.device)).abs().nan_to_num(nan=0.0, posinf=0.0) * (1 + 4 * U64)
                self._assign(o, (error.to(o.device).expand(o.shape) + measured).contiguous(),
                             info.degree if info is not None else POLYNOMIAL_INF, False)
        return out

    def _expand(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Trace a composite op through what it is made of (a rewrite here, or torch's decomposition)."""
        expansion = _REWRITES.get(func) or decomposition_table.get(func)
        self._expanding.add(func)  # an expansion that comes back to the same op runs it as it is
        try:
            with self:
                if expansion is not None:
                    result = expansion(*args, **kwargs)
                    if result is not NotImplemented:
                        return result
                return func.decompose(*args, **kwargs)
        finally:
            self._expanding.discard(func)

    def _set_all(self, out: Any, make: Callable[[Tensor], Tensor], degree: float) -> None:
        for t in _leaves(out):
            if isinstance(t, Tensor):
                self._tracked[t] = Tracked(make(t), degree)

    def _record(self, func: Any, packet: Any, before: dict[int, Tensor], args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        if packet in _CREATION:
            for t in _leaves(out):
                if isinstance(t, Tensor):
                    self._tracked[t] = _zero_tracked(t, 0.0)
            return
        accumulating = _accumulating(func, args, kwargs)  # an index_put that adds: arithmetic, not a move
        if packet in _STRUCTURAL and not accumulating:
            self._structural(func, args, kwargs, out)
            return
        call = Call(self, func, args, kwargs, out, before)
        rule_fn = _index_put_accumulate if accumulating else _RULES.get(func)
        if rule_fn is None:
            y64, err64, degree = self._fallback(call)
        else:
            y64, err64, degree = rule_fn(call)
        outs, ys, errs = (list(out), list(y64), list(err64)) if isinstance(out, (tuple, list)) else ([out], [y64], [err64])
        for o, y, e in zip(outs, ys, errs):
            if not isinstance(o, Tensor):
                continue
            total: Tensor | None = None
            exact_op = not isinstance(e, Tensor) and e == 0 and (o.dtype in (F64, C128) or not isinstance(y, Tensor) or not _float_like(o))
            if exact_op and (not _float_like(o) or all_finite(o)):  # nothing to add: a lazy zero, known as such
                self._assign(o, _zero_tracked(o, degree, torch.bool if o.dtype == torch.bool else F64).error, degree,
                             packet.__name__.endswith("_"), ZeroError())
            elif o.dtype == torch.bool:
                e = _as_tensor(e, o) if not isinstance(e, Tensor) else e
                total = e.to(torch.bool)
            elif not (o.is_floating_point() or o.is_complex()):
                total = torch.zeros(o.shape, dtype=F64, device=o.device)
            else:
                e = _as_tensor(e, o) if not isinstance(e, Tensor) else e
                e64 = e.to(device=o.device, dtype=F64)
                total = (e64 if all_finite(e64) else torch.nan_to_num(e64, nan=math.inf, posinf=math.inf)).expand(o.shape)
                if o.dtype not in (F64, C128) and isinstance(y, Tensor):  # the op's own rounding, measured
                    # (the float64 subtraction itself may round down by half an ulp: allowed for)
                    total = total + (_wide(o) - y.to(o.device)).abs() * (1 + 4 * U64)
                if not all_finite(o):
                    bad = ~torch.isfinite(o)
                    # Past the dtype's range where float64 is not: overflow (no bound). Non-finite in
                    # float64 too (0/0, log of a negative): the value is what the formula says.
                    y_finite = torch.isfinite(y.to(o.device)).expand(o.shape) if isinstance(y, Tensor) else torch.ones_like(bad)
                    overflow = bad & y_finite
                    if bool(overflow.any()) and all(bool(torch.isfinite(t).all()) for t in call.tensors() if _float_like(t)):
                        self.overflows.append(f"{func} gave {o[overflow].flatten()[0].item()} in {o.dtype} from finite inputs")
                    total = torch.where(overflow, torch.full_like(total, math.inf), total)
                    # non-finite in float64 too: nothing measured, but an unbounded input stays unbounded
                    propagated = torch.nan_to_num(e.to(device=o.device, dtype=F64), nan=math.inf, posinf=math.inf).expand(o.shape)
                    total = torch.where(bad & ~overflow, propagated, total)
                    operands = [call.before.get(id(t), t) for t in call.tensors() if _float_like(t)]
                    if all(all_finite(t) for t in operands):  # from finite operands the exact value is finite (or
                        total = torch.where(bad, torch.full_like(total, math.inf), total)  # undefined): unbounded
            if total is not None:
                # A fresh tensor of its own: a rule may hand back an input's own error (a copy), which must
                # not alias, or an expanded one, which could not be written in place through a view.
                # (a view has a base; an alias without one, such as a detached error, starts where the error does)
                aliased = not total.is_contiguous() or total._base is not None or any(
                    total.data_ptr() == info.error.data_ptr() for t in call.tensors() if (info := self._tracked.get(t)) is not None)
                self._assign(o, total.clone(memory_format=torch.contiguous_format) if aliased else total, degree,
                             packet.__name__.endswith("_"))
            source = self._tracked.get(args[0]) if args and isinstance(args[0], Tensor) else None
            if packet in (aten._to_copy, aten.clone) and source is not None and source.opaque:
                self._tracked.get(o).opaque = True  # type: ignore[union-attr]  # _assign has just tracked o; a copy of something made outside torch

    def _assign(self, t: Tensor, error: Tensor, degree: float, inplace: bool, zero: ZeroError | None = None) -> None:
        current = self._tracked.get(t)
        if inplace and current is not None and current.error.shape == error.shape and current.error.dtype == error.dtype:
            if current.zero is not None:
                current.zero.holds = False  # for t and every view that shares its error
            try:
                current.error.copy_(error)  # in place, so that if t is a view its base's error changes too
                current.degree = max(current.degree, degree)
                return
            except RuntimeError:  # an expanded (overlapping) error tensor cannot be written in place; a lazy
                pass  # zero (never viewed: see _materialized) is replaced for t alone, which is all there is
        self._tracked[t] = Tracked(error, degree, zero=zero)

    def _structural(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        bool_data = any(isinstance(o, Tensor) and o.dtype == torch.bool for o in _leaves(out))
        degrees = [self.degree(a) for a in _leaves(args) if isinstance(a, Tensor)]

        def substitute(a: Any) -> Any:
            if isinstance(a, Tensor) and (_float_like(a) or (bool_data and a.dtype == torch.bool)):
                info = self._tracked.get(a)
                if info is None:  # materialize, so that views of it share one error tensor
                    info = Tracked(torch.zeros(a.shape, dtype=torch.bool if a.dtype == torch.bool else F64, device=a.device), 0.0,
                                   zero=ZeroError())
                    self._tracked[a] = info
                elif _known_zero(info) and not (info.zero.watched and eager is None) and _lazy(info.error):  # type: ignore[union-attr]
                    info.error = torch.zeros(a.shape, dtype=info.error.dtype, device=a.device)  # a lazy zero, now viewed
                return self._readable(info)
            fill_value = func._overloadpacket in _FILLS and a is args[-1]
            if isinstance(a, (float, complex)) or (isinstance(a, int) and not isinstance(a, bool) and fill_value):
                return 0 if isinstance(a, int) else 0.0  # a filled-in constant is exact
            return a

        new_kwargs = {k: (v if k not in ("dtype",) else (torch.bool if bool_data else F64)) for k, v in kwargs.items()}
        if "value" in new_kwargs and not isinstance(new_kwargs["value"], Tensor):
            new_kwargs["value"] = 0
        def substitute_all(a: Any) -> Any:  # tensors inside lists too (cat, stack, index)
            if isinstance(a, (list, tuple)) and any(isinstance(v, Tensor) for v in a):
                return type(a)(substitute(v) if isinstance(v, Tensor) else v for v in a)
            return substitute(a)

        complex_view = _COMPLEX_VIEWS.get(func._overloadpacket)
        eager = complex_view  # a view that changes dtype: an input's zeros are made first
        if complex_view is not None:
            errors = complex_view(substitute(args[0]))
        else:
            try:
                errors = func(*[substitute_all(a) for a in args], **{k: substitute_all(v) for k, v in new_kwargs.items()})
            except RuntimeError:  # an input's lazy zeros cannot take this view (as_strided): made, then viewed
                eager = func
                errors = func(*[substitute_all(a) for a in args], **{k: substitute_all(v) for k, v in new_kwargs.items()})
        degree = max(degrees, default=0.0)
        sources = [self._tracked.get(a) for a in _leaves(args) if isinstance(a, Tensor) and _float_like(a)]
        opaque = bool(sources) and all(info is not None and info.opaque for info in sources)
        # zeros moved about stay zeros: a view shares its source's knowledge (and loses it with it), anything
        # else (a gather, a concatenation, new zeros of a source's kind) knows it on its own
        all_zero = bool(sources) and all(_known_zero(info) for info in sources)
        source = next((a for a in _leaves(args) if isinstance(a, Tensor) and _float_like(a)), None)
        outs = out if isinstance(out, (tuple, list)) else [out]
        errs = errors if isinstance(errors, (tuple, list)) else [errors]
        for o, e in zip(outs, errs):
            if isinstance(o, Tensor) and isinstance(e, Tensor):
                if not (_float_like(o) or o.dtype == torch.bool):
                    e = torch.zeros(o.shape, dtype=F64, device=o.device)
                shares = source is not None and o.untyped_storage().data_ptr() == source.untyped_storage().data_ptr()
                zero = (sources[0].zero if shares else ZeroError()) if all_zero and sources[0] is not None else None
                self._assign(o, e, degree, func._overloadpacket.__name__.endswith("_"), zero)
                if opaque:
                    self._tracked.get(o).opaque = True  # type: ignore[union-attr]  # _assign has just tracked o

    def _fallback(self, call: Call) -> tuple[Any, Any, float]:
        """No rule, no decomposition: rerun in float64 (measuring the op's rounding), propagate input
        errors to first order by forward-mode AD with a margin, and say so."""
        func = call.func
        args64 = tree_map(call.x64, call.args)
        y64 = func(*args64, **call.kwargs)
        floats = [i for i, a in enumerate(call.args) if _float_like(a)]
        errors = [call.e(call.args[i]) for i in floats]
        propagated: Any = 0.0
        if any(_nonzero(e) for e in errors):
            # The change of the op when every input moves by its error, one way and the other (exact for
            # monotone elementwise ops; to first order otherwise), times a margin.
            moved = []
            for sign in (1.0, -1.0):
                shifted = list(args64)
                for i, e in zip(floats, errors):
                    shifted[i] = args64[i] + sign * _as_tensor(e, args64[i])
                moved.append(func(*shifted, **call.kwargs))

            def spread(y: Any, up: Any, down: Any) -> Any:
                if not _float_like(y):
                    return 0.0
                change = torch.maximum((up - y).abs(), (down - y).abs())
                return FALLBACK_MARGIN * torch.nan_to_num(change, nan=math.inf, posinf=math.inf)

            if isinstance(y64, (tuple, list)):
                propagated = [spread(y, u, d) for y, u, d in zip(y64, moved[0], moved[1])]
            else:
                propagated = spread(y64, moved[0], moved[1])
            how = f"propagation by moving its inputs by their errors, × {FALLBACK_MARGIN:g}; its rounding measured against float64"
        else:
            how = "its rounding measured against float64 (exact inputs)"
        self.fallbacks.setdefault(str(func), how)
        if isinstance(y64, (tuple, list)):
            props = propagated if isinstance(propagated, (tuple, list)) else [propagated] * len(y64)
            errs = [(_local(y, TRANSCENDENTAL_ULPS) + p) if _float_like(y) else 0.0 for y, p in zip(y64, props)]
            return y64, errs, POLYNOMIAL_INF
        return y64, _local(y64, TRANSCENDENTAL_ULPS) + propagated, POLYNOMIAL_INF


def signature(decisions: Iterable[Decision]) -> list[Tensor]:
    return [d.outcome for d in decisions]


def same_decisions(a: list[Decision], b: list[Decision]) -> bool:
    """Whether two runs took the same discrete decisions (same branch of every comparison, relu, max)."""
    if len(a) != len(b):
        return False
    return all(x.op == y.op and x.outcome.shape == y.outcome.shape and bool(torch.equal(x.outcome, y.outcome))
               for x, y in zip(a, b))


def traced(fn: Callable[..., Any], *args: Any, watch: Iterable[Tensor] = (), exact: bool = False) -> tuple[Any, RunningError]:
    """Run ``fn(*args)`` under a fresh ``RunningError`` with ``watch`` marked as the variables."""
    mode = RunningError(exact=exact)
    mode.watch(*watch)
    with mode:
        result = fn(*args)
    return result, mode


