"""Numpy layers: a forward/backward pair written in numpy (CS231n-style), checked like a torch VJP.

``check_numpy(forward, backward, inputs)`` takes the pair as a student writes it —
``forward(*inputs) -> (out, cache)`` and ``backward(dout, cache) -> gradients`` — wraps it into the
torch ``f`` and ``vjp`` that ``check_vjp`` takes, and runs it: finite differences of the numpy forward
itself (in float64), exact mode on integer-valued inputs, and autograd only when ``reference=`` gives
a torch function computing the same forward (checked to agree with the numpy one first).

The error model cannot see into numpy, so a numpy result's rounding is *measured* instead of traced:
the same code runs again on the same values in a higher precision — float64 for a float32 or float16
check, ``np.longdouble`` (64-bit significand on x86) for a float64 one — and ``|r − r_hi|`` is what
the algorithm lost to rounding at this point, element by element. Twice that (once more for
``r_hi``'s own loss, far smaller) plus 16 ulps of the higher precision is declared to the error model
as the result's bound: for the backward's gradients in the check's own run, and for the forward's
outputs in each finite-difference evaluation. It is the rounding of the user's algorithm as it ran —
a cancelling formula is allowed its cancellation — and not of another one: the torch fallback for
untraced code (autograd's VJP traced in the same dtype) sums float32 in double on CPU and false-alarms
on numpy's float32 sums. A bug is never taken for rounding unless it vanishes in the higher
precision; a wrong formula is as wrong in float64 as in float32.

Where no wider long double exists (Windows, Apple silicon) or the code falls back to float64 in its
long double run, float64 rounding is *estimated*: the float32 loss on the same values, scaled by
``u₆₄/u₃₂``, elementwise plus its largest element, times 64; the report says so. Decisions the numpy
forward takes (comparisons, ``maximum``/``minimum``, a max reduction, ``abs``, ``sign``, ``clip``,
rounding) are recorded on an ndarray subclass and handed to the error model, so a finite difference
crossing relu's kink is skipped as it is for torch code.
"""

from __future__ import annotations

import contextvars
import copy
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import _disable_current_modes, _get_current_dispatch_mode_stack

from gradcheck.arguments import flatten_outputs, name_of
from gradcheck.check import check_vjp, verify
from gradcheck.errors import GradcheckError
from gradcheck.replay import Replay
from gradcheck.report import ORACLES, Report
from gradcheck.rounding import RunningError, traced

Tensor = torch.Tensor
MEASURED_MARGIN = 2.0  # a measured loss counts twice: once for itself, once for the higher precision's own
MARGIN = 16.0  # … and this many ulps of the higher precision
ESTIMATE_MARGIN = 64.0  # an estimated (not measured) float64 rounding: this many times the scaled float32 loss
_FLOATS = (np.float16, np.float32, np.float64)

__all__ = ["check_numpy", "verify_numpy"]


def _unit(dtype: Any) -> float:
    return float(np.finfo(dtype).eps) / 2


LONGDOUBLE_EXTENDED = _unit(np.longdouble) < _unit(np.float64) / 64  # x86's 80-bit or a true quad


def _name(dtype: Any) -> str:
    if np.dtype(dtype) == np.dtype(np.longdouble) and np.dtype(np.longdouble) != np.dtype(np.float64):
        return f"long double ({np.finfo(np.longdouble).nmant + 1}-bit significand)"
    return str(np.dtype(dtype).name)


def _higher(dtype: np.dtype) -> Any:
    """The precision that measures ``dtype``'s rounding, or None when the platform has none."""
    if dtype == np.float64:
        return np.longdouble if LONGDOUBLE_EXTENDED else None
    return np.float64


# ---- decisions: an ndarray that records the discrete choices its ufuncs take ---------------------------

_COMPARISONS = {"greater", "greater_equal", "less", "less_equal", "equal", "not_equal"}
_SELECTIONS = {"maximum", "minimum", "fmax", "fmin"}
_SIGNS = {"absolute", "fabs", "sign", "heaviside"}
_STEPS = {"floor", "ceil", "trunc", "rint"}
Recorded = tuple[str, np.ndarray, np.ndarray]  # op, outcome, where it sat at the boundary
_RECORDING: contextvars.ContextVar[list[Recorded] | None] = contextvars.ContextVar("numpy_decisions", default=None)


