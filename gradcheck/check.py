"""The public checks: ``check_vjp`` → ``Report``, ``assert_vjp``, ``verify``, ``check_function``,
``verify_function``.

Order of a check: validate what the caller gave (a mistake there is a ``GradcheckError``, never a
traceback from inside the harness); call the hand-written VJP once under the running error model
(``gradcheck.rounding``) and judge its output's structure under the raw or the engine contract
(``gradcheck.contracts``); make sure it left its inputs and cotangents alone and answers the same
twice; then compare values with each oracle under the bound derived from the traced computations
(``gradcheck.compare``), whatever the structural verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from gradcheck.arguments import Arguments, call_forward, flatten_outputs, floating_outputs, name_of, output_tensors, validate_inputs
from gradcheck.compare import element_comparison, probe_comparison
from gradcheck.contracts import CONTRACTS, as_tuple, check_structure, count_problem, normalized_error
from gradcheck.devices import full_precision
from gradcheck.errors import GradcheckError, GradientMismatch
from gradcheck.functions import forward_body, raw_backward, require_function
from gradcheck.oracles import (
    OracleUnavailable,
    Reference,
    TracedForward,
    autograd_forward,
    autograd_reference,
    finite_difference_probes,
    nudged_references,
    traced_vjp,
    upcast,
)
from gradcheck.replay import reproducer
from gradcheck.report import ORACLES, Comparison, Problem, Report
from gradcheck.rounding import RunningError, all_finite
from gradcheck.snapshot import Snapshot
from gradcheck.strategies import cotangents as cotangent_strategy
from gradcheck.tolerance import differentiable_dtype, failure_probability, reference_dtype

Tensor = torch.Tensor
F64 = torch.float64
COTANGENT_SEED_SALT = 0x6A09E667  # the cotangent is not drawn from the stream a user's own seed-0 inputs came from
UNTRACED_MARGIN = 16.0  # a VJP the error model cannot see into is allowed 16× autograd's own traced rounding
DETERMINISM_MAX_ELEMENTS = 1 << 16
EXACT_COTANGENT_VALUES = (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0)
COMPLEX_CONVENTION = ("complex inputs are judged under PyTorch's convention: G stands for the real loss L = Re⟨G, f(x)⟩ "
                      "and a gradient is ∂L/∂Re x + i·∂L/∂Im x; for C = A·B that is dA = G·Bᴴ, dB = Aᴴ·G (conjugate "
                      "transposes where a rule for real inputs has Bᵀ, Aᵀ)")

__all__ = ["GradcheckError", "GradientMismatch", "assert_vjp", "check_function", "check_vjp", "verify", "verify_function"]


# ---- cotangents -------------------------------------------------------------------------------------

def _draw_cotangent(out: Tensor, generator: torch.Generator, exact: bool) -> Tensor:
    shape = (*out.shape, 2) if out.is_complex() else tuple(out.shape)  # a complex one: both parts drawn
    if exact:
        choices = torch.tensor(EXACT_COTANGENT_VALUES, dtype=F64)
        drawn = choices[torch.randint(len(choices), shape, generator=generator)]
    else:  # normal values drawn in float32 (six times cheaper than in float64 at large sizes), exact in any wider dtype
        drawn = torch.randn(shape, generator=generator, dtype=torch.float32).to(F64)
    drawn = torch.view_as_complex(drawn) if out.is_complex() else drawn
    return drawn.to(dtype=out.dtype, device=out.device)


def _cotangents(outs: Sequence[Tensor], given_: Any, *, exact: bool, seed: int) -> tuple[Tensor | None, ...]:
    """One cotangent per output (None for an output neither floating nor complex): the caller's,
    checked, or drawn — never all ones, which would hide a backward that ignores it."""
    floating = [differentiable_dtype(o.dtype) for o in outs]
    if given_ is None:
        generator = torch.Generator().manual_seed(seed ^ COTANGENT_SEED_SALT)
        return tuple(_draw_cotangent(o, generator, exact) if fl else None for o, fl in zip(outs, floating))
    given_ = (given_,) if isinstance(given_, Tensor) or given_ is None else tuple(given_)
    if len(given_) != len(outs):
        raise GradcheckError(f"cotangent: expected {len(outs)} (one per output of f), got {len(given_)}")
    checked: list[Tensor | None] = []
    for k, (o, g) in enumerate(zip(outs, given_)):
        where = "cotangent" if len(outs) == 1 else f"cotangent {k}"
        if not differentiable_dtype(o.dtype):
            checked.append(None)
            continue
        if not isinstance(g, Tensor):
            raise GradcheckError(f"{where}: expected a torch.Tensor, got {type(g).__name__}")
        if g.shape != o.shape or g.dtype != o.dtype or g.device != o.device:
            raise GradcheckError(f"{where}: expected shape {tuple(o.shape)}, {o.dtype} on {o.device} (like f's output), "
                                 f"got shape {tuple(g.shape)}, {g.dtype} on {g.device}")
        if not bool(torch.isfinite(g).all()):
            raise GradcheckError(f"{where}: expected finite values, got NaN or inf")
        checked.append(g.detach())
    return tuple(checked)


def _require_exact(args: Arguments, cotangents: Sequence[Tensor | None]) -> None:
    named = [*zip(args.diff_names, args.tensors), *((f"cotangent {k}", g) for k, g in enumerate(cotangents) if g is not None)]
    for name, t in named:
        t = torch.view_as_real(t.resolve_conj()) if t.is_complex() else t  # Gaussian integers: both parts
        if not torch.equal(t, t.round()):
            raise GradcheckError(f"{name}: exact mode expects integer values, got non-integers")


# ---- the public checks ------------------------------------------------------------------------------

def check_vjp(
    f: Callable[..., Any],
    vjp: Callable[..., Any],
    inputs: Sequence[Any],
    *,
    cotangent: Tensor | Sequence[Tensor | None] | None = None,
    names: Sequence[str] | None = None,
    exact: bool = False,
    oracles: Sequence[str] = ORACLES,
    reference: Callable[..., Any] | None = None,
    seed: int = 0,
    label: str | None = None,
    probabilistic: float | None = None,
    contract: str = "raw",
) -> Report:
    """Check ``vjp(*inputs, *cotangents)`` — one gradient per input, ``None`` for inputs that are not
    floating-point or complex tensors (and where an input needs none) — against reverse-mode autograd
    on ``f`` and central finite differences of ``f``, for every floating or complex input. Complex
    inputs follow PyTorch's convention (``C = A·B``: ``dA = G·Bᴴ``, ``dB = Aᴴ·G``; ``gradcheck.oracles``).

    No error analysis is asked of the caller: the VJP runs under the running error model, which
    bounds its rounding op by op from the values it computes, and the oracles are traced the same
    way. ``inputs`` may hold non-tensor arguments (floats, ints, ``None``, integer targets), passed
    through as given. ``f`` may return a tuple: one cotangent per output. ``cotangent``: the ``G`` to
    use (a tuple for several outputs); by default drawn (normal values; nonzero integers in exact
    mode), never all ones. ``exact``: integer-valued inputs and cotangents, so the matmul family is
    computed without rounding in any dtype while partial sums stay within its integers; the answers
    must then agree bit for bit wherever the model sees exact arithmetic. ``reference``: the function
    the oracles differentiate, when it is not ``f`` itself. ``oracles``: which to run.
    ``probabilistic``: λ for Higham & Mary's probabilistic bound on long float64 reductions (opt-in;
    named in the report with its failure probability). ``contract``: ``"raw"`` (exact shape and
    dtype) or ``"engine"`` (what autograd accepts after ``sum_to`` and a cast; deviations are warnings).
    """
    if not callable(f):
        raise GradcheckError(f"f: expected a callable, got {type(f).__name__}")
    if not callable(vjp):
        raise GradcheckError(f"vjp: expected a callable, got {type(vjp).__name__}")
    if isinstance(oracles, str) or not oracles or set(oracles) - set(ORACLES):
        raise GradcheckError(f"oracles: expected a non-empty sequence of names from {ORACLES}, got {oracles!r}")
    if contract not in CONTRACTS:
        raise GradcheckError(f"contract: expected one of {CONTRACTS}, got {contract!r}")
    args = validate_inputs(inputs, names)
    forward = _autograd_forward_first(f, args, exact, probabilistic) if reference is None and "autograd" in oracles else None
    outs = (forward_outputs(forward) if forward is not None else None) or call_forward(f, args.values)
    Gs = _cotangents(outs, cotangent, exact=exact, seed=seed)
    if exact:
        _require_exact(args, Gs)
    first = args.tensors[0]
    report = Report(
        function=label or name_of(f), input_names=args.names,
        shapes=tuple(tuple(v.shape) if isinstance(v, Tensor) else () for v in args.values),
        dtype=str(first.dtype).removeprefix("torch."), device=str(first.device), exact=exact,
    )
    known_outs = [outs] if reference is None else []  # handed over, not held here: freed once judged finite
    del outs
    with full_precision():
        _run_checks(report, vjp, reference or f, args, Gs, exact=exact, oracles=tuple(oracles), seed=seed,
                    probabilistic=probabilistic, contract=contract, outs=known_outs, forward=forward)
    if probabilistic is not None:
        report.notes.append(f"probabilistic bound (Higham & Mary), λ = {probabilistic:g}: each bound may fail with "
                            f"probability ≤ {failure_probability(probabilistic, F64):.2g}")
    if not report.ok:
        report.reproducer = _replay(f, vjp, args, Gs, exact=exact, contract=contract, label=label)
    return report


def forward_outputs(forward: TracedForward) -> tuple[Tensor, ...] | None:
    """What f returned in the traced forward, detached — None unless tensors, some of them floating."""
    outs = output_tensors(forward.result)
    if not outs or not all(isinstance(o, Tensor) for o in outs) or not floating_outputs(forward.result):
        return None
    return tuple(o.detach() for o in outs)


def _autograd_forward_first(f: Callable[..., Any], args: Arguments, exact: bool, probabilistic: float | None) -> TracedForward | None:
    """For inputs already in float64 (complex128), the autograd oracle's traced forward doubles as the
    forward that tells the outputs' shapes: f runs once where it ran twice. None where that does not
    apply — other dtypes, or an f that fails, returns no floating tensors, or is not differentiable
    there (the plain forward then says what is wrong, or the oracle later does)."""
    if not all(t.dtype == reference_dtype(t.dtype) for t in args.tensors):
        return None
    try:
        with full_precision():
            forward = autograd_forward(lambda *ts: f(*args.with_tensors(ts)), upcast(args.tensors, copy=False),
                                       exact=exact, probabilistic=probabilistic, flatten=flatten_outputs)
        if forward_outputs(forward) is None or not isinstance(forward.output, Tensor) or not forward.output.requires_grad:
            return None
    except Exception:  # noqa: BLE001 - reported by the plain forward that follows, as it always was
        return None
    return forward


def _replay(f: Callable[..., Any], vjp: Callable[..., Any], args: Arguments, Gs: Sequence[Tensor | None], *, exact: bool, contract: str,
            label: str | None) -> str:
    function = getattr(f, "__self__", None)
    options = {"exact": exact or None, "label": label}
    if function is not None and isinstance(function, type) and issubclass(function, torch.autograd.Function):
        options["strict"] = True if contract == "raw" else None
        return reproducer("check_function", [("F", function)], args.values, args.names, Gs, options)
    options["contract"] = contract if contract != "raw" else None
    return reproducer("check_vjp", [("f", f), ("vjp", vjp)], args.values, args.names, Gs, options)


def _call_vjp(vjp: Callable[..., Any], values: Sequence[Any], cotangents: Sequence[Any], mode: RunningError | None) -> tuple[Any, str | None]:
    """Call the VJP in the caller's grad mode (a VJP may differentiate inside), traced when ``mode`` is given."""
    try:
        if mode is None:
            return vjp(*values, *cotangents), None
        with mode:
            return vjp(*values, *cotangents), None
    except Exception as exc:  # a raising backward is a finding about the backward, not a harness crash
        return None, f"{type(exc).__name__}: {exc}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return (a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.nan_to_num(), b.nan_to_num()))
                and bool(torch.equal(a.isnan(), b.isnan())))
    return (a is None and b is None) or (not isinstance(a, Tensor) and not isinstance(b, Tensor))


