"""Checks of hand-written VJPs: ``check_vjp`` → ``Report``, ``assert_vjp``, ``check_function``, ``verify``.

Order of a check: validate what the caller gave (a mistake there is a ``GradcheckError``, never a
traceback from inside the harness); call the hand-written VJP and look at its *raw* output — count,
type, exact shape, dtype, device — because the autograd engine would silently sum a broadcastable
wrong-shaped gradient and cast a wrong dtype; make sure it left its inputs alone and answers the same
twice; then compare values with each oracle under a floating-point error bound.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis import strategies as st

from gradcheck.compare import element_comparison, probe_comparison
from gradcheck.devices import full_precision
from gradcheck.oracles import (
    OracleUnavailable,
    Reference,
    autograd_reference,
    finite_difference_probes,
    nudged_references,
    traced_vjp,
    upcast,
)
from gradcheck.report import ORACLES, Problem, Report
from gradcheck.rounding import RunningError
from gradcheck.strategies import cotangents
from gradcheck.tolerance import failure_probability

Tensor = torch.Tensor
COTANGENT_SEED_SALT = 0x6A09E667
UNTRACED_MARGIN = 16.0  # a VJP the error model cannot see into is allowed 16× autograd's own traced rounding

EXACT_COTANGENT_VALUES = (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0)


class GradcheckError(ValueError):
    """The harness was called with something it cannot check; the message names it, expected vs got."""


class GradientMismatch(AssertionError):
    """A hand-written gradient disagrees with an oracle or is malformed; ``.report`` says where and by how much."""

    def __init__(self, report: Report) -> None:
        super().__init__(str(report))
        self.report = report


# ---- validating what the caller gave --------------------------------------------------------------

def _name_of(obj: Any) -> str:
    return getattr(obj, "__name__", None) or getattr(obj, "__qualname__", None) or type(obj).__name__


def _validate_inputs(inputs: Any, names: Sequence[str] | None) -> tuple[tuple[Tensor, ...], tuple[str, ...]]:
    if isinstance(inputs, Tensor) or not isinstance(inputs, (tuple, list)):
        raise GradcheckError(f"inputs: expected a tuple of tensors, got {type(inputs).__name__}")
    if names is None:
        names = tuple(f"input{i}" for i in range(len(inputs)))
    names = tuple(names)
    if len(names) != len(inputs):
        raise GradcheckError(f"names: expected {len(inputs)} names (one per input), got {len(names)}")
    for i, (name, t) in enumerate(zip(names, inputs)):
        where = f"input {i} ({name})"
        if not isinstance(t, Tensor):
            raise GradcheckError(f"{where}: expected a torch.Tensor, got {type(t).__name__}")
        if not t.dtype.is_floating_point:
            raise GradcheckError(f"{where}: expected a floating-point tensor (float64/32/16, bfloat16), got {t.dtype}")
    devices = {t.device for t in inputs}
    if len(devices) > 1:
        listing = ", ".join(f"{n} on {t.device}" for n, t in zip(names, inputs))
        raise GradcheckError(f"inputs: expected all on one device, got {listing}")
    dtypes = {t.dtype for t in inputs}
    if len(dtypes) > 1:
        listing = ", ".join(f"{n} {t.dtype}" for n, t in zip(names, inputs))
        raise GradcheckError(f"inputs: expected one dtype for all inputs, got {listing}")
    for i, (name, t) in enumerate(zip(names, inputs)):
        where = f"input {i} ({name})"
        if t.device.type == "meta":
            raise GradcheckError(f"{where}: expected a tensor with values, got one on the meta device")
        bad = ~torch.isfinite(t.detach())
        if bad.any():
            index = tuple(int(j) for j in bad.nonzero()[0])
            raise GradcheckError(f"{where}: expected finite values, got {t[index].item()} at index {index}")
    return tuple(t.detach() for t in inputs), names


def _call_forward(f: Callable[..., Tensor], inputs: Sequence[Tensor], what: str = "f") -> Tensor:
    try:
        with torch.no_grad():
            out = f(*inputs)
    except Exception as exc:  # the user's function failing is their mistake, reported as such
        raise GradcheckError(f"{what} ({_name_of(f)}) raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, Tensor):
        raise GradcheckError(f"{what} ({_name_of(f)}): expected to return a torch.Tensor, got {type(out).__name__}")
    if not out.dtype.is_floating_point:
        raise GradcheckError(f"{what} ({_name_of(f)}): expected a floating-point output, got {out.dtype}")
    return out


def _cotangent(out: Tensor, given_: Tensor | None, *, exact: bool, seed: int) -> Tensor:
    if given_ is not None:
        if not isinstance(given_, Tensor):
            raise GradcheckError(f"cotangent: expected a torch.Tensor, got {type(given_).__name__}")
        if given_.shape != out.shape or given_.dtype != out.dtype or given_.device != out.device:
            raise GradcheckError(
                f"cotangent: expected shape {tuple(out.shape)}, {out.dtype} on {out.device} (like f's output), "
                f"got shape {tuple(given_.shape)}, {given_.dtype} on {given_.device}"
            )
        if not torch.isfinite(given_).all():
            raise GradcheckError("cotangent: expected finite values, got NaN or inf")
        return given_.detach()
    generator = torch.Generator().manual_seed(seed ^ COTANGENT_SEED_SALT)  # not the stream a user's own seed-0 inputs came from
    if exact:
        choices = torch.tensor(EXACT_COTANGENT_VALUES, dtype=torch.float64)
        drawn = choices[torch.randint(len(choices), tuple(out.shape), generator=generator)]
    else:
        drawn = torch.randn(tuple(out.shape), generator=generator, dtype=torch.float64)
    return drawn.to(dtype=out.dtype, device=out.device)


def _require_exact(inputs: Sequence[Tensor], names: Sequence[str], cotangent: Tensor) -> None:
    for name, t in [*zip(names, inputs), ("cotangent", cotangent)]:
        if not torch.equal(t, t.round()):
            raise GradcheckError(f"{name}: exact mode expects integer values, got non-integers")


# ---- the raw output of the hand-written VJP -------------------------------------------------------

def _call_vjp(vjp: Callable[..., Any], inputs: Sequence[Tensor], cotangent: Tensor,
              mode: RunningError | None) -> tuple[Any, str | None]:
    """Call the VJP in the caller's grad mode (a VJP may differentiate inside), traced when ``mode`` is given."""
    try:
        if mode is None:
            return vjp(*inputs, cotangent), None
        with mode:
            return vjp(*inputs, cotangent), None
    except Exception as exc:  # a raising backward is a finding about the backward, not a harness crash
        return None, f"{type(exc).__name__}: {exc}"