def _floating(a: Any) -> bool:
    return isinstance(a, (np.ndarray, np.floating, float)) and np.issubdtype(np.asarray(a).dtype, np.floating)


def _decision(name: str, method: str, plain: Sequence[Any], result: Any, kwargs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(outcome, at_boundary)`` of one ufunc call, or None when it decides nothing."""
    if not any(_floating(a) for a in plain):
        return None
    if method == "__call__":
        a = np.asarray(plain[0])
        if name in _COMPARISONS:
            return np.asarray(result), np.asarray(np.equal(plain[0], plain[1]))
        if name in _SELECTIONS:
            return np.asarray(np.greater(plain[0], plain[1])), np.asarray(np.equal(plain[0], plain[1]))
        if name in _SIGNS:
            return np.sign(a), a == 0
        if name in _STEPS:
            return np.asarray(result), a == np.asarray(result)
        if name == "clip" and len(plain) == 3:
            lo, hi = plain[1], plain[2]
            return np.stack(np.broadcast_arrays(a < lo, a > hi)), np.asarray((a == lo) | (a == hi))
        return None
    if method == "reduce" and name in _SELECTIONS:
        a = np.asarray(plain[0])
        axis = kwargs.get("axis", 0)
        top = getattr(np, name).reduce(a, axis=axis, keepdims=True)
        chosen = a == top
        return chosen, chosen & (chosen.sum(axis=axis, keepdims=True) > 1)
    return None


class _Watched(np.ndarray):
    """An ndarray whose ufunc calls append their decisions to the active recording (views keep it)."""

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, out: Any = None, **kwargs: Any) -> Any:
        plain = tuple(np.asarray(a) if isinstance(a, _Watched) else a for a in inputs)
        if out is not None:
            kwargs["out"] = tuple(np.asarray(o) if isinstance(o, _Watched) else o for o in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        recording = _RECORDING.get()
        if recording is not None:
            found = _decision(ufunc.__name__, method, plain, result, kwargs)
            if found is not None:
                recording.append((f"numpy.{ufunc.__name__}", *found))
        if out is not None:
            return out[0] if len(out) == 1 else out
        if isinstance(result, tuple):
            return tuple(r.view(_Watched) if isinstance(r, np.ndarray) else r for r in result)
        return result.view(_Watched) if isinstance(result, np.ndarray) else result


# ---- the pair as torch callables ---------------------------------------------------------------------

def _running_error() -> RunningError | None:
    """The error model tracing the current call, if any (the check's VJP run, a finite difference)."""
    for mode in reversed(_get_current_dispatch_mode_stack()):
        if isinstance(mode, RunningError):
            return mode
    return None


def _contiguous(a: Any) -> np.ndarray:
    """A C-contiguous array, 0-d kept 0-d (``np.ascontiguousarray`` makes it 1-d)."""
    return np.require(np.asarray(a), requirements="C")


def _to_numpy(v: Any) -> Any:
    return v.detach().cpu().numpy() if isinstance(v, Tensor) else v


def _to_torch(a: Any) -> Any:
    """A numpy result as a tensor (numpy scalars and python floats as 0-d arrays); anything else as it is."""
    if isinstance(a, (np.ndarray, np.generic, float)):
        a = np.asarray(a)
        if a.dtype.kind in "fiub":
            return torch.from_numpy(_contiguous(a))
    return a


@dataclass
class NumpyPair:
    """A numpy ``forward`` and ``backward`` as the torch ``f`` and ``vjp`` that ``check_vjp`` takes.

    ``cache=True``: ``forward(*inputs) -> (*outs, cache)``, ``backward(*douts, cache)``;
    ``cache=False``: ``forward(*inputs) -> out`` (or a tuple), ``backward(*inputs, *douts)``.
    The backward returns one gradient per input, or one per floating input (the rest get None).
    Called under the error model (the check's run of the VJP, a finite difference's evaluation of
    the forward), each result's rounding is measured and declared to the model.
    """

    forward: Callable[..., Any]
    backward: Callable[..., Any]
    cache: bool
    floating: tuple[bool, ...]
    exact: bool = False
    notes: list[str] = field(default_factory=list)

    # -- running the user's code --
    def arrays(self, values: Sequence[Any], watched: bool = False) -> list[Any]:
        """Numpy arguments: floating ones sharing the tensors' memory (so that a modification shows;
        ``watched``: recording their decisions), the rest copied so that a forward which updates a dict
        (batch norm's running mean) starts afresh every call."""
        out = []
        for v, fl in zip(values, self.floating):
            if fl:
                a = _to_numpy(v)
                out.append(a.view(_Watched) if watched else a)
            else:
                out.append(copy.deepcopy(_to_numpy(v)))
        return out

    def outputs(self, result: Any) -> tuple[Any, ...]:
        return self._split(result)[0]

    def _split(self, result: Any) -> tuple[tuple[Any, ...], Any]:
        """``(outs, cache)`` of a forward's result."""
        if not self.cache:
            return (tuple(result) if isinstance(result, (tuple, list)) else (result,)), None
        if not isinstance(result, (tuple, list)) or len(result) < 2:
            raise GradcheckError(f"forward ({name_of(self.forward)}): expected (out, cache), the CS231n convention "
                                 f"(cache=False for a forward returning its output alone), got {type(result).__name__}")
        return tuple(result[:-1]), result[-1]

    def gradients(self, arrays: Sequence[Any], douts: Sequence[Any]) -> tuple[Any, ...]:
        """The backward's gradients, one entry per input."""
        _, cache = self._split(self.forward(*arrays))
        grads = self.backward(*douts, cache) if self.cache else self.backward(*arrays, *douts)
        grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
        diff = [i for i, fl in enumerate(self.floating) if fl]
        if len(grads) == len(diff) < len(self.floating):  # one per floating input: spread them
            spread: list[Any] = [None] * len(self.floating)
            for i, g in zip(diff, grads):
                spread[i] = g
            return tuple(spread)
        return grads

    # -- f: the forward, for the check's first call and the finite differences --
    def f(self, *values: Any) -> Any:
        mode = _running_error()
        if mode is None:
            converted = tuple(_to_torch(o) for o in self.outputs(self.forward(*self.arrays(values))))
            return converted[0] if len(converted) == 1 else converted
        with _disable_current_modes():  # numpy's own work; the mode is told the results below
            recording: list[Recorded] = []
            token = _RECORDING.set(recording)
            try:
                outs = self.outputs(self.forward(*self.arrays(values, watched=True)))
            finally:
                _RECORDING.reset(token)
            converted = tuple(_to_torch(o) for o in outs)
            errors = self._rounding([_to_numpy(v) for v in values], (), [np.asarray(o) for o in outs], "the forward")
            for t, e in zip(converted, errors):
                if isinstance(t, Tensor) and e is not None:
                    mode.set_error(t, e)
                    info = mode.info(t)
                    if info is not None:
                        info.degree = math.inf  # its degree is unknown: Richardson, with its gap as truncation
            for op, outcome, boundary in recording:
                mode.decision(torch.from_numpy(_contiguous(outcome)), torch.from_numpy(_contiguous(boundary)).bool(), op)
        return converted[0] if len(converted) == 1 else converted

    # -- vjp: the backward in the check's dtype --
    def vjp(self, *values_and_douts: Any) -> tuple[Any, ...]:
        n = len(self.floating)
        values, douts = values_and_douts[:n], values_and_douts[n:]
        mode = _running_error()
        if mode is None:
            return tuple(_to_torch(g) for g in self.gradients(self.arrays(values), [_to_numpy(g) for g in douts]))
        with _disable_current_modes():  # numpy's own work; the mode is told the results below
            # copies for the measurement, taken first: the checked run may modify what it is given
            snapshot = [np.array(_to_numpy(v)) if fl else v for v, fl in zip(values, self.floating)]
            dout_snapshot = [np.array(_to_numpy(g)) for g in douts]
            converted = tuple(_to_torch(g) for g in self.gradients(self.arrays(values), [_to_numpy(g) for g in douts]))
            floating = [isinstance(t, Tensor) and t.dtype.is_floating_point for t in converted]
            results = [t.numpy() if fl else None for t, fl in zip(converted, floating)]
            errors = self._rounding(snapshot, dout_snapshot, results, "the backward")
            for t, e, fl in zip(converted, errors, floating):
                if fl:  # none measured: declared exact (the note says its rounding is not allowed for)
                    mode.set_error(t, e if e is not None else torch.zeros(t.shape, dtype=torch.float64))
        return converted

    # -- rounding: measured in a higher precision, else estimated --
    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _rerun(self, values: Sequence[Any], douts: Sequence[Any], what: str, precision: Any, through: Any = None) -> tuple[Any, ...]:
        """The forward's outputs or the backward's gradients with every floating input (rounded to
        ``through`` first, when given) in ``precision``."""
        def cast(a: Any) -> Any:
            a = np.asarray(a)
            return (a.astype(through) if through is not None else a).astype(precision)

        arrays = [cast(a) if fl else copy.deepcopy(a) for a, fl in zip(values, self.floating)]
        if what == "the forward":
            return self.outputs(self.forward(*arrays))
        return self.gradients(arrays, [cast(g) for g in douts])

    def _rounding(self, values: Sequence[Any], douts: Sequence[Any], results: Sequence[Any], what: str) -> list[Tensor | None]:
        """Per result, a float64 bound on its rounding (None where none could be had)."""
        dtype = next(np.asarray(v).dtype for v, fl in zip(values, self.floating) if fl)
        hi = _higher(dtype)
        if hi is not None:
            try:
                found = _padded(self._rerun(values, douts, what, hi), len(results))
            except Exception as exc:  # noqa: BLE001 - the user's code may not run in another precision
                self._note(f"{what} raised {type(exc).__name__} in {_name(hi)}: {exc}")
            else:
                measured = [self._measured(r, h, hi) for r, h in zip(results, found)]
                if all(m is not None for m, r in zip(measured, results) if r is not None and r.dtype.kind == "f"):
                    self._note(f"{what}'s rounding measured: the same code run again in {_name(hi)} on the same "
                               f"values; allowed {MEASURED_MARGIN:g}× the difference + {MARGIN:g} ulps of {_name(hi)}")
                    return measured
                self._note(f"{what} does not compute in the precision of its inputs (its {_name(hi)} run "
                           "gave a lower precision or another shape): its rounding could not be measured")
        if dtype != np.float64:
            self._note(f"{what}'s rounding is not allowed for: it could not be measured in {_name(hi)}")
            return [None] * len(results)
        try:
            lower = _padded(self._rerun(values, douts, what, np.float32, through=np.float32), len(results))
            upper = _padded(self._rerun(values, douts, what, np.float64, through=np.float32), len(results))
        except Exception as exc:  # noqa: BLE001
            self._note(f"{what}'s rounding neither measured nor estimated ({type(exc).__name__} in float32): not allowed for")
            return [None] * len(results)
        self._note(f"{what}'s float64 rounding estimated, not measured (no higher precision usable): "
                   f"its float32 loss on the same values × u₆₄/u₃₂ × {ESTIMATE_MARGIN:g}")
        return [_estimated(r, lo, up) for r, lo, up in zip(results, lower, upper)]

    def _measured(self, result: Any, high: Any, hi: Any) -> Tensor | None:
        """``|result − high|`` is the rounding ``result`` suffered, up to ``high``'s own; allowed: twice
        that, and a few ulps of ``high`` (none in exact mode), in float64."""
        if result is None or result.dtype.kind != "f" or not isinstance(high, (np.ndarray, np.generic)):
            return None
        h = np.asarray(high)
        if h.shape != result.shape or h.dtype != np.dtype(hi):
            return None
        lost = np.abs(result.astype(hi) - h)
        bound = MEASURED_MARGIN * lost  # the second loss: ``high``'s own, far smaller unless result rounded by luck
        if not self.exact:
            bound = bound + MARGIN * _unit(hi) * np.abs(h)
        return torch.from_numpy(_contiguous(bound.astype(np.float64) * (1 + 2.0**-50)))


def _estimated(result: Any, lower: Any, upper: Any) -> Tensor | None:
    """A float64 result's rounding estimated from its algorithm's float32 loss ``|lower − upper|``
    (both from the float32-rounded values), scaled by ``u₆₄/u₃₂``: elementwise plus the largest loss
    over every element, since an element that float32 happened to round well may not be so in float64.
    (Over 200 random examples of the five CS231n layers at sides 1–48, the float64 loss measured
    against long double stayed within 0.69 of this with a margin of 16; the margin is 64.)"""
    if result is None or not isinstance(lower, (np.ndarray, np.generic)) or not isinstance(upper, (np.ndarray, np.generic)):
        return None
    lo, up = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    if lo.shape != result.shape or up.shape != result.shape:
        return None
    lost = np.abs(lo - up)
    scale = ESTIMATE_MARGIN * _unit(np.float64) / _unit(np.float32)
    bound = scale * (lost + lost.max(initial=0.0)) + ESTIMATE_MARGIN * _unit(np.float64) * np.abs(result)
    return torch.from_numpy(_contiguous(bound.astype(np.float64)))


def _padded(found: Any, n: int) -> list[Any]:
    items: list[Any] = list(found) if isinstance(found, (tuple, list)) else [found]
    return (items + [None] * n)[:n]


# ---- inputs ------------------------------------------------------------------------------------------

def _validated(inputs: Any, names: Sequence[str] | None, forward: Callable[..., Any]) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """Floating numpy arrays (or tensors) as tensors for ``check_vjp``; the rest passed through."""
    if not isinstance(inputs, (tuple, list)):
        raise GradcheckError(f"inputs: expected a tuple of inputs (numpy arrays and other arguments), got {type(inputs).__name__}")
    if names is None:
        try:
            params = [p.name for p in inspect.signature(forward).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            params = []
        names = params[: len(inputs)] if len(params) >= len(inputs) else [f"input{i}" for i in range(len(inputs))]
    values = []
    for i, v in enumerate(inputs):
        if isinstance(v, Tensor) and v.dtype.is_floating_point:  # drawn by a strategy: its layout kept
            values.append(v.detach())
            continue
        a = _to_numpy(v)
        if isinstance(a, np.ndarray) and a.dtype.kind in "fc":
            if a.dtype.type not in _FLOATS:
                raise GradcheckError(f"input {i} ({names[i] if i < len(names) else i}): expected float16, float32 or "
                                     f"float64, got {a.dtype}")
            values.append(torch.from_numpy(a.copy()))
        else:
            values.append(a)
    return tuple(values), tuple(names)


def _oracles(oracles: Sequence[str] | None, reference: Callable[..., Any] | None) -> tuple[str, ...]:
    if oracles is None:
        return ORACLES if reference is not None else ("finite_differences",)
    if isinstance(oracles, str) or not oracles or set(oracles) - set(ORACLES):
        raise GradcheckError(f"oracles: expected a non-empty sequence of names from {ORACLES}, got {oracles!r}")
    if "autograd" in oracles and reference is None:
        raise GradcheckError("oracles: expected reference= (a torch function computing the same forward) with "
                             "'autograd', got none: autograd cannot differentiate numpy code")
    return tuple(oracles)


def _cotangent(cotangent: Any) -> Any:
    if cotangent is None:
        return None
    if isinstance(cotangent, (tuple, list)):
        return tuple(_to_torch(_to_numpy(g)) if g is not None else None for g in cotangent)
    return _to_torch(_to_numpy(cotangent))


# ---- the public checks -------------------------------------------------------------------------------

def check_numpy(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    inputs: Sequence[Any],
    *,
    cache: bool = True,
    reference: Callable[..., Any] | None = None,
    oracles: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    cotangent: Any = None,
    exact: bool = False,
    seed: int = 0,
    label: str | None = None,
    contract: str = "raw",
) -> Report:
    """Check a numpy ``backward`` against finite differences of the numpy ``forward`` (and autograd
    on ``reference``, a torch function computing the same forward, when given).

    ``forward(*inputs) -> (out, cache)`` and ``backward(dout, cache) -> (dx, dw, …)`` — the CS231n
    convention; several outputs: ``(*outs, cache)`` and ``backward(*douts, cache)``; ``cache=False``:
    ``forward(*inputs) -> out`` and ``backward(*inputs, dout)``. The backward returns one gradient per
    input, or one per floating input (integer labels and dicts of options get None). ``inputs``:
    floating numpy arrays (float16/32/64, all one dtype) are differentiated; anything else is passed
    through. A loss that returns its own gradient, ``softmax_loss(x, y) -> (loss, dx)``, is checked
    with ``backward = lambda dloss, dx: dloss * dx``. ``oracles``: default finite differences, and
    autograd too when ``reference`` is given. ``names``: default the forward's parameter names.
    ``cotangent``, ``exact``, ``seed``, ``label``, ``contract``: as for ``check_vjp``.
    """
    for what, fn in (("forward", forward), ("backward", backward)):
        if not callable(fn):
            raise GradcheckError(f"{what}: expected a callable, got {type(fn).__name__}")
    if reference is not None and not callable(reference):
        raise GradcheckError(f"reference: expected a torch function computing the same forward, got {type(reference).__name__}")
    chosen = _oracles(oracles, reference)
    values, names = _validated(inputs, names, forward)
    floating = tuple(isinstance(v, Tensor) and v.dtype.is_floating_point for v in values)
    pair = NumpyPair(forward, backward, cache, floating, exact=exact)
    label = label or (name_of(backward) if name_of(backward) != "<lambda>" else name_of(forward))
    G = _cotangent(cotangent)
    if G is None:  # drawn here, so that both oracles' runs see the same one
        G = _drawn_cotangent(pair, values, exact, seed)
    else:
        _first_outputs(pair, values)
    if "autograd" in chosen and reference is not None:
        _require_same_forward(pair, reference, values)
    # Finite differences of the numpy forward and autograd of the reference are two check_vjp runs:
    # each differentiates one function (its reference=), and the backward is judged against both.
    # Each run gets fresh copies: a backward that modifies what it is given must not change the other.
    runs = []
    if "finite_differences" in chosen:
        runs.append(check_vjp(pair.f, pair.vjp, _copied(values), oracles=("finite_differences",), cotangent=_copied(G),
                              names=names, exact=exact, seed=seed, label=label, contract=contract))
    if "autograd" in chosen:
        runs.append(check_vjp(pair.f, pair.vjp, _copied(values), oracles=("autograd",), reference=reference,
                              cotangent=_copied(G), names=names, exact=exact, seed=seed, label=label, contract=contract))
    report = runs[0] if len(runs) == 1 else _merged(*runs)
    report.notes += [n for n in pair.notes if n not in report.notes]
    report.reproducer = "" if report.ok else _replay(forward, backward, reference, values, names, G, chosen, cache, exact, label)
    return report


def _copied(v: Any) -> Any:
    if isinstance(v, tuple):
        return tuple(_copied(x) for x in v)
    return v.clone() if isinstance(v, Tensor) else v


def _first_outputs(pair: NumpyPair, values: tuple[Any, ...]) -> tuple[Tensor, ...]:
    """The forward's outputs on the inputs as given, with a clear error for anything but floating arrays."""
    what = f"forward ({name_of(pair.forward)})"
    try:
        outs = pair.outputs(pair.forward(*pair.arrays(values)))
    except GradcheckError:
        raise
    except Exception as exc:  # the user's forward failing is their mistake, reported as such
        raise GradcheckError(f"{what} raised {type(exc).__name__}: {exc}") from exc
    converted = []
    for k, o in enumerate(outs):
        t = _to_torch(o)
        if not isinstance(t, Tensor) or not t.dtype.is_floating_point:
            got = f"{t.dtype}" if isinstance(t, Tensor) else type(o).__name__
            raise GradcheckError(f"{what}: expected a floating numpy array as output {k}, got {got}")
        converted.append(t)
    return tuple(converted)


def _drawn_cotangent(pair: NumpyPair, values: tuple[Any, ...], exact: bool, seed: int) -> Any:
    """The cotangent ``check_vjp`` would draw for this seed."""
    from gradcheck.check import _cotangents

    drawn = _cotangents(_first_outputs(pair, values), None, exact=exact, seed=seed)
    return drawn[0] if len(drawn) == 1 else drawn


def _require_same_forward(pair: NumpyPair, reference: Callable[..., Any], values: tuple[Any, ...]) -> None:
    """``reference`` must compute the numpy forward's outputs: in float64, within both computations'
    rounding (the reference's traced, the forward's measured) and a relative 1e-6, loose enough for an
    equivalent formula, tight enough for a different function (another eps, a sum for a mean)."""
    up = tuple(v.detach().to(torch.float64) if isinstance(v, Tensor) and v.dtype.is_floating_point else v for v in values)
    floats = [v for v in up if isinstance(v, Tensor) and v.dtype.is_floating_point]
    try:
        theirs, traced_mode = traced(lambda *a: flatten_outputs(reference(*a)), *up, watch=floats)
        theirs_error = traced_mode.error(theirs)
    except Exception as exc:  # noqa: BLE001 - a reference that fails is reported by the autograd run itself
        del exc
        return
    ours, ours_error = _traced_forward(pair, up)
    if ours.shape != theirs.shape:
        raise GradcheckError(f"reference: expected the numpy forward's output shape {tuple(ours.shape)}, got {tuple(theirs.shape)}")
    ours, theirs = ours.detach().to(torch.float64), theirs.detach().to(torch.float64)
    gap = (ours - theirs).abs()
    allowed = 1e-6 * torch.maximum(ours.abs(), theirs.abs())
    for e in (theirs_error, ours_error):
        if e is not None:
            allowed = allowed + 4 * e.reshape(allowed.shape)
    if bool((gap > allowed).any()):
        k = int(torch.argmax(gap - allowed))
        raise GradcheckError(f"reference: expected the numpy forward's output (in float64), got {float(theirs.reshape(-1)[k])!r} "
                             f"where the forward gives {float(ours.reshape(-1)[k])!r} (flattened output index {k}; "
                             f"allowed difference {float(allowed.reshape(-1)[k]):.3g})")


def _traced_forward(pair: NumpyPair, values: tuple[Any, ...]) -> tuple[Tensor, Tensor | None]:
    """The numpy forward's flattened output under the error model, with the rounding it declared."""
    floats = [v for v in values if isinstance(v, Tensor) and v.dtype.is_floating_point]
    out, mode = traced(lambda *a: flatten_outputs(pair.f(*a)), *values, watch=floats)
    return out, mode.error(out)


def _merged(first: Report, second: Report) -> Report:
    """One report from the finite-difference run and the autograd run of the same check."""
    first.comparisons += second.comparisons
    first.problems += [p for p in second.problems if p not in first.problems]
    first.warnings += [w for w in second.warnings if w not in first.warnings]
    first.notes += [n for n in second.notes if n not in first.notes]
    return first


class _NumpyReplay(Replay):
    """Numpy arrays written as tensors and turned back with ``.numpy()``."""

    def value(self, name: str, v: Any) -> str:
        if isinstance(v, Tensor) or isinstance(v, np.ndarray):
            t = v if isinstance(v, Tensor) else torch.from_numpy(_contiguous(v))
            return f"{super().value(name, t)}.numpy()"
        return super().value(name, v)


def _replay(forward: Callable[..., Any], backward: Callable[..., Any], reference: Callable[..., Any] | None,
            values: Sequence[Any], names: Sequence[str], cotangent: Any, chosen: tuple[str, ...], cache: bool, exact: bool,
            label: str) -> str:
    callables = [("forward", forward), ("backward", backward)] + ([("reference", reference)] if reference is not None else [])
    keywords = "".join([", reference=reference" if reference is not None else "",
                        f", oracles={chosen!r}" if chosen != _oracles(None, reference) else "",
                        ", cache=False" if not cache else "", ", exact=True" if exact else "",
                        f", label={label!r}"])
    cots = cotangent if isinstance(cotangent, tuple) else (cotangent,)
    call = f"gradcheck.check_numpy(forward, backward, inputs, cotangent=cotangent, names={tuple(names)!r}{keywords})"
    return _NumpyReplay().script(call, callables, values, names, cots)


def verify_numpy(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    operands: st.SearchStrategy,
    *,
    max_examples: int | None = None,
    exact: bool = False,
    on_report: Callable[[Report], None] | None = None,
    hypothesis_settings: settings | None = None,
    **options: Any,
) -> None:
    """``check_numpy`` on every input tuple hypothesis draws from ``operands`` (numpy arrays or tensors,
    and other arguments), shrinking a failure to a minimal example (``GradientMismatch``)."""
    if not isinstance(operands, st.SearchStrategy):
        raise GradcheckError(f"operands: expected a hypothesis strategy of input tuples, got {type(operands).__name__}")
    _oracles(options.get("oracles"), options.get("reference"))

    def as_tensors(drawn: Any) -> Any:
        if not isinstance(drawn, (tuple, list)):
            return drawn
        return tuple(torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v for v in drawn)

    probe_pair = NumpyPair(forward, backward, options.get("cache", True), ())

    def f(*values: Any) -> Any:  # what verify calls to shape the cotangents it draws
        probe_pair.floating = tuple(isinstance(v, Tensor) and v.dtype.is_floating_point for v in values)
        return probe_pair.f(*values)

    f.__name__ = f.__qualname__ = name_of(forward)  # names hypothesis's database entry

    def checked(f_: Any, vjp_: Any, values: Any, **kw: Any) -> Report:
        return check_numpy(forward, backward, values, **kw)

    verify(f, backward, operands.map(as_tensors), max_examples=max_examples, exact=exact, on_report=on_report,
           hypothesis_settings=hypothesis_settings, _check=checked, **options)