def _clone(v: Any) -> Any:
    return v.clone() if isinstance(v, Tensor) else v


def _run_checks(report: Report, vjp: Callable[..., Any], reference: Callable[..., Any], args: Arguments, Gs: Sequence[Tensor | None], *,
                exact: bool, oracles: Sequence[str], seed: int, probabilistic: float | None, contract: str,
                outs: list[tuple[Tensor, ...]] | None = None, forward: TracedForward | None = None) -> None:
    # what the inputs and cotangents held (copies, never handed to user code; fingerprints when large)
    snapshots = [Snapshot.of(v) if isinstance(v, Tensor) else None for v in args.values]
    G_snapshots = [Snapshot.of(g) if g is not None else None for g in Gs]
    versions = [t._version for t in args.tensors]  # an in-place write bumps them, even one that restores the values
    mode = RunningError(exact=exact, probabilistic=probabilistic)
    mode.watch(*args.tensors, *(g for g in Gs if g is not None))
    grads, raised = _call_vjp(vjp, args.values, Gs, mode)
    if raised is not None:
        report.problems.append(Problem("raised", "the vjp to return gradients", raised))
        return
    mutated = [i for i, (v, snap) in enumerate(zip(args.values, snapshots)) if snap is not None and not snap.unchanged(v)]
    report.problems += [Problem("mutated", "inputs left unchanged", "modified in place", i, args.names[i]) for i in mutated]
    cotangent_mutated = any(snap is not None and g is not None and not snap.unchanged(g) for g, snap in zip(Gs, G_snapshots))
    if cotangent_mutated:
        report.problems.append(Problem("mutated", "the cotangent left unchanged", "modified in place"))
    # what they held: the copies, or — fingerprinted and found unchanged — the tensors themselves
    originals = [v if snap is None or (snap.copy is None and i not in mutated) else snap.copy
                 for i, (v, snap) in enumerate(zip(args.values, snapshots))]
    original_Gs = [g if snap is None or (snap.copy is None and not cotangent_mutated) else snap.copy for g, snap in zip(Gs, G_snapshots)]
    copies_kept = all(snap is None or snap.copy is not None for snap in (*snapshots, *G_snapshots))
    written = bool(mutated) or any(t._version != v for t, v in zip(args.tensors, versions))
    del snapshots, G_snapshots
    wrong_count = count_problem(grads, args)
    if wrong_count is not None:
        report.problems.append(wrong_count)
        return
    grads = as_tuple(grads, args)
    structure = check_structure(grads, args, contract)
    report.problems += structure.failures
    report.warnings += structure.warnings
    # Determinism: two plain calls (no mode) on fresh copies, compared with each other — not with the
    # traced call, since torch may take another kernel path when a dispatch mode is active (a batched
    # matmul folded differently rounds differently). Past DETERMINISM_MAX_ELEMENTS two more full
    # backwards would dominate the cost of the check.
    lost = (bool(mutated) or cotangent_mutated) and not copies_kept  # written into, and too large to have been copied
    if lost:
        pass  # the check has failed already (the inputs were modified); nothing left to call the vjp on again
    elif sum(t.numel() for t in args.tensors) > DETERMINISM_MAX_ELEMENTS:
        report.notes.append(f"determinism not checked (two more calls) above {DETERMINISM_MAX_ELEMENTS} input elements")
    else:
        calls = [_call_vjp(vjp, [_clone(o) for o in originals], [_clone(g) for g in original_Gs], None) for _ in range(2)]
        raised_again = next((r for _, r in calls if r is not None), None)
        if raised_again is not None:
            report.problems.append(Problem("nondeterministic", "the same result from every call",
                                           f"a call without the error model raised {raised_again}"))
        elif all(isinstance(c, (tuple, list, Tensor)) and count_problem(c, args) is None for c, _ in calls):
            first, again = (as_tuple(c, args) for c, _ in calls)
            for i, (a, b) in enumerate(zip(first, again)):
                if i in args.diff and i not in structure.unusable and not _same(a, b):
                    report.problems.append(Problem("nondeterministic", "the same gradient from two calls", "different values",
                                                   i, args.names[i]))
    if mode.overflows:
        report.problems.append(Problem("overflow", f"the vjp's arithmetic to stay within {args.tensors[0].dtype}'s range",
                                       "; ".join(mode.overflows[:3])))
    # the oracles see the values as they were: the copies where the vjp wrote into them, else the
    # tensors themselves (the copies freed: they would double what a large check holds)
    if lost:
        report.notes.append("values not compared: the vjp wrote into its inputs, which were too large to keep copies of")
        return
    values = tuple(originals) if mutated else args.values
    frozen = Arguments(values, args.names, args.diff)
    oracle_Gs = original_Gs if cotangent_mutated else Gs
    del originals, original_Gs
    _compare_values(report, reference, frozen, grads, structure.grads, oracle_Gs, mode, exact=exact, oracles=oracles,
                    seed=seed, probabilistic=probabilistic, outs=outs,
                    forward=None if written else forward)  # built on the inputs' memory: not if the vjp wrote there


