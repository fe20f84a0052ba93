"""What a check is called with: inputs (tensors and anything else), their names, the outputs.

A function's arguments may be floating-point or complex tensors (differentiated; complex ones under
PyTorch's convention, see ``gradcheck.oracles``), or anything else PyTorch lets a forward take —
integer class targets, bool masks, floats, ints, ``None`` — passed through as given, with ``None`` as
their gradient. Its outputs may be one tensor or a tuple; each floating or complex output gets a
cotangent. Internally the oracles see one function of the differentiated inputs alone whose output
is every such output flattened and concatenated (``Arguments.flat``), so one machinery serves all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from gradcheck.errors import GradcheckError
from gradcheck.tolerance import differentiable_dtype

Tensor = torch.Tensor


def name_of(obj: Any) -> str:
    return getattr(obj, "__name__", None) or getattr(obj, "__qualname__", None) or type(obj).__name__


def differentiable(value: Any) -> bool:
    return isinstance(value, Tensor) and differentiable_dtype(value.dtype)


@dataclass(frozen=True)
class Arguments:
    """The inputs as given, their names, and which are differentiated (floating-point and complex tensors)."""

    values: tuple[Any, ...]
    names: tuple[str, ...]
    diff: tuple[int, ...]

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        """The differentiated inputs, in order."""
        return tuple(self.values[i] for i in self.diff)

    @property
    def diff_names(self) -> tuple[str, ...]:
        return tuple(self.names[i] for i in self.diff)

    def with_tensors(self, tensors: Sequence[Tensor]) -> tuple[Any, ...]:
        """The full argument tuple with the differentiated inputs replaced."""
        values = list(self.values)
        for i, t in zip(self.diff, tensors):
            values[i] = t
        return tuple(values)

    def flat(self, f: Callable[..., Any]) -> Callable[..., Tensor]:
        """``f`` as a function of the differentiated inputs alone, returning its floating outputs
        flattened and concatenated (what the oracles differentiate)."""

        def flat_f(*tensors: Tensor) -> Tensor:
            return flatten_outputs(f(*self.with_tensors(tensors)))

        flat_f.__name__ = name_of(f)
        return flat_f


def validate_inputs(inputs: Any, names: Sequence[str] | None) -> Arguments:
    if isinstance(inputs, Tensor) or not isinstance(inputs, (tuple, list)):
        raise GradcheckError(f"inputs: expected a tuple of inputs (tensors and other arguments), got {type(inputs).__name__}")
    names = tuple(f"input{i}" for i in range(len(inputs))) if names is None else tuple(names)
    if len(names) != len(inputs):
        raise GradcheckError(f"names: expected {len(inputs)} names (one per input), got {len(names)}")
    diff = tuple(i for i, v in enumerate(inputs) if differentiable(v))
    if not diff:
        raise GradcheckError("inputs: expected at least one floating-point tensor (or complex one) to differentiate, got none")
    tensors = [(names[i], inputs[i]) for i in diff]
    devices = {t.device for _, t in tensors}
    if len(devices) > 1:
        raise GradcheckError("inputs: expected all on one device, got " + ", ".join(f"{n} on {t.device}" for n, t in tensors))
    dtypes = {t.dtype for _, t in tensors}
    if len(dtypes) > 1:
        raise GradcheckError("inputs: expected one dtype for all floating and complex inputs, got " + ", ".join(f"{n} {t.dtype}" for n, t in tensors))
    for i in diff:
        t, where = inputs[i], f"input {i} ({names[i]})"
        if t.device.type == "meta":
            raise GradcheckError(f"{where}: expected a tensor with values, got one on the meta device")
        bad = ~torch.isfinite(t.detach())
        if bad.any():
            index = tuple(int(j) for j in bad.nonzero()[0])
            raise GradcheckError(f"{where}: expected finite values, got {t[index].item()} at index {index}")
    values = tuple(v.detach() if isinstance(v, Tensor) else v for v in inputs)
    return Arguments(values, names, diff)


def require_real(args: Arguments, what: str) -> None:
    """Refuse complex inputs where a check does not take them yet (forward mode, second order)."""
    for i in args.diff:
        if args.values[i].is_complex():
            raise GradcheckError(f"input {i} ({args.names[i]}): {what} takes real floating-point tensors only "
                                 f"(complex ones go to check_vjp, verify, check_function), got {args.values[i].dtype}")


def output_tensors(out: Any) -> tuple[Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def floating_outputs(out: Any) -> tuple[Tensor, ...]:
    return tuple(o for o in output_tensors(out) if isinstance(o, Tensor) and differentiable_dtype(o.dtype))


def flatten_outputs(out: Any) -> Tensor:
    parts = floating_outputs(out)
    if len(parts) == 1:
        return parts[0]
    return torch.cat([p.reshape(-1) for p in parts]) if parts else torch.zeros(0)


def call_forward(f: Callable[..., Any], args: Sequence[Any], what: str = "f") -> tuple[Tensor, ...]:
    """Run ``f`` without grad; its outputs (one tensor or a tuple), with clear errors for anything else."""
    try:
        with torch.no_grad():
            out = f(*args)
    except Exception as exc:  # the user's function failing is their mistake, reported as such
        raise GradcheckError(f"{what} ({name_of(f)}) raised {type(exc).__name__}: {exc}") from exc
    outs = output_tensors(out)
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise GradcheckError(f"{what} ({name_of(f)}): expected to return a torch.Tensor or a tuple of them, "
                                 f"got {type(o).__name__}" + (f" as output {k}" if len(outs) > 1 else ""))
    if not floating_outputs(out):
        raise GradcheckError(f"{what} ({name_of(f)}): expected a floating-point or complex output, got "
                             + ", ".join(str(o.dtype) for o in outs))
    return outs
