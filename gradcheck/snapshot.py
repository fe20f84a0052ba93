"""What a tensor held, to tell afterwards whether code wrote into it.

Small tensors are copied: the check reruns the vjp on the copies (determinism) and hands them to the
oracles when the vjp did write into its inputs. Large ones — where a copy of every input and cotangent
would be a large part of what a check holds — keep a fingerprint instead, computed in chunks without
a second copy: a wrapping 64-bit sum of each element's bits times an odd weight (any single changed
bit changes it; high bits are folded into low ones first, so that two sign flips do not cancel), with
the chunks chained through a multiplicative hash, beside a float64 weighted sum of the values. A write
that agrees with both is a coincidence of hash collisions; the layout (shape, strides) is compared too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

Tensor = torch.Tensor
COPY_UP_TO = 1 << 16  # elements: copies below, fingerprints above
CHUNK = 1 << 16
_MIX = 0x9E3779B97F4A7C15  # the chunks' hash multiplier (odd)
_BITS = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.uint8}


@functools.cache
def _weights(device: torch.device) -> tuple[Tensor, Tensor]:
    """Odd 64-bit weights for the bits, positive float64 weights for the values (fixed, one chunk long)."""
    generator = torch.Generator().manual_seed(0x5EED)
    odd = torch.randint(-(2**62), 2**62, (CHUNK,), generator=generator, dtype=torch.int64) * 2 + 1
    scale = torch.rand(CHUNK, generator=generator, dtype=torch.float64) + 1.0
    return odd.to(device), scale.to(device)


def _real_view(t: Tensor) -> Tensor:
    flat = t.detach()
    if flat.is_complex():
        flat = torch.view_as_real(flat.resolve_conj())
    if flat.is_conj() or flat.is_neg():
        flat = flat.resolve_conj().resolve_neg()
    return flat.reshape(-1)


def _in_memory_order(t: Tensor) -> Tensor | None:
    """``t`` or its transpose, whichever is contiguous (the same memory read in order); None for other layouts."""
    if t.is_contiguous():
        return t
    if t.ndim >= 2 and t.mT.is_contiguous():
        return t.mT
    return None


def fingerprint(t: Tensor) -> tuple[int, float]:
    """The bit hash and the weighted value sum of ``t`` (contiguous: one pass over its memory)."""
    flat = _real_view(t)
    bits = flat.view(_BITS[flat.element_size()]) if flat.dtype != torch.bool else flat.view(torch.uint8)
    odd, scale = _weights(flat.device)
    mixed, total = 0, 0.0
    for start in range(0, bits.numel(), CHUNK):
        stop = min(start + CHUNK, bits.numel())
        chunk_bits = bits[start:stop].to(torch.int64)
        chunk_bits = chunk_bits ^ (chunk_bits >> 29)  # high bits (a sign) folded into low ones: flips do not cancel in pairs
        part = int((chunk_bits * odd[: stop - start]).sum())  # wraps modulo 2⁶⁴, as intended
        mixed = ((mixed ^ (part & (2**64 - 1))) * _MIX) & (2**64 - 1)
        if flat.is_floating_point():
            total += float(torch.dot(flat[start:stop].to(torch.float64), scale[: stop - start]))
    return mixed, total


@dataclass
class Snapshot:
    """A tensor's values as they were: ``copy`` for a small one (or one laid out so that reading it flat
    would copy it anyway), else its fingerprint."""

    copy: Tensor | None
    print_: tuple[int, float] | None
    layout: tuple[tuple[int, ...], tuple[int, ...], int] = ((), (), 0)  # shape, strides, offset (a t_() is a write too)

    @classmethod
    def of(cls, t: Tensor) -> Snapshot:
        memory = _in_memory_order(t)
        layout = (tuple(t.shape), tuple(t.stride()), int(t.storage_offset()))
        if t.numel() <= COPY_UP_TO or memory is None:
            return cls(t.detach().clone(), None, layout)
        return cls(None, fingerprint(memory), layout)

    def unchanged(self, t: Tensor) -> bool:
        if (tuple(t.shape), tuple(t.stride()), int(t.storage_offset())) != self.layout:
            return False
        if self.copy is not None:
            return bool(torch.equal(t, self.copy))
        memory = _in_memory_order(t)
        if memory is None:  # its layout changed (set_, resize_): written to
            return False
        seen = fingerprint(memory)
        return seen[0] == self.print_[0] and (seen[1] == self.print_[1] or seen[1] != seen[1])  # type: ignore[index]  # print_ is set when copy is not