def _manual_errors(report: Report, reference: Callable[..., Any], args: Arguments, raw: Sequence[Any], normalized: dict[int, Tensor | None],
                   Gs: Sequence[Tensor | None], mode: RunningError) -> dict[int, Tensor]:
    """The bound on each hand-written gradient's own rounding, traced from its run; for a VJP the
    mode could not see into, the model of autograd's VJP in the same dtype with a margin, said so."""
    errors: dict[int, Tensor] = {}
    untraced = []
    for i, g in normalized.items():
        x = args.values[i]
        if g is None:
            errors[i] = torch.zeros(x.shape, dtype=F64, device=x.device)
            continue
        e = mode.error(raw[i])
        if e is None:
            untraced.append(i)
            continue
        errors[i] = normalized_error(e.reshape(raw[i].shape), raw[i], x.shape)
    if untraced:
        names = ", ".join(args.names[i] for i in untraced)
        try:
            _, fallback = traced_vjp(args.flat(reference), args.tensors, flatten_outputs(Gs))
            for i in untraced:
                errors[i] = UNTRACED_MARGIN * fallback[args.diff.index(i)].to(args.values[i].device)
            report.notes.append(f"the vjp's arithmetic was not visible to the error model for {names} (numpy or a "
                                f"compiled kernel?): bounded by autograd's own VJP in {args.tensors[0].dtype} × {UNTRACED_MARGIN:g}")
        except Exception as exc:  # noqa: BLE001 - no autograd either: only the oracles' own error remains
            for i in untraced:
                errors[i] = torch.zeros(args.values[i].shape, dtype=F64)
            report.notes.append(f"the vjp's arithmetic was not visible to the error model for {names}, and autograd "
                                f"cannot model it ({type(exc).__name__}): its rounding is not allowed for")
    if mode.fallbacks:
        report.notes.append("ops without an error rule in the vjp: " + "; ".join(f"{k}: {v}" for k, v in mode.fallbacks.items()))
    return errors