def _structure_problems(grads: Any, inputs: Sequence[Tensor], names: Sequence[str]) -> list[Problem]:
    if not isinstance(grads, (tuple, list)):
        return [Problem("count", f"a tuple of {len(inputs)} gradients (one per input)", f"a {type(grads).__name__}")]
    if len(grads) != len(inputs):
        return [Problem("count", f"{len(inputs)} gradients (one per input: {', '.join(names)})", f"{len(grads)}")]
    problems = []
    for i, (name, g, x) in enumerate(zip(names, grads, inputs)):
        if g is None:
            continue
        if not isinstance(g, Tensor):
            problems.append(Problem("type", "a torch.Tensor or None", type(g).__module__ + "." + type(g).__qualname__, i, name))
            continue
        for check, want, got in (("shape", tuple(x.shape), tuple(g.shape)), ("dtype", x.dtype, g.dtype), ("device", x.device, g.device)):
            if want != got:
                problems.append(Problem(check, f"{want} (as the input)", f"{got}", i, name))
    return problems


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.nan_to_num(), b.nan_to_num())) and bool(
            torch.equal(a.isnan(), b.isnan())
        )
    return a is None and b is None


# ---- the public checks ----------------------------------------------------------------------------

def check_vjp(
    f: Callable[..., Tensor],
    vjp: Callable[..., Any],
    inputs: Sequence[Tensor],
    *,
    cotangent: Tensor | None = None,
    names: Sequence[str] | None = None,
    exact: bool = False,
    oracles: Sequence[str] = ORACLES,
    reference: Callable[..., Tensor] | None = None,
    seed: int = 0,
    label: str | None = None,
    probabilistic: float | None = None,
) -> Report:
    """Check ``vjp(*inputs, G)`` — one gradient per input, None where an input needs none — against
    reverse-mode autograd on ``f`` and central finite differences of ``f``, for every input.

    No error analysis is asked of the caller: the VJP runs under the running error model
    (``gradcheck.rounding``), which bounds its rounding op by op from the values it computes, and
    the oracles are traced the same way. ``cotangent``: the ``G`` to use; by default one is drawn
    (normal values; nonzero integers in exact mode), never all ones, which would hide a backward
    that ignores it. ``exact``: inputs and cotangent are integer-valued, so the matmul family is
    computed without rounding in any dtype while partial sums stay within its integers, and the
    answers must agree bit for bit wherever the model sees exact arithmetic. ``reference``: the
    function the oracles differentiate, when it is not ``f`` itself. ``oracles``: which to run.
    ``probabilistic``: λ for Higham & Mary's probabilistic bound on long float64 reductions (opt-in,
    more power, a stated failure probability per value; named in the report).
    """
    if not callable(f):
        raise GradcheckError(f"f: expected a callable, got {type(f).__name__}")
    if not callable(vjp):
        raise GradcheckError(f"vjp: expected a callable, got {type(vjp).__name__}")
    unknown = set(oracles) - set(ORACLES)
    if isinstance(oracles, str) or unknown or not oracles:
        raise GradcheckError(f"oracles: expected a non-empty sequence of names from {ORACLES}, got {oracles!r}")
    inputs, names = _validate_inputs(inputs, names)
    reference = reference or f
    out = _call_forward(f, inputs)
    G = _cotangent(out, cotangent, exact=exact, seed=seed)
    if exact:
        _require_exact(inputs, names, G)
    dtype = inputs[0].dtype if inputs else out.dtype
    report = Report(
        function=label or _name_of(f), input_names=names, shapes=tuple(tuple(t.shape) for t in inputs),
        dtype=str(dtype).removeprefix("torch."), device=str(out.device), exact=exact,
    )
    with full_precision():
        _run_checks(report, vjp, reference, inputs, names, G, exact=exact, oracles=tuple(oracles), seed=seed,
                    probabilistic=probabilistic)
    if probabilistic is not None:
        report.notes.append(f"probabilistic bound (Higham & Mary), λ = {probabilistic:g}: each bound may fail with "
                            f"probability ≤ {failure_probability(probabilistic, torch.float64):.2g}")
    if not report.ok:
        report.reproducer = reproducer(f, vjp, inputs, G, names, exact)
    return report


