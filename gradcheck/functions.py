"""``torch.autograd.Function`` as the checks see it: its forward as plain differentiable code (for the
oracles, which must never call its backward) and its backward's raw return value (for the contracts).

The whole Function contract is honoured: non-tensor arguments get ``None``, a backward may return
trailing ``None``s, ``ctx.needs_input_grad`` is set from which inputs are differentiated, old-style
(``forward(ctx, ...)``) and ``setup_context``-style Functions both work, and a Function with several
outputs receives one gradient per output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeGuard

import torch

from gradcheck.arguments import differentiable, output_tensors
from gradcheck.errors import GradcheckError

Tensor = torch.Tensor
FunctionType = type[torch.autograd.Function]


class _ForwardContext:
    """Stands in for ``ctx`` when a Function's forward is run as plain code for the oracles."""

    saved_tensors: tuple[Tensor, ...] = ()
    needs_input_grad: tuple[bool, ...] = ()
    materialize_grads = True

    def save_for_backward(self, *tensors: Tensor) -> None:
        self.saved_tensors = tensors

    def save_for_forward(self, *tensors: Tensor) -> None: ...

    def mark_dirty(self, *args: Any) -> None: ...

    def mark_non_differentiable(self, *args: Any) -> None: ...

    def set_materialize_grads(self, value: bool) -> None: ...


def is_function(obj: Any) -> TypeGuard[FunctionType]:
    return isinstance(obj, type) and issubclass(obj, torch.autograd.Function)


def require_function(function: Any) -> FunctionType:
    if not is_function(function):
        raise GradcheckError(f"function: expected a torch.autograd.Function subclass, got {function!r}")
    return function


def forward_body(function: FunctionType) -> Callable[..., Any]:
    """The Function's forward as plain differentiable code, so the oracles never call its backward."""
    setup_style = function.setup_context is not torch.autograd.Function.setup_context

    def forward(*args: Any) -> Any:
        if setup_style:
            return function.forward(*args)
        ctx = _ForwardContext()
        ctx.needs_input_grad = tuple(differentiable(a) for a in args)
        return function.forward(ctx, *args)

    forward.__name__ = f"{function.__qualname__}.forward"
    return forward


def raw_backward(function: FunctionType, count: int) -> Callable[..., Any]:
    """``backward(*inputs, *cotangents)``: the Function applied to ``count`` inputs (floating ones as
    leaves that require grad), then its node applied to one gradient per output; the backward's own
    return value, before the engine reshapes or casts anything."""

    def backward(*args: Any) -> Any:
        inputs, cotangents = args[:count], args[count:]
        leaves = [a.detach().requires_grad_(True) if differentiable(a) else a for a in inputs]
        with torch.enable_grad():
            out = function.apply(*leaves)  # type: ignore[no-untyped-call]  # torch's Function.apply has no annotations
        outs = output_tensors(out)
        node = next((o.grad_fn for o in outs if isinstance(o, Tensor) and o.grad_fn is not None), None)
        if node is None:
            raise GradcheckError(f"{function.__name__}.apply: expected an output with a grad_fn, got none")
        grads = [g if g is not None else (torch.zeros_like(o) if differentiable(o) else None)
                 for o, g in zip(outs, cotangents)]
        with torch.no_grad():
            raw = node.apply(*grads)  # type: ignore[attr-defined]  # grad_fn nodes have apply; the abstract graph.Node does not declare it
        return raw if isinstance(raw, tuple) else (raw,)

    backward.__qualname__ = f"{function.__qualname__}.backward"
    backward.__name__ = "backward"
    return backward