def _compare_values(report: Report, reference: Callable[..., Any], args: Arguments, raw: Sequence[Any], normalized: dict[int, Tensor | None],
                    Gs: Sequence[Tensor | None], mode: RunningError, *, exact: bool, oracles: Sequence[str], seed: int,
                    probabilistic: float | None, outs: list[tuple[Tensor, ...]] | None = None,
                    forward: TracedForward | None = None) -> None:
    """``outs``: [f's outputs at the inputs], when f is the reference (in float64 already, they are its
    outputs at the upcast inputs: not computed again); taken out of the list, so that they are freed."""
    flat = args.flat(reference)
    # the inputs as they were (the oracles read them, never write); the traced forward's own when it ran first
    xs = tuple(leaf.detach() for leaf in forward.leaves) if forward is not None else upcast(args.tensors, copy=False)
    G64 = flatten_outputs(tuple(g.detach().to(reference_dtype(g.dtype)) for g in Gs if g is not None))
    if outs and all(t.dtype == reference_dtype(t.dtype) for t in args.tensors):
        out64 = outs.pop()
    else:
        if outs:
            outs.clear()
        out64 = call_forward(reference, args.with_tensors(xs), "the reference forward on float64 copies of the inputs")
    if any(not all_finite(o) for o in out64 if differentiable_dtype(o.dtype)):
        flat_out = flatten_outputs(out64).reshape(-1)
        where = int((~torch.isfinite(flat_out)).nonzero()[0, 0])
        report.problems.append(Problem("overflow", "f finite at these inputs (in float64)",
                                       f"{flat_out.reshape(-1)[where].item()} at flattened output index {where}"))
        return
    del out64
    errors = _manual_errors(report, reference, args, raw, normalized, Gs, mode)
    manual = {i: (torch.zeros_like(args.values[i]) if g is None else g) for i, g in normalized.items()}
    if "autograd" in oracles:
        try:
            ref = autograd_reference(flat, xs, G64, exact=exact, probabilistic=probabilistic, forward=forward)
        except OracleUnavailable as exc:
            report.notes.append(f"autograd oracle unavailable: {exc}")
        else:
            _autograd_comparisons(report, flat, args, manual, errors, ref, xs, G64, exact=exact, seed=seed)
            del ref  # its gradients and bounds: not held through the finite differences
    if "finite_differences" in oracles:
        _finite_difference_comparisons(report, flat, args, manual, errors, xs, G64, exact=exact, seed=seed)
    for i, g in normalized.items():
        if g is None and any(not c.ok for c in report.comparisons if c.input_index == i):
            report.problems.append(Problem("missing", "a gradient (the oracles' is not zero)", "None", i, args.names[i]))
    if any(x.is_complex() for x in args.tensors) and not all(c.ok for c in report.comparisons):
        report.notes.append(COMPLEX_CONVENTION)


