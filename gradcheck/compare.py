"""Value comparison: a hand-written gradient against an oracle, under the bound the error model derived.

A comparison is elementwise against autograd (``|manual − reference| ≤ E_manual + E_reference``) and
along probe directions against finite differences (``|w·⟨manual, δ⟩ − difference| ≤ w·⟨E_manual, |δ|⟩
+ error``). It always says at which element the error is largest *relative to its bound*, with that
element's own values, and how much power it had: the smallest relative error it would have caught.
An infinite bound (an overflow, a rule-less op) never becomes a NaN: such elements have no power.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from gradcheck.oracles import Probe, inner_terms, step_scale
from gradcheck.report import Comparison
from gradcheck.rounding import all_finite
from gradcheck.tolerance import gamma, reference_dtype

Tensor = torch.Tensor
F64 = torch.float64


def error_ratio(error: Tensor, bound: Tensor) -> Tensor:
    """``error / bound`` with the edge cases decided: no error is 0; an infinite bound has no power
    (0, reported separately); a positive error against a zero bound is infinite."""
    ratio = error / bound
    if all_finite(ratio):  # the usual case: finite errors, positive or infinite bounds
        return ratio
    ratio = torch.where(error == 0, torch.zeros_like(ratio), ratio)
    ratio = torch.where(torch.isinf(bound) & ~torch.isnan(error) & ~torch.isinf(error), torch.zeros_like(ratio), ratio)
    ratio = torch.where(torch.isinf(bound) & torch.isinf(error), torch.zeros_like(ratio), ratio)
    return torch.nan_to_num(ratio, nan=math.inf, posinf=math.inf)


def element_comparison(index: int | None, name: str, oracle: str, exact: bool, actual: Tensor, expected: Tensor,
                       bound: Tensor) -> Comparison:
    """``actual`` against ``expected`` elementwise, within ``bound`` (all shaped like the input); for
    complex values the error is the modulus of the difference."""
    if actual.numel() == 0:
        return Comparison(index, name, oracle, exact, 0.0, 0.0, "-", math.nan, math.nan, 0.0, 0.0)
    a = actual.detach().to(reference_dtype(expected.dtype)).reshape(expected.shape)
    error = (a - expected).abs() if expected.is_complex() else torch.sub(a, expected).abs_()
    bound = bound.to(F64)
    if not all_finite(bound):
        bound = torch.nan_to_num(bound, nan=math.inf, posinf=math.inf)  # never a NaN bound
    bound = bound.expand(expected.shape)
    max_abs_error = float(error.max())
    ratio = error / bound if expected.is_complex() else error.div_(bound)  # (the errors' memory reused: read above)
    fixed: Tensor | None = None
    if not all_finite(ratio):  # finite ratios (the usual case) mean finite errors: else decided element by element
        fixed = (a - expected).abs()
        fixed = torch.where(torch.isfinite(a) | (a == expected), fixed, torch.full_like(fixed, math.inf))
        fixed = torch.where(a == expected, torch.zeros_like(fixed), fixed)  # equal infinities are no error
        max_abs_error = float(fixed.max())
        ratio = error_ratio(fixed, bound)
    flat = int(torch.argmax(ratio.reshape(-1)))
    where = tuple(int(j) for j in torch.unravel_index(torch.tensor(flat), expected.shape)) if expected.ndim else ()
    e = float(fixed[where]) if fixed is not None else float((a[where] - expected[where]).abs())
    x, b = expected[where].item(), float(bound[where])
    # bound/0 is inf (no relative power there), or NaN for 0/0: both mean none
    relative = torch.div(bound, expected).abs_() if not expected.is_complex() else bound / expected.abs()
    power = float(relative.amin())
    if math.isnan(power):
        power = float(relative.nan_to_num_(nan=math.inf, posinf=math.inf).min())
    # no power anywhere: every bound infinite, or positive and at least its value — only possible when power ≥ 1
    no_power = power >= 1 and bool((torch.isinf(bound) | (bound >= expected.abs()) & (bound > 0)).all())
    return Comparison(
        index, name, oracle, exact,
        max_abs_error=max_abs_error, max_rel_error=_relative(e, x), worst=str(where),
        actual=a[where].item(), expected=x, bound=b, ratio=float(ratio[where]),
        abs_error=e, power=power, no_power=no_power,
    )


def _relative(error: float, value: float) -> float:
    if error == 0:
        return 0.0
    return error / abs(value) if value else math.inf


def probe_comparison(index: int | None, name: str, exact: bool, manual: Sequence[Tensor | None],
                     errors: Sequence[Tensor], probes: Sequence[Probe]) -> Comparison:
    """The adjoint identity along each probe: ``⟨manual, δ⟩`` (``Re⟨manual, δ⟩`` for complex inputs) against
    the difference of φ. Errors are expressed per unit step. Probes that crossed a kink are skipped (and
    said so); a coordinate probe along an imaginary unit is named so."""
    rows = []
    kinks = 0
    for k, p in enumerate(probes):
        if p.crossed_kink:
            kinks += 1
            continue
        lhs, allowed_terms, magnitude, count = 0.0, 0.0, 0.0, 0
        for g, e, d in zip(manual, errors, p.delta):
            if d is None:
                continue
            m = torch.zeros_like(d) if g is None else g.detach().to(reference_dtype(g.dtype)).reshape(d.shape)
            if m.is_complex() or d.is_complex():
                terms = inner_terms(m, d)
                lhs += float(terms.sum())
                magnitude += float(terms.abs().sum())
                allowed_terms += float((e.to(F64).expand(d.shape) * d.abs()).sum())
                count += terms.numel()
            else:  # the same sums as dot products (another order: γ_n covers it), no terms in memory
                m, d_abs = m.reshape(-1), d.abs().reshape(-1)
                lhs += float(torch.dot(m, d.reshape(-1)))
                magnitude += float(torch.dot(m.abs(), d_abs))
                allowed_terms += float(torch.dot(e.to(F64).expand(d.shape).reshape(-1), d_abs))
                count += m.numel()
        integer = exact and float(lhs).is_integer() and magnitude < 2.0**53
        dot_rounding = 0.0 if integer else gamma(max(count, 1), F64) * magnitude
        allowed = allowed_terms + dot_rounding + p.error
        allowed = math.inf if math.isnan(allowed) else allowed
        error = abs(lhs - p.difference) if math.isfinite(lhs) else math.inf
        if not math.isfinite(p.difference) and not math.isfinite(allowed):
            error = 0.0
        ratio = float(error_ratio(torch.tensor(error, dtype=F64), torch.tensor(allowed, dtype=F64)))
        scale = step_scale(p)
        where = f"{p.element[1]}{_part(p)}" if p.element is not None else f"probe {k}"
        rows.append((ratio, error / scale, allowed / scale, lhs / scale, p.difference / scale, where))
    if not rows:
        note = "every probe crossed a kink" if kinks else "-"
        return Comparison(index, name, "finite_differences", exact, 0.0, 0.0, note, math.nan, math.nan, 0.0, 0.0,
                          inconclusive="f is not smooth along any probe (a kink between the probe points)" if kinks else None)
    ratio, error, allowed, actual, expected, where = max(rows, key=lambda r: r[0])
    return Comparison(index, name, "finite_differences", exact, max(r[1] for r in rows), _relative(error, expected), where,
                      actual, expected, allowed, ratio, abs_error=error,
                      power=min((r[2] / abs(r[4]) if r[4] else math.inf) for r in rows),
                      no_power=all(not math.isfinite(r[2]) or (r[2] >= abs(r[4]) and r[2] > 0) for r in rows))


def _part(p: Probe) -> str:
    """" along i" for a coordinate probe that moved an element's imaginary part."""
    if p.element is None:
        return ""
    d = p.delta[p.element[0]]
    return " along i" if d is not None and d.is_complex() and bool(d[p.element[1]].imag != 0) else ""
