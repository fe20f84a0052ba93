"""Forward mode and second order: a hand-written JVP checked against forward-mode autograd and finite
differences, under the running error model (``gradcheck.rounding``).

A JVP is the directional derivative ``J·v = d/dt f(x + t·v)`` at ``t = 0``, one tangent ``v`` per input.
So one central difference ``(f(x + h·v) − f(x − h·v)) / 2h`` estimates *every* element of the output
tangent at once — it is exact (up to rounding) when the trace shows ``f`` at most quadratic, and
Richardson's ``(8·D(h) − D(2h)) / 12h`` is exact up to degree 4. Both oracles run in float64 on upcast
inputs and are traced for their own rounding; the hand-written JVP runs in its own dtype under the mode,
so its bound is that of its own algorithm. Each output tangent is compared elementwise:
``|manual − oracle| ≤ E_manual + E_oracle``.

A Hessian-vector product is the JVP of the gradient, ``H·v = d/dt ∇L(x + t·v)``: ``check_hvp`` is
``check_jvp`` applied to autograd's gradient of the loss. ``check_function_jvp`` checks the ``jvp`` of a
forward-mode ``torch.autograd.Function`` by running ``F.apply`` on dual tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from hypothesis import strategies as st

from gradcheck.arguments import Arguments, call_forward, differentiable, floating_outputs, name_of, require_real, validate_inputs
from gradcheck.check import GradcheckError, GradientMismatch, _kink_comparison, verify
from gradcheck.compare import element_comparison
from gradcheck.devices import full_precision
from gradcheck.functions import forward_body, require_function
from gradcheck.oracles import KINK_NUDGE_ULPS, random_direction, upcast
from gradcheck.replay import Replay
from gradcheck.report import Problem, Report
from gradcheck.rounding import Decision, RunningError, same_decisions

Tensor = torch.Tensor
F64 = torch.float64
EPS64 = torch.finfo(F64).eps
TANGENT_SEED_SALT = 0xBB67AE85  # tangents are not drawn from the stream a user's own seed-0 inputs came from
EXACT_TANGENT_VALUES = (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0)
UNTRACED_MARGIN = 16.0  # a JVP the error model cannot see into is allowed 16× forward-mode autograd's rounding
# Ops the mode meets inside forward-mode autograd's bookkeeping (metadata checks, meta-device shape
# probes), not in the arithmetic: its "no rule" entries for them are not worth a note.
BOOKKEEPING = ("_has_same_storage_numel", "meta tensors")

__all__ = ["assert_jvp", "check_function_jvp", "check_hvp", "check_jvp", "verify_jvp"]


# ---- tangents ----------------------------------------------------------------------------------------

def _draw_tangent(x: Tensor, generator: torch.Generator, exact: bool) -> Tensor:
    """Nonzero integers in exact mode; else multiples of 1/16 in [−4, 4] (so ``x ± h·v`` loses little),
    zeros moved to ½ so that every element of every input is probed."""
    if exact:
        choices = torch.tensor(EXACT_TANGENT_VALUES, dtype=F64)
        return choices[torch.randint(len(choices), tuple(x.shape), generator=generator)].to(x)
    v = random_direction(x, generator, exact=False)
    return torch.where(v == 0, torch.full_like(v, 0.5), v)


def _tangents(args: Arguments, given: Any, *, seed: int, exact: bool) -> tuple[Tensor | None, ...]:
    """One tangent per input (None for inputs that are not floating tensors): the caller's, checked, or
    drawn with a seeded generator — never all ones, which would hide a JVP that ignores its tangent."""
    n = len(args.values)
    if given is None:
        generator = torch.Generator().manual_seed(seed ^ TANGENT_SEED_SALT)
        drawn = [_draw_tangent(v, generator, exact) if i in args.diff else None for i, v in enumerate(args.values)]
        present = [t for t in drawn if t is not None and t.numel()]
        if present and all(bool((t == 1).all()) for t in present):
            present[0].view(-1)[0] = 2.0
        return tuple(drawn)
    given = (given,) if isinstance(given, Tensor) and n == 1 else given
    if isinstance(given, Tensor) or not isinstance(given, (tuple, list)) or len(given) != n:
        got = type(given).__name__ if not isinstance(given, (tuple, list)) else f"{len(given)}"
        raise GradcheckError(f"tangents: expected {n} (one per input, None for inputs that are not floating-point "
                             f"tensors), got {got}")
    for i, (x, t) in enumerate(zip(args.values, given)):
        where = f"tangent {i} ({args.names[i]})"
        if i not in args.diff:
            if t is not None:
                raise GradcheckError(f"{where}: expected None (the input is not a floating-point tensor), "
                                     f"got {type(t).__name__}")
            continue
        if not isinstance(t, Tensor):
            raise GradcheckError(f"{where}: expected a torch.Tensor, got {type(t).__name__}")
        if t.shape != x.shape or t.dtype != x.dtype or t.device != x.device:
            raise GradcheckError(f"{where}: expected shape {tuple(x.shape)}, {x.dtype} on {x.device} (like the input), "
                                 f"got shape {tuple(t.shape)}, {t.dtype} on {t.device}")
        if not bool(torch.isfinite(t).all()):
            raise GradcheckError(f"{where}: expected finite values, got NaN or inf")
    return tuple(t.detach() if isinstance(t, Tensor) else None for t in given)


def _require_integers(args: Arguments, tangents: Sequence[Tensor | None]) -> None:
    named = [*zip(args.diff_names, args.tensors),
             *((f"tangent {i}", t) for i, t in enumerate(tangents) if t is not None)]
    for name, t in named:
        if not torch.equal(t, t.round()):
            raise GradcheckError(f"{name}: exact mode expects integer values, got non-integers")


# ---- oracles -----------------------------------------------------------------------------------------

@dataclass
class Traced:
    """One traced run: each floating output in float64, its error bound, and what the trace saw."""

    values: tuple[Tensor, ...]
    errors: tuple[Tensor, ...]
    degree: float
    decisions: list[Decision]
    kinks: list[str]
    fallbacks: dict[str, str]


def _trace(fn: Callable[..., Any], points: Sequence[Tensor], *, exact: bool, lost: Sequence[Tensor] = ()) -> Traced:
    """Run ``fn(*points)`` under the mode; ``lost``: errors the points already carry (their rounding)."""
    mode = RunningError(exact=exact)
    mode.watch(*points)
    for p, e in zip(points, lost):
        mode.set_error(p, e)
    with torch.no_grad(), mode:
        out = floating_outputs(fn(*points))
    errors = tuple(torch.zeros(o.shape, dtype=F64, device=o.device) if (err := mode.error(o)) is None else err.to(F64)
                   for o in out)
    return Traced(tuple(o.detach().to(F64) for o in out), errors, max((mode.degree(o) for o in out), default=0.0),
                  mode.decisions, mode.at_kink(), _worth_noting(mode.fallbacks))


def _worth_noting(fallbacks: dict[str, str]) -> dict[str, str]:
    return {op: how for op, how in fallbacks.items() if not any(b in op or b in how for b in BOOKKEEPING)}


def forward_mode_reference(f: Callable[..., Any], xs: Sequence[Tensor], vs: Sequence[Tensor], *,
                           exact: bool = False) -> Traced:
    """``J·v`` by ``torch.func.jvp`` on ``f`` (a function of the tensors ``xs``), traced for its rounding."""
    return _trace(lambda *p: torch.func.jvp(f, tuple(p[: len(xs)]), tuple(p[len(xs):]))[1], [*xs, *vs], exact=exact)


def _nudged_jvps(f: Callable[..., Any], xs: Sequence[Tensor], vs: Sequence[Tensor],
                 generator: torch.Generator) -> list[tuple[Tensor, ...]]:
    """Forward-mode JVPs a few ulps away on each side of a kink (all up, all down, two random patterns),
    as ``oracles.nudged_references`` does for VJPs."""
    random = [torch.randint(0, 2, x.shape, generator=generator).to(x) * 2 - 1 for x in xs]
    found = []
    for signs in ([torch.ones_like(x) for x in xs], [-torch.ones_like(x) for x in xs], random, [-r for r in random]):
        moved = tuple(x + s * torch.maximum(x.abs() * KINK_NUDGE_ULPS * EPS64, torch.full_like(x, 2.0**-1000))
                      for x, s in zip(xs, signs))
        with torch.no_grad():
            found.append(floating_outputs(torch.func.jvp(f, moved, tuple(vs))[1]))
    return found


@dataclass(frozen=True)
class Difference:
    """The finite-difference estimate of each output tangent, elementwise, with the bound on its error."""

    estimates: tuple[Tensor, ...]
    errors: tuple[Tensor, ...]
    crossed_kink: bool
    degree: float


def _step(xs: Sequence[Tensor], vs: Sequence[Tensor], exact: bool) -> float:
    """One scalar step for all inputs, so that ``f(x ± h·v)`` differ along ``v`` itself: 1 in exact mode,
    else a power of two near ``u^(1/3)·max(1, |x|) / |v|`` (rounding of f over h balances truncation)."""
    if exact:
        return 1.0
    size = max([1.0, *(float(x.abs().max()) for x in xs if x.numel())])
    speed = max([0.0, *(float(v.abs().max()) for v in vs if v.numel())]) or 1.0
    return 2.0 ** math.floor(math.log2(EPS64 ** (1 / 3) * size / speed))


def _two_sum_error(a: Tensor, b: Tensor, s: Tensor) -> Tensor:
    """``a + b − s`` exactly, for ``s = fl(a + b)`` (Knuth's TwoSum): what a shifted point lost."""
    a1 = s - b
    b1 = s - a1
    return (a - a1) + (b - b1)


def _rounding(d: Tensor, exact: bool) -> Tensor:
    """A bound on the rounding of a float64 subtraction that gave ``d`` (none for small integers in exact mode)."""
    lost = EPS64 * d.abs()
    return torch.where((d == d.round()) & (d.abs() < 2.0**53), torch.zeros_like(lost), lost) if exact else lost


def finite_differences(f: Callable[..., Any], xs: Sequence[Tensor], vs: Sequence[Tensor], *,
                       exact: bool = False) -> Difference:
    """Central differences of ``f`` along ``v`` elementwise, each evaluation traced (the shifted points'
    own rounding included); Richardson-extrapolated unless the trace shows ``f`` at most quadratic."""
    h = _step(xs, vs, exact)

    def at(s: float) -> Traced:
        shift = [(s * h) * v for v in vs]  # exact: s·h is a power of two
        points = [x + d for x, d in zip(xs, shift)]
        lost = [_two_sum_error(x, d, p).abs() for x, d, p in zip(xs, shift, points)]
        return _trace(f, points, exact=exact, lost=lost)

    plus, minus = at(1.0), at(-1.0)
    d1 = [p - m for p, m in zip(plus.values, minus.values)]
    e1 = [ep + em + _rounding(d, exact) for ep, em, d in zip(plus.errors, minus.errors, d1)]
    kink = not same_decisions(plus.decisions, minus.decisions)
    degree = max(plus.degree, minus.degree)
    if degree <= 2:
        return Difference(tuple(d / (2 * h) for d in d1), tuple(e / (2 * h) for e in e1), kink, degree)
    plus2, minus2 = at(2.0), at(-2.0)
    kink = kink or not (same_decisions(plus.decisions, plus2.decisions) and same_decisions(minus.decisions, minus2.decisions))
    estimates, errors = [], []
    for k, (d, e) in enumerate(zip(d1, e1)):
        d2 = plus2.values[k] - minus2.values[k]
        combined = 8 * d - d2  # = 12h·J·v + O(h⁵): exact for polynomials of degree ≤ 4
        error = 8 * e + plus2.errors[k] + minus2.errors[k] + _rounding(d2, exact) + _rounding(combined, exact)
        if not degree <= 4:  # smooth f: the gap between the O(h²) and O(h⁴) estimates bounds the latter's error
            error = error + (combined - 6 * d).abs()
        estimate = combined / (12 * h)
        estimates.append(estimate)
        errors.append(error / (12 * h) + EPS64 * estimate.abs())
    return Difference(tuple(estimates), tuple(errors), kink, degree)


# ---- the checks --------------------------------------------------------------------------------------

def check_jvp(
    f: Callable[..., Any],
    jvp: Callable[..., Any],
    inputs: Sequence[Any],
    *,
    tangents: Tensor | Sequence[Tensor | None] | None = None,
    names: Sequence[str] | None = None,
    seed: int = 0,
    exact: bool = False,
    label: str | None = None,
    reference: Callable[..., Any] | None = None,
) -> Report:
    """Check ``jvp(*inputs, *tangents)`` — the output tangent ``J·v`` (a tuple, one per floating output,
    when ``f`` returns several) — against ``torch.func.jvp`` on ``f`` and central differences of ``f``
    along the tangents, elementwise, under bounds traced from both the JVP's own run and the oracles'.

    ``tangents``: one per input (None for inputs that are not floating tensors; a tensor alone for a
    single input); by default drawn from ``seed`` (which also picks the points nudged beside a kink),
    never all ones. ``exact``: integer inputs and
    tangents, compared bit for bit wherever the arithmetic is exact. ``reference``: what the oracles
    differentiate when it is not ``f`` itself (a Function's plain forward).
    """
    for what, fn in (("f", f), ("jvp", jvp), ("reference", reference if reference is not None else f)):
        if not callable(fn):
            raise GradcheckError(f"{what}: expected a callable, got {type(fn).__name__}")
    args = validate_inputs(inputs, names)
    require_real(args, "forward mode (check_jvp)")
    outs = floating_outputs(call_forward(f, args.values))
    ts = _tangents(args, tangents, seed=seed, exact=exact)
    if exact:
        _require_integers(args, ts)
    first = args.tensors[0]
    report = Report(function=label or name_of(f), input_names=args.names,
                    shapes=tuple(tuple(v.shape) if isinstance(v, Tensor) else () for v in args.values),
                    dtype=str(first.dtype).removeprefix("torch."), device=str(first.device), exact=exact)
    frozen = Arguments(tuple(_clone(v) for v in args.values), args.names, args.diff)  # never handed to user code
    frozen_ts = tuple(_clone(t) for t in ts)
    with full_precision():
        mutated = _run_checks(report, jvp, reference or f, args, ts, frozen, frozen_ts, outs, exact=exact, seed=seed)
    if not report.ok:
        values, used = (frozen.values, frozen_ts) if mutated else (args.values, ts)  # as given, layouts included
        report.reproducer = _replay("check_jvp", [("f", f), ("jvp", jvp)], values, args.names, used,
                                    {"exact": exact or None, "label": label})
    return report


def _note_fallbacks(report: Report, where: str, fallbacks: dict[str, str]) -> None:
    if _worth_noting(fallbacks):
        report.notes.append(f"ops without an error rule in {where}: "
                            + "; ".join(f"{op}: {how}" for op, how in _worth_noting(fallbacks).items()))


def _clone(v: Any) -> Any:
    return v.clone() if isinstance(v, Tensor) else v


def _names(count: int) -> list[str]:
    return ["output tangent"] if count == 1 else [f"output {k} tangent" for k in range(count)]


def _run_checks(report: Report, jvp: Callable[..., Any], reference: Callable[..., Any], args: Arguments,
                ts: Sequence[Tensor | None], frozen: Arguments, frozen_ts: Sequence[Tensor | None],
                outs: Sequence[Tensor], *, exact: bool, seed: int) -> bool:
    """Run the JVP on ``args`` and ``ts`` under the mode, judge its output, and compare it with the
    oracles evaluated on ``frozen`` copies. Returns whether the JVP modified what it was given."""
    mode = RunningError(exact=exact)
    mode.watch(*args.tensors, *(t for t in ts if t is not None))
    try:
        with mode:
            got = jvp(*args.values, *ts)
    except Exception as exc:  # a raising JVP is a finding about the JVP, not a harness crash
        report.problems.append(Problem("raised", "the jvp to return the output tangent", f"{type(exc).__name__}: {exc}"))
        return False
    mutated = False
    for k, (v, o) in enumerate(zip((*args.values, *ts), (*frozen.values, *frozen_ts))):
        if isinstance(v, Tensor) and not torch.equal(v, o):
            mutated = True
            i = k % len(args.values)
            what = f"{'input' if k < len(args.values) else 'tangent'} {i} ({args.names[i]}) left unchanged"
            report.problems.append(Problem("mutated", what, "modified in place"))
    args, ts = frozen, frozen_ts
    manual = _structure(report, got, outs)
    if mode.overflows:
        report.problems.append(Problem("overflow", f"the jvp's arithmetic to stay within {outs[0].dtype}'s range",
                                       "; ".join(mode.overflows[:3])))
    _note_fallbacks(report, "the jvp", mode.fallbacks)

    def floating(*tensors: Tensor) -> tuple[Tensor, ...]:  # the reference as a function of the floating inputs alone
        return floating_outputs(reference(*args.with_tensors(tensors)))

    floating.__name__ = name_of(reference)
    xs, vs = upcast(args.tensors), upcast([t for i in args.diff if (t := ts[i]) is not None])
    out64 = call_forward(floating, xs, "the reference forward on float64 copies of the inputs")
    for k, o in enumerate(out64):
        if not bool(torch.isfinite(o).all()):
            where = int((~torch.isfinite(o.reshape(-1))).nonzero()[0])
            report.problems.append(Problem("overflow", "f finite at these inputs (in float64)",
                                           f"{float(o.reshape(-1)[where])} at flattened index {where} of output {k}"))
            return mutated
    errors = _manual_errors(report, mode, floating, args, ts, manual, exact=exact)
    names = _names(len(outs))
    try:
        ref = forward_mode_reference(floating, xs, vs, exact=exact)
    except Exception as exc:  # noqa: BLE001 - f not transformable by torch.func: finite differences remain
        report.notes.append(f"forward-mode autograd oracle unavailable: {type(exc).__name__}: {exc}")
    else:
        _note_fallbacks(report, "f", ref.fallbacks)
        beside: list[tuple[Tensor, ...]] | None = None
        for k, m in manual.items():
            bound = errors[k].to(ref.values[k].device) + ref.errors[k]
            c = element_comparison(None, names[k], "autograd", exact, m, ref.values[k], bound)
            if ref.kinks and not c.ok:  # at a kink any one-sided derivative is right: judge the others
                if beside is None:
                    beside = _nudged_jvps(floating, xs, vs, torch.Generator().manual_seed(seed))
                c = _kink_comparison(c, None, names[k], exact, m, ref.values[k], [b[k] for b in beside], bound, ref.kinks)
            report.comparisons.append(c)
    diff = finite_differences(floating, xs, vs, exact=exact)
    for k, m in manual.items():
        bound = errors[k].to(diff.estimates[k].device) + diff.errors[k]
        c = element_comparison(None, names[k], "finite_differences", exact, m, diff.estimates[k], bound)
        if diff.crossed_kink and not c.ok:
            c = replace(c, inconclusive="f is not smooth between x − h·v and x + h·v (a kink between the points)")
        report.comparisons.append(c)
    return mutated


def _structure(report: Report, got: Any, outs: Sequence[Tensor]) -> dict[int, Tensor]:
    """The output tangents, one per floating output, each shaped, typed and placed like its output
    (the raw contract: forward-mode autograd rejects a wrong shape). Returns the usable ones."""
    if len(outs) == 1 and (got is None or isinstance(got, Tensor)):
        got = (got,)
    if not isinstance(got, (tuple, list)) or len(got) != len(outs):
        what = f"{len(got)}" if isinstance(got, (tuple, list)) else f"a {type(got).__name__}"
        report.problems.append(Problem("count", f"{len(outs)} output tangent(s) (one per floating output of f)", what))
        return {}
    usable = {}
    for k, (t, o) in enumerate(zip(got, outs)):
        where = _names(len(outs))[k]
        if t is None:
            report.problems.append(Problem("missing", f"the {where}", "None"))
            continue
        if not isinstance(t, Tensor):
            report.problems.append(Problem("type", f"the {where} as a torch.Tensor", type(t).__name__))
            continue
        if tuple(t.shape) != tuple(o.shape):
            report.problems.append(Problem("shape", f"the {where} shaped {tuple(o.shape)} (as the output)",
                                           f"{tuple(t.shape)}"))
            continue
        if t.dtype != o.dtype:
            report.problems.append(Problem("dtype", f"the {where} in {o.dtype} (as the output)", f"{t.dtype}"))
        if t.device != o.device:
            report.problems.append(Problem("device", f"the {where} on {o.device} (as the output)", f"{t.device}"))
            if t.device.type == "meta":
                continue
        usable[k] = t
    return usable


def _manual_errors(report: Report, mode: RunningError, floating: Callable[..., Any], args: Arguments,
                   ts: Sequence[Tensor | None], manual: dict[int, Tensor], *, exact: bool) -> dict[int, Tensor]:
    """The bound on each hand-written output tangent's rounding, traced from its run; for a JVP the mode
    could not see into, forward-mode autograd's own rounding in the same dtype, with a margin, said so."""
    errors = {k: mode.error(t) for k, t in manual.items()}
    untraced = [k for k, e in errors.items() if e is None]
    if untraced:
        try:
            own = [t for i in args.diff if (t := ts[i]) is not None]
            fallback = forward_mode_reference(floating, args.tensors, own, exact=exact)
            errors.update({k: UNTRACED_MARGIN * fallback.errors[k] for k in untraced})
            report.notes.append(f"the jvp's arithmetic was not visible to the error model (numpy or a compiled kernel?): "
                                f"bounded by forward-mode autograd in {args.tensors[0].dtype} × {UNTRACED_MARGIN:g}")
        except Exception as exc:  # noqa: BLE001 - no forward mode either: only the oracles' own error remains
            errors.update({k: torch.zeros(manual[k].shape, dtype=F64) for k in untraced})
            report.notes.append(f"the jvp's arithmetic was not visible to the error model, and forward-mode autograd "
                                f"cannot model it ({type(exc).__name__}): its rounding is not allowed for")
    return {k: e.to(F64) for k, e in errors.items() if e is not None}


def _replay(kind: str, callables: Sequence[tuple[str, Any]], values: Sequence[Any], names: Sequence[str],
            tangents: Sequence[Tensor | None], options: dict[str, Any]) -> str:
    keywords = "".join(f", {k}={v!r}" for k, v in options.items() if v is not None)
    call = (f"gradcheck.{kind}({', '.join(alias for alias, _ in callables)}, inputs, tangents=tangents, "
            f"names={tuple(names)!r}{keywords})")
    return Replay().script(call, callables, values, names, tangents).replace("\ncotangent = ", "\ntangents = ")


def assert_jvp(f: Callable[..., Any], jvp: Callable[..., Any], inputs: Sequence[Any], **options: Any) -> Report:
    """``check_jvp``, raising ``GradientMismatch`` (an ``AssertionError``) with the report when it fails."""
    report = check_jvp(f, jvp, inputs, **options)
    if not report.ok:
        raise GradientMismatch(report)
    return report


def verify_jvp(f: Callable[..., Any], jvp: Callable[..., Any], operands: st.SearchStrategy, *,
               max_examples: int | None = None, exact: bool = False, **options: Any) -> None:
    """``verify`` for a JVP: ``check_jvp`` on every input tuple hypothesis draws from ``operands``
    (tangents drawn from ``seed``), shrinking to a minimal failing example."""

    def checked(f_: Callable[..., Any], jvp_: Callable[..., Any], values: Sequence[Any], *,
                cotangent: Any = None, **kw: Any) -> Report:
        return check_jvp(f_, jvp_, values, **kw)

    verify(f, jvp, operands, max_examples=max_examples, exact=exact, _check=checked, **options)


# ---- second order: Hessian-vector products ----------------------------------------------------------

def check_hvp(loss: Callable[..., Tensor], hvp: Callable[..., Any], inputs: Sequence[Any], *, wrt: Sequence[int],
              tangents: Sequence[Tensor] | None = None, names: Sequence[str] | None = None, seed: int = 0,
              exact: bool = False, label: str | None = None) -> Report:
    """Check ``hvp(*inputs, *tangents)`` — ``H·v`` for the inputs at positions ``wrt``, one tensor each —
    as the JVP of autograd's gradient of the scalar ``loss`` w.r.t. those inputs (the others held fixed):
    against ``torch.func.jvp`` of ``torch.func.grad`` and central differences of that gradient.
    ``tangents``: one per ``wrt`` input; ``names``: one per input."""
    if not callable(loss) or not callable(hvp):
        raise GradcheckError(f"loss, hvp: expected callables, got {type(loss).__name__}, {type(hvp).__name__}")
    args = validate_inputs(inputs, names)
    require_real(args, "second order (check_hvp)")
    wrt = tuple(wrt)
    if not wrt or len(set(wrt)) != len(wrt) or any(not isinstance(i, int) or i not in args.diff for i in wrt):
        raise GradcheckError(f"wrt: expected distinct positions of floating-point tensor inputs among {args.diff}, "
                             f"got {wrt!r}")
    moving = Arguments(tuple(args.values[i] for i in wrt), tuple(args.names[i] for i in wrt), tuple(range(len(wrt))))
    ts = _tangents(moving, tangents, seed=seed, exact=exact)

    def at(xs: Sequence[Tensor]) -> list[Any]:
        """All inputs, the moving ones replaced; the fixed tensors in the moving ones' dtype (an exact upcast)."""
        full = [v.to(xs[0].dtype) if differentiable(v) else v for v in args.values]
        for i, x in zip(wrt, xs):
            full[i] = x
        return full

    def gradient(*xs: Tensor) -> tuple[Tensor, ...]:
        grads: tuple[Tensor, ...] = torch.func.grad(lambda *m: loss(*at(m)), argnums=tuple(range(len(xs))))(*xs)
        return grads

    def hand_written(*values: Any) -> Any:
        return hvp(*at(values[: len(wrt)]), *values[len(wrt):])

    gradient.__name__ = f"grad {name_of(loss)}"
    report = check_jvp(gradient, hand_written, moving.values, tangents=ts, names=moving.names, exact=exact,
                       label=label or name_of(hvp))
    if not report.ok:
        report.reproducer = _replay("check_hvp", [("loss", loss), ("hvp", hvp)], args.values, args.names, ts,
                                    {"wrt": wrt, "exact": exact or None, "label": label})
    return report


# ---- forward-mode torch.autograd.Function -----------------------------------------------------------

def defines_jvp(function: type[torch.autograd.Function]) -> bool:
    """Whether a Function implements forward mode (its own ``jvp``, not the base class's)."""
    return getattr(function, "jvp", None) is not torch.autograd.Function.jvp


def check_function_jvp(function: type[torch.autograd.Function], inputs: Sequence[Any], **options: Any) -> Report:
    """Check a Function's ``jvp`` as forward-mode autograd runs it — ``F.apply`` on dual tensors, the
    output tangents unpacked — against oracles that differentiate its forward as plain code (so they
    never call its ``jvp``). Options as ``check_jvp``."""
    require_function(function)
    if not defines_jvp(function):
        raise GradcheckError(f"function: expected a Function that defines jvp (forward-mode AD), "
                             f"got {function.__qualname__} without one")
    if not isinstance(inputs, (tuple, list)):
        raise GradcheckError(f"inputs: expected a tuple of inputs (tensors and other arguments), got {type(inputs).__name__}")
    count = len(inputs)

    def apply_jvp(*values: Any) -> tuple[Tensor | None, ...]:
        primals, tangents = values[:count], values[count:]
        with fwAD.dual_level():
            # the ignores below: torch's make_dual, Function.apply and unpack_dual have no annotations
            duals = [fwAD.make_dual(x, t) if t is not None else x for x, t in zip(primals, tangents)]  # type: ignore[no-untyped-call]
            out = function.apply(*duals)  # type: ignore[no-untyped-call]
            return tuple(fwAD.unpack_dual(o).tangent for o in floating_outputs(out))  # type: ignore[no-untyped-call]

    apply_jvp.__name__ = f"{function.__qualname__}.jvp"
    label = options.pop("label", None)
    report = check_jvp(forward_body(function), apply_jvp, inputs, label=label or apply_jvp.__name__, **options)
    if not report.ok:
        args = validate_inputs(inputs, options.get("names"))
        ts = _tangents(args, options.get("tangents"), seed=options.get("seed", 0), exact=options.get("exact", False))
        report.reproducer = _replay("check_function_jvp", [("F", function)], args.values, args.names, ts,
                                    {"exact": options.get("exact") or None, "label": label})
    return report