def _autograd_comparisons(report: Report, flat: Callable[..., Tensor], args: Arguments, manual: dict[int, Tensor], errors: dict[int, Tensor],
                          ref: Reference, xs: Sequence[Tensor], G64: Tensor, *, exact: bool, seed: int) -> None:
    if ref.fallbacks:
        report.notes.append("ops without an error rule in f: " + "; ".join(f"{k}: {v}" for k, v in ref.fallbacks.items()))
    nudged: list[tuple[Tensor, ...]] | None = None
    for k, i in enumerate(args.diff):
        if i not in manual:
            continue
        expected = ref.grads[k].to(manual[i].device)
        bound = errors[i].to(F64).to(expected.device) + ref.errors[k].to(expected.device)
        c = element_comparison(i, args.names[i], "autograd", exact, manual[i], expected, bound)
        if ref.kinks and not c.ok:
            # At a kink any one-sided derivative is right: elements within the hull of the gradients
            # just beside the point are excused, the others still judged.
            nudged = nudged if nudged is not None else nudged_references(flat, xs, G64, torch.Generator().manual_seed(seed))
            c = _kink_comparison(c, i, args.names[i], exact, manual[i], expected, [n[k] for n in nudged], bound, ref.kinks)
        if not c.ok and expected.is_complex() and element_comparison(i, "", "", exact, manual[i].conj(), expected, bound).ok:
            report.notes.append(f"input {i} ({args.names[i]}): the gradient is the complex conjugate of PyTorch's "
                                "(JAX's convention, or one conjugation too many or too few)")
        report.comparisons.append(c)