def _run_checks(report: Report, vjp, reference, inputs, names, G, *, exact, oracles, seed, probabilistic) -> None:
    originals, original_G = [t.clone() for t in inputs], G.clone()  # never handed to user code
    mode = RunningError(exact=exact, probabilistic=probabilistic)
    mode.watch(*inputs, G)
    grads, raised = _call_vjp(vjp, inputs, G, mode)
    if raised is not None:
        report.problems.append(Problem("raised", "the vjp to return gradients", raised))
        return
    mutated = [i for i, (t, o) in enumerate(zip(inputs, originals)) if not torch.equal(t, o)]
    report.problems += [Problem("mutated", "inputs left unchanged", "modified in place", i, names[i]) for i in mutated]
    if not torch.equal(G, original_G):
        report.problems.append(Problem("mutated", "the cotangent left unchanged", "modified in place"))
    report.problems += _structure_problems(grads, inputs, names)
    if any(p.check == "count" for p in report.problems):
        return
    malformed = {p.input_index for p in report.problems if p.check in ("type", "shape", "dtype", "device")}
    # Called again on fresh copies when the first call changed what it was given.
    again_inputs = [o.clone() for o in originals] if mutated else inputs
    again, raised_again = _call_vjp(vjp, again_inputs, original_G.clone(), None)
    if raised_again is not None:
        report.problems.append(Problem("nondeterministic", "the same result from two calls", f"the second call raised {raised_again}"))
    elif isinstance(again, (tuple, list)) and len(again) == len(grads):
        for i, (a, b) in enumerate(zip(grads, again)):
            if i not in malformed and not _same(a, b):
                report.problems.append(Problem("nondeterministic", "the same gradient from two calls", "different values", i, names[i]))
    if mode.overflows:
        report.problems.append(Problem("overflow", f"the vjp's arithmetic to stay within {inputs[0].dtype}'s range",
                                       "; ".join(mode.overflows[:3])))
    _compare_values(report, reference, originals, names, grads, original_G, malformed, mode, exact=exact, oracles=oracles,
                    seed=seed, probabilistic=probabilistic)


