"""Checks of hand-written VJPs: ``check_vjp`` → ``Report``, ``assert_vjp``, ``check_function``, ``verify``.

Order of a check: validate what the caller gave (a mistake there is a ``GradcheckError``, never a
traceback from inside the harness); call the hand-written VJP and look at its *raw* output — count,
type, exact shape, dtype, device — because the autograd engine would silently sum a broadcastable
wrong-shaped gradient and cast a wrong dtype; make sure it left its inputs alone and answers the same
twice; then compare values with each oracle under a floating-point error bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradcheck.oracles import OracleUnavailable, Probe, autograd_vjp, finite_difference_probes, magnitude_vjp, step_scale, upcast
from gradcheck.devices import full_precision
from gradcheck.report import ORACLES, Comparison, Problem, Report
from gradcheck.strategies import cotangents
from gradcheck.tolerance import gamma, rounding_bound

Tensor = torch.Tensor
Depth = int | Callable[..., int] | None

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
    generator = torch.Generator().manual_seed(seed)
    if exact:
        choices = torch.tensor(EXACT_COTANGENT_VALUES, dtype=torch.float64)
        drawn = choices[torch.randint(len(choices), tuple(out.shape), generator=generator)]
    else:
        drawn = torch.randn(tuple(out.shape), generator=generator, dtype=torch.float64)
    return drawn.to(dtype=out.dtype, device=out.device)


def _require_exact(inputs: Sequence[Tensor], names: Sequence[str], cotangent: Tensor) -> None:
    for name, t in [*zip(names, inputs), ("cotangent", cotangent)]:
        if t.dtype != torch.float64:
            raise GradcheckError(f"{name}: exact mode expects float64, got {t.dtype}")
        if not torch.equal(t, t.round()):
            raise GradcheckError(f"{name}: exact mode expects integer values, got non-integers")


# ---- the raw output of the hand-written VJP -------------------------------------------------------

def _call_vjp(vjp: Callable[..., Any], inputs: Sequence[Tensor], cotangent: Tensor) -> tuple[Any, str | None]:
    try:
        with torch.no_grad():
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


# ---- comparing values -----------------------------------------------------------------------------

def _element_comparison(i: int, name: str, oracle: str, exact: bool, actual: Tensor, expected: Tensor, bound: Tensor) -> Comparison:
    if actual.numel() == 0:
        return Comparison(i, name, oracle, exact, 0.0, 0.0, "-", math.nan, math.nan, 0.0, 0.0)
    a = actual.to(torch.float64)
    error = (a - expected).abs()
    error = torch.where(torch.isfinite(a), error, torch.full_like(error, math.inf))
    ratio = torch.where(bound > 0, error / bound, torch.where(error > 0, math.inf, 0.0))
    rel = torch.where(expected != 0, error / expected.abs(), torch.where(error > 0, math.inf, 0.0))
    flat = int(torch.argmax(torch.where(torch.isnan(ratio), math.inf, ratio)).item())
    index = tuple(int(j) for j in torch.unravel_index(torch.tensor(flat), actual.shape)) if actual.ndim else ()
    return Comparison(
        i, name, oracle, exact,
        max_abs_error=float(error.max()), max_rel_error=float(rel.max()), worst=str(index),
        actual=float(a[index]), expected=float(expected[index]), bound=float(bound[index]), ratio=float(ratio[index]),
    )


def _probe_comparison(i: int, name: str, exact: bool, manual: Tensor, bound: Tensor, probes: list[Probe]) -> Comparison:
    """⟨manual, Δ⟩ against φ(x₊) − φ(x₋) for each probe, errors expressed per unit step."""
    rows = []
    m = manual.to(torch.float64)
    for k, probe in enumerate(probes):
        scale = step_scale(probe)
        terms = m * probe.delta
        lhs = float(terms.sum())
        dot_rounding = 0.0 if exact else gamma(max(1, m.numel()), torch.float64) * float(terms.abs().sum())
        allowed = 0.0 if exact else float((bound * probe.delta.abs()).sum()) + probe.error + dot_rounding
        error = abs(lhs - probe.difference) if math.isfinite(lhs) else math.inf
        ratio = error / allowed if allowed > 0 else (math.inf if error > 0 else 0.0)
        where = str(probe.element) if probe.element is not None else f"probe {k}"
        rows.append((ratio, error / scale, allowed / scale, lhs / scale, probe.difference / scale, where))
    if not rows:
        return Comparison(i, name, "finite_differences", exact, 0.0, 0.0, "-", math.nan, math.nan, 0.0, 0.0)
    ratio, error, allowed, actual, expected, where = max(rows, key=lambda r: (math.isnan(r[0]), r[0]))
    rel = error / abs(expected) if expected else (math.inf if error else 0.0)
    return Comparison(i, name, "finite_differences", exact, max(r[1] for r in rows), rel, where, actual, expected, allowed, ratio)


def _resolve_depth(depth: Depth, inputs: Sequence[Tensor], out: Tensor) -> int:
    if depth is None:  # without knowledge of the function: no reduction is longer than the largest tensor
        return max([out.numel(), *(t.numel() for t in inputs)]) + 2
    value = depth(*inputs) if callable(depth) else depth
    if not isinstance(value, int) or value < 1:
        raise GradcheckError(f"depth: expected a positive int, got {value!r}")
    return value


# ---- the public checks ----------------------------------------------------------------------------

def check_vjp(
    f: Callable[..., Tensor],
    vjp: Callable[..., Any],
    inputs: Sequence[Tensor],
    *,
    cotangent: Tensor | None = None,
    names: Sequence[str] | None = None,
    exact: bool = False,
    depth: Depth = None,
    magnitude_signs: Sequence[int] | None = None,
    quadratic: bool = False,
    oracles: Sequence[str] = ORACLES,
    reference: Callable[..., Tensor] | None = None,
    seed: int = 0,
    label: str | None = None,
) -> Report:
    """Check ``vjp(*inputs, G)`` — one gradient per input, None where an input needs none — against
    reverse-mode autograd on ``f`` and central finite differences of ``f``, for every input.

    ``cotangent``: the ``G`` to use; by default one is drawn (normal values; nonzero integers in exact
    mode), never all ones, which would hide a backward that ignores it. ``exact``: inputs and
    cotangent are integer-valued float64, so the matmul family is computed without rounding and all
    three answers must agree bit for bit. ``depth``: the longest chain of roundings in the VJP (an int,
    or a function of the inputs); by default the largest tensor's size, safe but loose.
    ``magnitude_signs``: −1 for inputs the function subtracts, so the error bound sees the
    terms' absolute values. ``quadratic``: ``f`` is at most quadratic in each input, so central
    differences have no truncation error. ``reference``: the function the oracles differentiate,
    when it is not ``f`` itself.
    """
    if not callable(f):
        raise GradcheckError(f"f: expected a callable, got {type(f).__name__}")
    if not callable(vjp):
        raise GradcheckError(f"vjp: expected a callable, got {type(vjp).__name__}")
    unknown = set(oracles) - set(ORACLES)
    if isinstance(oracles, str) or unknown:
        raise GradcheckError(f"oracles: expected names from {ORACLES}, got {sorted(unknown)}")
    inputs, names = _validate_inputs(inputs, names)
    if magnitude_signs is not None and len(magnitude_signs) != len(inputs):
        raise GradcheckError(f"magnitude_signs: expected {len(inputs)} signs, got {len(magnitude_signs)}")
    reference = reference or f
    out = _call_forward(f, inputs)
    G = _cotangent(out, cotangent, exact=exact, seed=seed)
    if exact:
        _require_exact(inputs, names, G)
    dtype = inputs[0].dtype if inputs else out.dtype
    report = Report(
        function=label or _name_of(f), input_names=names, shapes=tuple(tuple(t.shape) for t in inputs),
        dtype=str(dtype).removeprefix("torch."), device=str(out.device), exact=exact,
        reproducer=reproducer(f, vjp, inputs, G, names, exact),
    )
    with full_precision():
        _run_checks(report, vjp, reference, inputs, names, G, exact=exact, depth=_resolve_depth(depth, inputs, out),
                    magnitude_signs=magnitude_signs, quadratic=quadratic, oracles=tuple(oracles), seed=seed)
    return report


def _run_checks(report: Report, vjp, reference, inputs, names, G, *, exact, depth, magnitude_signs, quadratic, oracles, seed) -> None:
    originals, original_G = [t.clone() for t in inputs], G.clone()  # never handed to user code
    grads, raised = _call_vjp(vjp, inputs, G)
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
    again, raised_again = _call_vjp(vjp, again_inputs, original_G.clone())
    if raised_again is not None:
        report.problems.append(Problem("nondeterministic", "the same result from two calls", f"the second call raised {raised_again}"))
    elif isinstance(again, (tuple, list)) and len(again) == len(grads):
        for i, (a, b) in enumerate(zip(grads, again)):
            if i not in malformed and not _same(a, b):
                report.problems.append(Problem("nondeterministic", "the same gradient from two calls", "different values", i, names[i]))
    _compare_values(report, reference, originals, names, grads, original_G, malformed, exact=exact, depth=depth,
                    magnitude_signs=magnitude_signs, quadratic=quadratic, oracles=oracles, seed=seed)


def _compare_values(report, reference, inputs, names, grads, G, malformed, *, exact, depth, magnitude_signs, quadratic, oracles, seed) -> None:
    xs, G64 = upcast(inputs), G.detach().to(torch.float64)
    _call_forward(reference, xs, "the reference forward on float64 copies of the inputs")
    try:
        expected = autograd_vjp(reference, xs, G64)
        magnitudes = magnitude_vjp(reference, xs, G64, magnitude_signs)
    except OracleUnavailable as exc:
        report.notes.append(f"autograd oracle unavailable: {exc}; bounds scale with the hand-written gradient instead")
        expected, magnitudes = None, None
    generator = torch.Generator().manual_seed(seed)
    dtype = inputs[0].dtype
    for i, (name, x, g) in enumerate(zip(names, inputs, grads)):
        if i in malformed:
            continue
        manual = torch.zeros_like(x) if g is None else g
        scale = magnitudes[i] if magnitudes is not None else manual.detach().to(torch.float64).abs()
        ref = expected[i] if expected is not None else scale
        bound = torch.zeros_like(scale) if exact else (
            rounding_bound(scale, ref, depth, dtype) + rounding_bound(scale, ref, depth, torch.float64)
        )
        found = []
        if "autograd" in oracles and expected is not None:
            found.append(_element_comparison(i, name, "autograd", exact, manual, expected[i], bound))
        if "finite_differences" in oracles:
            probes = finite_difference_probes(reference, xs, G64, i, exact=exact, quadratic=quadratic,
                                              signs=magnitude_signs, generator=generator)
            found.append(_probe_comparison(i, name, exact, manual, bound, probes))
        report.comparisons += found
        if g is None and any(not c.ok for c in found):
            report.problems.append(Problem("missing", "a gradient (the oracles' is not zero)", "None", i, name))


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
        if not report.ok:
            raise GradientMismatch(report)

    gradient_matches._hypothesis_internal_add_digest = f"{_name_of(f)}/{_name_of(vjp)}/{exact}".encode()  # type: ignore[attr-defined]
    chosen(given(data=st.data())(gradient_matches))()


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