def _kink_comparison(c: Comparison, i: int | None, name: str, exact: bool, manual: Tensor, expected: Tensor, beside: Sequence[Tensor],
                     bound: Tensor, kinks: Sequence[str]) -> Comparison:
    m = manual.detach().to(expected.dtype).reshape(expected.shape)
    parts = (lambda t: torch.view_as_real(t.resolve_conj())) if expected.is_complex() else (lambda t: t)  # noqa: E731
    part_bound = bound.unsqueeze(-1) if expected.is_complex() else bound  # a complex element: each part within the hull
    sides = torch.stack([parts(expected), *(parts(b) for b in beside)])
    low, high = sides.min(dim=0).values - part_bound, sides.max(dim=0).values + part_bound
    excused = (parts(m) >= low) & (parts(m) <= high)
    excused = excused.all(dim=-1) if expected.is_complex() else excused
    again = element_comparison(i, name, "autograd", exact, torch.where(excused, expected, m), expected, bound)
    if again.ok:
        return replace(c, inconclusive=f"f is not differentiable at this point ({', '.join(kinks)} decided at its "
                                       f"boundary); {int(excused.sum())} element(s) match a one-sided derivative")
    return again


def _finite_difference_comparisons(report: Report, flat: Callable[..., Tensor], args: Arguments, manual: dict[int, Tensor],
                                   errors: dict[int, Tensor], xs: Sequence[Tensor], G64: Tensor, *, exact: bool, seed: int) -> None:
    """Joint probes across every input first (one pair of evaluations checks them all); where they
    disagree, probes along each input alone say which input is wrong."""
    generator = torch.Generator().manual_seed(seed)
    movable = [i in manual for i in args.diff]
    grads = [manual.get(i) for i in args.diff]
    errs = [errors.get(i, torch.zeros(x.shape, dtype=F64)) for i, x in zip(args.diff, xs)]
    probes = finite_difference_probes(flat, xs, G64, exact=exact, generator=generator, movable=movable)
    if probes and probes[0].element is not None:  # few elements: every probe moves one element of one input
        for k, i in enumerate(args.diff):
            mine = [p for p in probes if p.element is not None and p.element[0] == k]
            if mine:
                report.comparisons.append(probe_comparison(i, args.names[i], exact, grads, errs, mine))
        return
    moving = [i for i, m in zip(args.diff, movable) if m]
    joint = probe_comparison(None, "all inputs (joint direction)", exact, grads, errs, probes)
    if len(moving) == 1:
        report.comparisons.append(replace(joint, input_index=moving[0], input_name=args.names[moving[0]]))
        return
    if joint.ok:
        report.comparisons.append(joint)
        return
    localized = [probe_comparison(i, args.names[i], exact, grads, errs,
                                  finite_difference_probes(flat, xs, G64, exact=exact, generator=generator, movable=movable, only=k))
                 for k, i in enumerate(args.diff) if movable[k]]
    report.comparisons += localized
    if all(c.ok for c in localized):
        report.comparisons.append(joint)