def _manual_errors(report: Report, reference, inputs, grads, G, mode: RunningError, malformed) -> list[Tensor]:
    """The bound on each hand-written gradient's own rounding, traced from its run; for a VJP the
    mode could not see into, the model of autograd's VJP in the same dtype with a margin, said so."""
    errors: list[Tensor | None] = []
    for i, (x, g) in enumerate(zip(inputs, grads)):
        e = None
        if isinstance(g, Tensor) and i not in malformed:
            e = mode.error(g)
            if e is not None:
                e = e.reshape(g.shape) if e.numel() == g.numel() else e
        errors.append(e if g is not None else torch.zeros(x.shape, dtype=torch.float64))
    untraced = [i for i, (g, e) in enumerate(zip(grads, errors)) if e is None and isinstance(g, Tensor) and i not in malformed]
    if untraced:
        try:
            _, fallback = traced_vjp(reference, inputs, G)
            for i in untraced:
                errors[i] = UNTRACED_MARGIN * fallback[i]
            report.notes.append(
                f"the vjp's arithmetic was not visible to the error model for {', '.join(report.input_names[i] for i in untraced)} "
                f"(numpy or a compiled kernel?): bounded by autograd's own VJP in {inputs[0].dtype} × {UNTRACED_MARGIN:g}")
        except Exception as exc:  # noqa: BLE001 - no autograd either: only the oracles' own error remains
            for i in untraced:
                errors[i] = torch.zeros(inputs[i].shape, dtype=torch.float64)
            report.notes.append(f"the vjp's arithmetic was not visible to the error model and autograd cannot model it "
                                f"({type(exc).__name__}): its rounding is not allowed for")
    if mode.fallbacks:
        report.notes.append("ops without an error rule in the vjp: " + "; ".join(f"{k}: {v}" for k, v in mode.fallbacks.items()))
    return [e if e is not None else torch.zeros(x.shape, dtype=torch.float64) for e, x in zip(errors, inputs)]


def _compare_values(report, reference, inputs, names, grads, G, malformed, mode, *, exact, oracles, seed, probabilistic) -> None:
    xs, G64 = upcast(inputs), G.detach().to(torch.float64)
    _call_forward(reference, xs, "the reference forward on float64 copies of the inputs")
    manual = [torch.zeros_like(x) if g is None or i in malformed else g for i, (x, g) in enumerate(zip(inputs, grads))]
    errors = _manual_errors(report, reference, inputs, grads, G, mode, malformed)
    ref: Reference | None = None
    if "autograd" in oracles:
        try:
            ref = autograd_reference(reference, xs, G64, exact=exact, probabilistic=probabilistic)
        except OracleUnavailable as exc:
            report.notes.append(f"autograd oracle unavailable: {exc}")
    if ref is not None:
        bad = ~torch.isfinite(ref.output)
        if bool(bad.any()):
            where = tuple(int(j) for j in bad.nonzero()[0]) if ref.output.ndim else ()
            report.problems.append(Problem("overflow", "f finite at these inputs (in float64)",
                                           f"{float(ref.output[where])} at output index {where}"))
            return
        if ref.fallbacks:
            report.notes.append("ops without an error rule in f: " + "; ".join(f"{k}: {v}" for k, v in ref.fallbacks.items()))
        nudged: list[tuple[Tensor, ...]] | None = None
        for i, (name, m) in enumerate(zip(names, manual)):
            if i in malformed:
                continue
            bound = errors[i].to(torch.float64) + ref.errors[i]
            c = element_comparison(i, name, "autograd", exact, m, ref.grads[i], bound)
            if ref.kinks and not c.ok:
                # At a kink any one-sided derivative is right: elements within the hull of the
                # gradients just beside the point are excused, the others still judged.
                nudged = nudged if nudged is not None else nudged_references(reference, xs, G64, torch.Generator().manual_seed(seed))
                c = _kink_comparison(c, i, name, exact, m, ref, nudged, bound)
            report.comparisons.append(c)
    if "finite_differences" in oracles:
        _finite_difference_comparisons(report, reference, xs, names, manual, errors, G64, malformed, exact=exact, seed=seed)
    for i, g in enumerate(grads):
        if g is None and any(not c.ok for c in report.comparisons if c.input_index == i):
            report.problems.append(Problem("missing", "a gradient (the oracles' is not zero)", "None", i, names[i]))


