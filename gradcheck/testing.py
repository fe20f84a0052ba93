"""A hand-written gradient as a pytest test, in one line: ``gradient_test``.

::

    from gradcheck.testing import gradient_test

    test_my_linear = gradient_test(torch.nn.functional.linear, my_linear_vjp, my_linear_operands, names=("x", "W", "b"))
    test_my_function = gradient_test(MyFunction, my_function_operands)

The returned function is a pytest test parametrized over dtypes × devices (ids such as
``float32-cpu``); each case runs ``gradcheck.verify`` (or ``verify_function`` for a
``torch.autograd.Function``) on operands drawn in that dtype on that device, and fails with
gradcheck's report of the minimal counterexample. A device that is not there (CUDA on a CPU machine)
is skipped with the reason; its cases carry the ``cuda`` marker, so ``-m "not cuda"`` deselects them.

pytest is imported only when ``gradient_test`` is called, so ``import gradcheck`` never imports it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

import torch
from hypothesis import strategies as st

from gradcheck.check import verify, verify_function
from gradcheck.errors import GradcheckError
from gradcheck.tolerance import FLOATING_DTYPES

DEFAULT_DEVICES: tuple[str, ...] = ("cpu", "cuda")
CASE_ARGUMENT = "gradcheck_case"  # a name no project's own fixture or parametrization is likely to use

OperandFactory = Callable[..., st.SearchStrategy]


def _is_function(f: Any) -> TypeGuard[type[torch.autograd.Function]]:
    return isinstance(f, type) and issubclass(f, torch.autograd.Function)


def _dtype(value: Any) -> torch.dtype:
    """A floating dtype given as ``torch.float32`` or ``"float32"``."""
    dtype = getattr(torch, value, None) if isinstance(value, str) else value
    if not isinstance(dtype, torch.dtype) or dtype not in FLOATING_DTYPES:
        names = ", ".join(str(d).removeprefix("torch.") for d in FLOATING_DTYPES)
        raise GradcheckError(f"dtypes: expected floating dtypes ({names}), got {value!r}")
    return dtype


def _device(value: Any) -> str:
    try:
        return str(torch.device(value))
    except (RuntimeError, TypeError) as exc:
        raise GradcheckError(f"devices: expected device names such as 'cpu' or 'cuda', got {value!r} ({exc})") from None


def _unavailable(device: str) -> str | None:
    """Why ``device`` cannot be used here, or None when it can."""
    kind = torch.device(device)
    if kind.type == "cpu":
        return None
    if kind.type == "cuda":
        if not torch.cuda.is_available():
            return f"{device} is not available here: torch.cuda.is_available() is False"
        if kind.index is not None and kind.index >= torch.cuda.device_count():
            return f"{device} is not available here: torch.cuda.device_count() is {torch.cuda.device_count()}"
        return None
    try:
        torch.empty(0, device=kind)
    except (RuntimeError, AssertionError) as exc:  # torch raises either for a backend it was built without
        return f"{device} is not available here: {exc}"
    return None


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: assume the gradcheck convention
        return True
    return any((p.name == name and p.kind is not p.POSITIONAL_ONLY) or p.kind is p.VAR_KEYWORD for p in parameters)


def _moved(inputs: Any, device: str) -> Any:
    """Tensors of a drawn tuple moved to ``device`` (values unchanged); other arguments as drawn."""
    if not isinstance(inputs, (tuple, list)):
        return inputs  # verify names the mistake
    return tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs)


def _strategy(operands: OperandFactory, dtype: torch.dtype, device: str, exact: bool) -> st.SearchStrategy:
    """The operand strategy for one case: the factory called with ``dtype=`` and ``device=`` (and
    ``exact=True`` in exact mode). A factory without a ``device`` parameter draws on whatever device it
    likes; its tensors are then moved to the case's device."""
    keywords: dict[str, Any] = {"dtype": dtype}
    takes_device = _accepts(operands, "device")
    if takes_device:
        keywords["device"] = device
    if exact and _accepts(operands, "exact"):
        keywords["exact"] = True
    strategy = operands(**keywords)
    if not isinstance(strategy, st.SearchStrategy):
        raise GradcheckError(f"operands: expected the factory {getattr(operands, '__name__', operands)!r} to return a hypothesis "
                             f"strategy of input tuples, got {type(strategy).__name__}")
    return strategy if takes_device else strategy.map(lambda inputs: _moved(inputs, device))