def assert_vjp(f: Callable[..., Any], vjp: Callable[..., Any], inputs: Sequence[Any], **options: Any) -> Report:
    """``check_vjp``, raising ``GradientMismatch`` (an ``AssertionError``) with the report when it fails."""
    report = check_vjp(f, vjp, inputs, **options)
    if not report.ok:
        raise GradientMismatch(report)
    return report


def verify(
    f: Callable[..., Any],
    vjp: Callable[..., Any],
    operands: st.SearchStrategy,
    *,
    max_examples: int | None = None,
    exact: bool = False,
    on_report: Callable[[Report], None] | None = None,
    hypothesis_settings: settings | None = None,
    **options: Any,
) -> None:
    """Run ``check_vjp`` on every input tuple hypothesis draws from ``operands`` (tensors and any
    other arguments) with drawn cotangents. On failure hypothesis shrinks to a minimal example and
    ``GradientMismatch`` is raised with its report. Examples where ``f`` or the VJP overflow the
    dtype are rejected (they say nothing about the gradient, and shrinking must not slide onto them).
    Hypothesis runs under ``hypothesis_settings`` (default: the active profile's), ``max_examples``
    overriding; ``on_report`` sees every example's report (for statistics)."""
    if not isinstance(operands, st.SearchStrategy):
        raise GradcheckError(f"operands: expected a hypothesis strategy of input tuples, got {type(operands).__name__}")
    check = options.pop("_check", check_vjp)
    active = hypothesis_settings if hypothesis_settings is not None else settings()
    chosen = settings(
        active,
        max_examples=max_examples or active.max_examples,
        deadline=None,
        report_multiple_bugs=False,
        suppress_health_check=[*active.suppress_health_check, HealthCheck.too_slow, HealthCheck.data_too_large],
    )

    def gradient_matches(data: st.DataObject) -> None:
        inputs = data.draw(operands, label="inputs")
        if not isinstance(inputs, (tuple, list)):
            raise GradcheckError(f"operands: expected the strategy to draw tuples of inputs, got {type(inputs).__name__}")
        args = validate_inputs(inputs, options.get("names"))
        outs = call_forward(f, args.values)
        Gs = tuple(data.draw(cotangent_strategy(o, exact=exact), label=f"cotangent {k}") if differentiable_dtype(o.dtype) else None
                   for k, o in enumerate(outs))
        report = check(f, vjp, args.values, cotangent=Gs, exact=exact, **options)
        if on_report is not None:
            on_report(report)
        assume(not report.overflowed)
        if not report.ok:
            raise GradientMismatch(report)

    gradient_matches._hypothesis_internal_add_digest = f"{name_of(f)}/{name_of(vjp)}/{exact}".encode()  # type: ignore[attr-defined]
    try:
        chosen(given(data=st.data())(gradient_matches))()
    except Unsatisfiable as exc:
        raise GradcheckError(f"operands: every drawn example overflowed in f or the vjp ({exc}); "
                             "draw smaller values for this dtype") from exc