def _kink_comparison(c, i, name, exact, manual, ref: Reference, nudged, bound):
    sides = torch.stack([ref.grads[i], *(n[i] for n in nudged)])
    low, high = sides.min(dim=0).values - bound, sides.max(dim=0).values + bound
    m = manual.detach().to(torch.float64).reshape(low.shape)
    excused = (m >= low) & (m <= high)
    judged = torch.where(excused, ref.grads[i], m)
    again = element_comparison(i, name, "autograd", exact, judged, ref.grads[i], bound)
    if again.ok:
        return replace(c, inconclusive=f"f is not differentiable at this point ({', '.join(ref.kinks)} decided at its "
                                       f"boundary); {int(excused.sum())} element(s) match a one-sided derivative")
    return again


def _finite_difference_comparisons(report, reference, xs, names, manual, errors, G64, malformed, *, exact, seed) -> None:
    """Joint probes across every input first (one pair of evaluations checks them all); where they
    disagree, probes along each input alone say which input is wrong."""
    generator = torch.Generator().manual_seed(seed)
    movable = [i not in malformed for i in range(len(xs))]
    probes = finite_difference_probes(reference, xs, G64, exact=exact, generator=generator, movable=movable)
    coordinate = bool(probes) and probes[0].element is not None
    if coordinate:  # few elements: every probe moves one element of one input
        for i, name in enumerate(names):
            mine = [p for p in probes if p.element[0] == i]
            if mine:
                report.comparisons.append(probe_comparison(i, name, exact, manual, errors, mine))
        return
    joint = probe_comparison(None, "all inputs (joint direction)", exact, manual, errors, probes)
    if joint.ok or sum(movable) == 1:
        if sum(movable) == 1:
            i = movable.index(True)
            joint = replace(joint, input_index=i, input_name=names[i])
        report.comparisons.append(joint)
        return
    localized = [probe_comparison(i, names[i], exact, manual, errors,
                                  finite_difference_probes(reference, xs, G64, exact=exact, generator=generator,
                                                           movable=movable, only=i))
                 for i in range(len(xs)) if movable[i]]
    report.comparisons += localized
    if all(c.ok for c in localized):
        report.comparisons.append(joint)


def assert_vjp(f: Callable[..., Tensor], vjp: Callable[..., Any], inputs: Sequence[Tensor], **options: Any) -> Report:
    """``check_vjp``, raising ``GradientMismatch`` (an ``AssertionError``) with the report when it fails."""
    report = check_vjp(f, vjp, inputs, **options)
    if not report.ok:
        raise GradientMismatch(report)
    return report


def verify(
    f: Callable[..., Tensor],
    vjp: Callable[..., Any],
    operands: st.SearchStrategy,
    *,
    max_examples: int | None = None,
    exact: bool = False,
    on_report: Callable[[Report], None] | None = None,
    hypothesis_settings: settings | None = None,
    **options: Any,
) -> None:
    """Run ``check_vjp`` on every input tuple hypothesis draws from ``operands`` (and a drawn
    cotangent). On failure hypothesis shrinks to a minimal example and ``GradientMismatch`` is raised
    with its report. Hypothesis runs under ``hypothesis_settings`` (default: the active profile's),
    ``max_examples`` overriding; ``on_report`` sees every example's report (for statistics)."""
    if not isinstance(operands, st.SearchStrategy):
        raise GradcheckError(f"operands: expected a hypothesis strategy of input tuples, got {type(operands).__name__}")
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
            raise GradcheckError(f"operands: expected the strategy to draw tuples of tensors, got {type(inputs).__name__}")
        inputs, _ = _validate_inputs(inputs, options.get("names"))
        G = data.draw(cotangents(_call_forward(f, inputs), exact=exact), label="cotangent")
        report = check_vjp(f, vjp, inputs, cotangent=G, exact=exact, **options)
        if on_report is not None:
            on_report(report)
        # Inputs where f or the VJP leaves the dtype's range say nothing about the gradient: rejected,
        # so that shrinking cannot slide from a real bug onto one of them.
        assume(not report.overflowed)
        if not report.ok:
            raise GradientMismatch(report)

    gradient_matches._hypothesis_internal_add_digest = f"{_name_of(f)}/{_name_of(vjp)}/{exact}".encode()  # type: ignore[attr-defined]
    try:
        chosen(given(data=st.data())(gradient_matches))()
    except Unsatisfiable as exc:
        raise GradcheckError(f"operands: every drawn example overflowed in f or the vjp ({exc}); "
                             "draw smaller values for this dtype") from exc


