"""A failing check as a runnable script: the same inputs, with their memory layouts, and the same call.

Each tensor is rebuilt from the span of storage it views, with its strides and offset, so a bug
that shows only for a transposed, strided or expanded input replays. Small tensors are written as
literals; larger ones are saved with ``torch.save`` to a file the script loads and the report names.
``f`` and the VJP are imported by their module path when that works; otherwise the script says
what to fill in.
"""

from __future__ import annotations

import importlib
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

Tensor = torch.Tensor
LITERAL_MAX_ELEMENTS = 64


PUBLIC_HOMES = ("torch", "torch.nn.functional", "torch.linalg", "torch.special")  # where torch's builtins are found


def importable(obj: Any) -> tuple[str, str] | None:
    """``(module, qualified name)`` when ``from module import name`` gives back ``obj``."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not qualname or "<" in qualname or module == "__main__":
        return None
    candidates = [(module, qualname)] if module else []
    candidates += [(home, getattr(obj, "__name__", "")) for home in PUBLIC_HOMES]
    for home, name in candidates:
        if not home or not name:
            continue
        try:
            found: Any = importlib.import_module(home)
            for part in name.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError):
            continue
        if found is obj:
            return home, name
    return None


def _storage_span(t: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """The elements of storage ``t`` views, from its offset on, and its strides into them."""
    if t.numel() == 0:
        return torch.zeros(0, dtype=t.dtype), tuple(t.stride())
    extent = 1 + sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
    span = torch.as_strided(t.detach(), (extent,), (1,), t.storage_offset()).cpu().clone()
    return span, tuple(t.stride())


def _literal(values: Tensor) -> str:
    text = repr(values.to(torch.float64).tolist()) if values.dtype.is_floating_point else repr(values.tolist())
    return text.replace("nan", "float('nan')").replace("inf", "float('inf')")


class Replay:
    """Builds the script; ``tensors`` holds what did not fit as literals (saved when the script is made)."""

    def __init__(self) -> None:
        self.saved: dict[str, Tensor] = {}

    def value(self, name: str, v: Any) -> str:
        if not isinstance(v, Tensor):
            return repr(v)
        span, stride = _storage_span(v)
        shape, device = tuple(v.shape), str(v.device)
        if span.numel() <= LITERAL_MAX_ELEMENTS:
            base = f"torch.tensor({_literal(span)}, dtype={v.dtype})"
        else:
            key = f"t{len(self.saved)}"
            self.saved[key] = span
            base = f"saved[{key!r}]"
        contiguous = v.is_contiguous() and span.numel() == v.numel()
        built = f"{base}.reshape({shape})" if contiguous else f"{base}.as_strided({shape}, {stride})"
        return built if device == "cpu" else f"{built}.to({device!r})"

    def script(self, call: str, callables: Sequence[tuple[str, Callable[..., Any]]], inputs: Sequence[Any], names: Sequence[str],
               cotangents: Sequence[Any]) -> str:
        lines = ["import torch", "import gradcheck"]
        for alias, obj in callables:
            where = importable(obj)
            if where is not None:
                module, qualname = where
                head, _, rest = qualname.partition(".")
                if rest:
                    lines += [f"from {module} import {head}", f"{alias} = {qualname}"]
                else:
                    lines.append(f"from {module} import {head}" + (f" as {alias}" if head != alias else ""))
            else:
                lines.append(f"{alias} = ...  # fill in: {getattr(obj, '__qualname__', obj)!s} from "
                             f"{getattr(obj, '__module__', '?')} is not importable by name")
        body = [f"    {self.value(n, v)},  # {n}" for n, v in zip(names, inputs)]
        cots = [self.value(f"cotangent{k}", g) for k, g in enumerate(cotangents)]
        if self.saved:
            directory = Path(tempfile.mkdtemp(prefix="gradcheck-replay-"))
            path = directory / "tensors.pt"
            torch.save(self.saved, path)
            lines.append(f"saved = torch.load({str(path)!r})  # the larger inputs")
        lines += ["inputs = (", *body, ")",
                  f"cotangent = {cots[0] if len(cots) == 1 else '(' + ', '.join(cots) + ',)'}",
                  f"print({call})"]
        return "\n".join(lines)


def reproducer(kind: str, callables: Sequence[tuple[str, Callable[..., Any]]], inputs: Sequence[Any], names: Sequence[str],
               cotangents: Sequence[Any], options: dict[str, Any]) -> str:
    """The script replaying ``gradcheck.<kind>(…)`` on these values; ``options`` are written as keywords."""
    args = ", ".join(alias for alias, _ in callables)
    keywords = "".join(f", {k}={v!r}" for k, v in options.items() if v is not None and not (isinstance(v, float) and math.isnan(v)))
    call = f"gradcheck.{kind}({args}, inputs, cotangent=cotangent, names={tuple(names)!r}{keywords})"
    return Replay().script(call, callables, inputs, names, cotangents)