# ---- torch.autograd.Function ------------------------------------------------------------------------

def check_function(function: type[torch.autograd.Function], inputs: Sequence[Any], *, strict: bool = False,
                   **options: Any) -> Report:
    """Check a ``torch.autograd.Function``: its backward's raw return value, given one gradient per
    output, against oracles that differentiate its forward as plain code (or ``reference=``).

    Under the engine contract (default) what autograd silently repairs — a gradient summed back to
    the input's shape, a dtype cast — is a warning that says what the engine did; ``strict=True``
    makes it a failure (the raw contract a manual training loop needs). Values are compared either way.
    """
    require_function(function)
    if not isinstance(inputs, (tuple, list)):
        raise GradcheckError(f"inputs: expected a tuple of inputs (tensors and other arguments), got {type(inputs).__name__}")
    options.setdefault("reference", forward_body(function))
    options.setdefault("label", function.__qualname__)
    options.setdefault("contract", "raw" if strict else "engine")
    return check_vjp(function.apply, raw_backward(function, len(inputs)), inputs, **options)


def verify_function(function: type[torch.autograd.Function], operands: st.SearchStrategy, *, strict: bool = False,
                    max_examples: int | None = None, **options: Any) -> None:
    """``verify`` for a ``torch.autograd.Function``: each drawn tuple (tensors and other arguments)
    checked as ``check_function`` does, with shrinking to a minimal failing example."""
    require_function(function)

    def checked(f: Callable[..., Any], vjp: Callable[..., Any], values: Sequence[Any], **kw: Any) -> Report:  # the signature verify calls
        return check_function(function, values, strict=strict, **kw)

    verify(function.apply, function.backward, operands, max_examples=max_examples, _check=checked, **options)