# ---- torch.autograd.Function ----------------------------------------------------------------------

class _ForwardContext:
    """Stands in for ``ctx`` when a Function's forward is run as plain code for the oracles."""

    saved_tensors: tuple[Tensor, ...] = ()

    def save_for_backward(self, *tensors: Tensor) -> None:
        self.saved_tensors = tensors

    def mark_dirty(self, *args: Any) -> None: ...

    def mark_non_differentiable(self, *args: Any) -> None: ...

    def set_materialize_grads(self, value: bool) -> None: ...


def _forward_body(function: type[torch.autograd.Function]) -> Callable[..., Tensor]:
    """The Function's forward as plain differentiable code, so the oracles never call its backward."""
    if function.setup_context is not torch.autograd.Function.setup_context:
        return lambda *xs: function.forward(*xs)
    return lambda *xs: function.forward(_ForwardContext(), *xs)


def _raw_backward(function: type[torch.autograd.Function]) -> Callable[..., Any]:
    """The backward's own return value, before the engine reshapes or casts anything."""

    def backward(*args: Tensor) -> Any:
        *inputs, G = args
        leaves = [x.detach().requires_grad_(True) for x in inputs]
        with torch.enable_grad():
            out = function.apply(*leaves)
        if not isinstance(out, Tensor) or out.grad_fn is None:
            raise GradcheckError(f"{function.__name__}.apply: expected an output with a grad_fn, got {type(out).__name__}")
        with torch.no_grad():
            raw = out.grad_fn.apply(G)
        return raw if isinstance(raw, tuple) or len(inputs) != 1 else (raw,)

    backward.__qualname__ = f"{function.__qualname__}.backward"
    return backward


def check_function(function: type[torch.autograd.Function], inputs: Sequence[Tensor], **options: Any) -> Report:
    """``check_vjp`` for a ``torch.autograd.Function`` subclass: its raw backward outputs are judged
    against oracles that differentiate its forward as plain code (or ``reference=`` when given)."""
    if not (isinstance(function, type) and issubclass(function, torch.autograd.Function)):
        raise GradcheckError(f"function: expected a torch.autograd.Function subclass, got {function!r}")
    options.setdefault("reference", _forward_body(function))
    options.setdefault("label", function.__qualname__)
    return check_vjp(function.apply, _raw_backward(function), inputs, **options)


# ---- replay ---------------------------------------------------------------------------------------

def _tensor_literal(t: Tensor) -> str:
    dtype = str(t.dtype)
    literal = f"torch.tensor({t.detach().cpu().to(torch.float64).tolist()!r}, dtype={dtype}, device={str(t.device)!r})"
    return literal.replace("nan", "float('nan')").replace("inf", "float('inf')")


def reproducer(f: Callable, vjp: Callable, inputs: Sequence[Tensor], cotangent: Tensor, names: Sequence[str], exact: bool) -> str:
    """A snippet that replays the check on these exact values (layouts are noted, not rebuilt)."""
    rows = [f"    {_tensor_literal(t)},  # {n}, strides {tuple(t.stride())}" for n, t in zip(names, inputs)]
    module_f, module_v = getattr(f, "__module__", "?"), getattr(vjp, "__module__", "?")
    return "\n".join([
        "import torch, gradcheck",
        f"# f = {module_f}.{_name_of(f)}; vjp = {module_v}.{_name_of(vjp)}",
        "inputs = (",
        *rows,
        ")",
        f"cotangent = {_tensor_literal(cotangent)}",
        f"print(gradcheck.check_vjp(f, vjp, inputs, cotangent=cotangent, names={tuple(names)!r}, exact={exact}))",
    ])
