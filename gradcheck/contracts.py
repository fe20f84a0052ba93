"""The structure of a hand-written backward's output, under the two contracts PyTorch users meet.

*Raw*: exactly one gradient per input (PyTorch lets a backward add trailing ``None``s), each with the
input's exact shape, dtype and device, ``None`` for an input that is not differentiated — what a manual
training loop like the seed's needs (there an unreduced ``db`` broadcasts ``b`` to ``(n, 1)``).

*Engine*: what ``torch.autograd`` accepts and silently repairs — a gradient whose shape the input
expands to is summed back (``sum_to``), a wrong dtype is cast. A ``Function`` passes under the engine
contract with warnings that say what the engine did; ``strict=True`` holds it to the raw one.

Either way the value of every usable gradient is compared after that normalization, so a wrong value
is never hidden behind a shape finding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gradcheck.arguments import Arguments
from gradcheck.report import Problem
from gradcheck.tolerance import differentiable_dtype, gamma

Tensor = torch.Tensor
CONTRACTS = ("raw", "engine")


@dataclass
class Structure:
    """Per differentiated input: the gradient as the engine would see it (None: missing or unusable)
    and the bound on its rounding carried through that normalization."""

    grads: dict[int, Tensor | None] = field(default_factory=dict)
    failures: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    unusable: set[int] = field(default_factory=set)


def count_problem(grads: Any, args: Arguments) -> Problem | None:
    """One gradient per input; a longer tuple only with ``None``s at the end (as PyTorch allows)."""
    n = len(args.values)
    if isinstance(grads, Tensor) and n == 1:
        return None
    if not isinstance(grads, (tuple, list)):
        return Problem("count", f"a tuple of {n} gradients (one per input)", f"a {type(grads).__name__}")
    if len(grads) < n:
        return Problem("count", f"{n} gradients (one per input: {', '.join(args.names)})", f"{len(grads)}")
    extra = [k for k in range(n, len(grads)) if grads[k] is not None]
    if extra:
        return Problem("count", f"{n} gradients, or trailing Nones after them",
                       f"{len(grads)}, with a {type(grads[extra[0]]).__name__} at position {extra[0]}")
    return None


def as_tuple(grads: Any, args: Arguments) -> tuple[Any, ...]:
    return (grads,) if isinstance(grads, Tensor) else tuple(grads)[: len(args.values)]


def _expandable(small: Sequence[int], large: Sequence[int]) -> bool:
    """Whether ``small`` broadcasts to exactly ``large`` (the engine's ``is_expandable_to``)."""
    if len(small) > len(large):
        return False
    return all(s == b or s == 1 for s, b in zip(reversed(small), reversed(large)))


def check_structure(grads: tuple[Any, ...], args: Arguments, contract: str) -> Structure:
    """Judge each gradient's type, shape, dtype and device under ``contract``; normalize for values."""
    found = Structure()
    for i, (name, x) in enumerate(zip(args.names, args.values)):
        g = grads[i]
        if i not in args.diff:
            if g is not None:
                what = f"{type(x).__name__}" if not isinstance(x, Tensor) else f"{x.dtype} tensor"
                found.failures.append(Problem("type", f"None (this input, a {what}, is not differentiated)",
                                              type(g).__name__, i, name))
            continue
        if g is None:
            found.grads[i] = None
            continue
        if not isinstance(g, Tensor):
            found.failures.append(Problem("type", "a torch.Tensor or None", type(g).__module__ + "." + type(g).__qualname__, i, name))
            found.unusable.add(i)
            continue
        normalized = g.detach()
        if tuple(g.shape) != tuple(x.shape):
            if _expandable(tuple(x.shape), tuple(g.shape)):
                normalized = normalized.sum_to_size(x.shape)
                _deviation(found, contract, Problem("shape", f"{tuple(x.shape)} (as the input)",
                                                    f"{tuple(g.shape)}, which the engine sums to {tuple(x.shape)}", i, name))
            else:
                found.failures.append(Problem("shape", f"{tuple(x.shape)} (as the input)", f"{tuple(g.shape)}", i, name))
                found.unusable.add(i)
                continue
        if g.dtype != x.dtype:
            _deviation(found, contract, Problem("dtype", f"{x.dtype} (as the input)", f"{g.dtype}, which the engine casts to {x.dtype}", i, name))
        if g.device != x.device:
            found.failures.append(Problem("device", f"{x.device} (as the input)", f"{g.device}", i, name))
            if g.device.type == "meta":  # no values to compare
                found.unusable.add(i)
                continue
            normalized = normalized.to(x.device)
        found.grads[i] = normalized
    return found


def _deviation(found: Structure, contract: str, problem: Problem) -> None:
    (found.failures if contract == "raw" else found.warnings).append(problem)


def normalized_error(error: Tensor, grad: Tensor, shape: Sequence[int]) -> Tensor:
    """The bound on a gradient summed back to ``shape`` the way the engine does: the summands'
    bounds summed, plus the rounding of that sum."""
    if tuple(error.shape) == tuple(shape):
        return error
    terms = max(1, grad.numel() // max(1, math.prod(shape)))
    magnitude = grad.detach().abs().to(torch.float64).sum_to_size(shape)  # moduli, for a complex gradient
    rounding = gamma(terms, grad.dtype if differentiable_dtype(grad.dtype) else torch.float64)
    return error.to(torch.float64).sum_to_size(shape) + rounding * magnitude