def gradient_test(
    f: Callable[..., Any] | type[torch.autograd.Function],
    vjp: Callable[..., Any] | st.SearchStrategy | OperandFactory | None = None,
    operands: st.SearchStrategy | OperandFactory | None = None,
    *,
    dtypes: Sequence[torch.dtype | str] | None = None,
    devices: Sequence[str] | None = None,
    max_examples: int | None = None,
    exact: bool = False,
    **options: Any,
) -> Callable[..., None]:
    """A pytest test that verifies a hand-written gradient in every dtype on every device.

    ``gradient_test(f, vjp, operands)`` checks the VJP ``vjp(*inputs, *cotangents)`` of ``f``;
    ``gradient_test(F, operands)`` (or ``operands=``) checks a ``torch.autograd.Function`` ``F``.
    Assign the result to a ``test_…`` name in a test module and pytest collects it.

    ``operands`` is an operand-strategy factory called as ``operands(dtype=..., device=...)`` once per
    case — ``gradcheck.strategies.linear_operands`` and its siblings are such factories, as is any function
    taking those keywords (one without ``device`` draws where it likes, and its tensors are moved to
    the case's device) — or a plain hypothesis strategy of input tuples, which fixes its own dtype and
    device: the test then has the single case ``operands`` and ``dtypes=`` / ``devices=`` are refused.

    ``dtypes`` default to float64, float32, float16 and bfloat16 (float64 alone with ``exact=True``);
    ``devices`` to cpu and cuda, a device that is not there skipped with the reason. Hypothesis runs
    under the active profile's settings, ``max_examples`` overriding its example count. Every other
    keyword goes to ``gradcheck.verify`` / ``verify_function`` (``names=``, ``oracles=``, ``reference=``,
    ``strict=``, ``hypothesis_settings=``, …). A case fails with ``GradientMismatch`` carrying the
    report of the minimal counterexample.
    """
    import pytest

    backward: Callable[..., Any] | None = None  # the VJP checked, for a plain f
    if _is_function(f):
        if vjp is not None and operands is not None:
            raise GradcheckError(f"vjp: a torch.autograd.Function's backward is the VJP checked; got vjp={vjp!r} as well "
                                 f"(call gradient_test({f.__qualname__}, operands))")
        operands = operands if operands is not None else vjp
    else:
        if "strict" in options:
            raise GradcheckError("strict: applies to a torch.autograd.Function (its engine contract); a VJP is always held "
                                 "to the raw contract")
        if not callable(vjp) or isinstance(vjp, st.SearchStrategy):
            raise GradcheckError(f"vjp: expected a callable vjp(*inputs, *cotangents) returning one gradient per input, "
                                 f"got {type(vjp).__name__} (for a torch.autograd.Function pass the class as f)")
        backward = vjp
    if operands is None:
        raise GradcheckError("operands: expected an operand-strategy factory taking dtype= and device=, or a hypothesis "
                             "strategy of input tuples; got None")
    if not isinstance(operands, st.SearchStrategy) and not callable(operands):
        raise GradcheckError(f"operands: expected an operand-strategy factory taking dtype= and device=, or a hypothesis "
                             f"strategy of input tuples; got {type(operands).__name__}")
    if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 1):
        raise GradcheckError(f"max_examples: expected a positive int, got {max_examples!r}")

    if isinstance(operands, st.SearchStrategy):
        if dtypes is not None or devices is not None:
            raise GradcheckError("dtypes/devices: a plain strategy fixes its own dtype and device; pass an operand-strategy "
                                 "factory taking dtype= and device= (such as gradcheck.strategies.linear_operands) to parametrize")
        cases = [pytest.param(None, id="operands")]
    else:
        chosen_dtypes = [_dtype(d) for d in (dtypes if dtypes is not None else ((torch.float64,) if exact else FLOATING_DTYPES))]
        if exact and any(d != torch.float64 for d in chosen_dtypes):
            raise GradcheckError(f"dtypes: exact=True draws integer-valued float64 operands; got {[str(d) for d in chosen_dtypes]}")
        chosen_devices = [_device(d) for d in (devices if devices is not None else DEFAULT_DEVICES)]
        if not chosen_dtypes or not chosen_devices:
            raise GradcheckError(f"dtypes/devices: expected at least one of each, got dtypes={dtypes!r}, devices={devices!r}")
        cases = []
        for device in chosen_devices:
            reason = _unavailable(device)
            marks = [pytest.mark.cuda] if device.startswith("cuda") else []
            if reason is not None:
                marks.append(pytest.mark.skip(reason=reason))
            cases += [pytest.param((dtype, device), id=f"{str(dtype).removeprefix('torch.')}-{device}", marks=marks)
                      for dtype in chosen_dtypes]

    checked = getattr(f, "__qualname__", repr(f))
    drawn = operands

    def run(strategy: st.SearchStrategy) -> None:
        __tracebackhide__ = True
        if _is_function(f):
            verify_function(f, strategy, max_examples=max_examples, exact=exact, **options)
        else:
            assert backward is not None  # a plain f came with a callable vjp
            verify(f, backward, strategy, max_examples=max_examples, exact=exact, **options)

    def test(gradcheck_case: tuple[torch.dtype, str] | None) -> None:
        __tracebackhide__ = True  # the failure is gradcheck's report, not this wrapper
        if isinstance(drawn, st.SearchStrategy):
            run(drawn)
        else:
            assert gradcheck_case is not None  # every case of a factory is a (dtype, device) pair
            run(_strategy(drawn, *gradcheck_case, exact))

    test.__name__ = test.__qualname__ = f"test_gradient_of_{getattr(f, '__name__', 'f')}"
    test.__doc__ = f"gradcheck: the hand-written gradient of {checked}, verified in each dtype on each device."
    return pytest.mark.parametrize(CASE_ARGUMENT, cases)(test)


__all__ = ["gradient_test"]
