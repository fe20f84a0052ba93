"""Snapshots tell whether code wrote into a tensor: copies for small ones, fingerprints for large ones."""

from __future__ import annotations

import pytest
import torch

import gradcheck
from gradcheck.snapshot import COPY_UP_TO, Snapshot

N = COPY_UP_TO * 3 + 5  # past the copy limit, several chunks, a ragged last one


def _large(dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.randn(N, generator=g, dtype=torch.float64).to(dtype)


def _one_ulp_up(t: torch.Tensor, i: int) -> None:
    t[i] = torch.nextafter(t[i], torch.tensor(float("inf"), dtype=t.dtype))


def _swap(t: torch.Tensor, i: int, j: int) -> None:
    a, b = t[i].clone(), t[j].clone()
    t[i], t[j] = b, a


WRITES = {
    "one ulp in one element": lambda t: _one_ulp_up(t, 123),
    "one ulp in the last, ragged chunk": lambda t: _one_ulp_up(t, N - 1),
    "two elements swapped within a chunk": lambda t: _swap(t, 5, 9),
    "two elements swapped across chunks": lambda t: _swap(t, 5, 5 + COPY_UP_TO),
    "x and -x swapped within a chunk": lambda t: _swap(t, 3, 4),
    "a sign flipped": lambda t: t[17].neg_(),
    "zeroed": lambda t: t.zero_(),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("write", list(WRITES), ids=list(WRITES))
def test_a_fingerprint_sees_every_kind_of_write(write, dtype):
    t = _large(dtype)
    if write == "x and -x swapped within a chunk":
        t[4] = -t[3]  # the pair that a sum of bits alone is blind to, then swapped
    snap = Snapshot.of(t)
    assert snap.copy is None and snap.unchanged(t)
    WRITES[write](t)
    assert not snap.unchanged(t), write


def test_small_or_scattered_tensors_are_copied_and_large_ones_in_memory_order_are_not():
    assert Snapshot.of(torch.zeros(COPY_UP_TO)).copy is not None
    big = torch.zeros(300, 300, dtype=torch.float64)
    assert Snapshot.of(big).copy is None and Snapshot.of(big.t()).copy is None  # a transpose is its memory in order
    assert Snapshot.of(big[:, ::2]).copy is not None  # strided: read flat would copy it anyway
    z = torch.randn(300, 300, generator=torch.Generator().manual_seed(8), dtype=torch.complex128)
    snap = Snapshot.of(z)
    z[1, 2] = z[1, 2] * 1j
    assert snap.copy is None and not snap.unchanged(z)


def test_a_large_input_written_by_the_vjp_is_reported_and_its_values_not_compared():
    g = torch.Generator().manual_seed(3)
    A, B = (torch.randn(300, 300, generator=g, dtype=torch.float64) for _ in range(2))

    def vjp_that_scales_its_input(a, b, G):
        dA, dB = G @ b.T, a.T @ G
        a.mul_(1.0 + 2.0**-40)  # a tiny write, into the caller's tensor
        return dA, dB

    report = gradcheck.check_vjp(torch.mm, vjp_that_scales_its_input, (A, B))
    assert not report.ok and any(p.check == "mutated" and p.input_index == 0 for p in report.problems)
    assert any("values not compared" in n for n in report.notes)
    assert gradcheck.check_vjp(torch.mm, gradcheck.rules.mm_vjp, (A.clone(), B)).ok  # and the correct one passes


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_a_small_input_written_by_the_vjp_is_judged_on_its_values_as_they_were(dtype):
    """In float64 autograd's forward runs before the vjp, on the inputs' memory: a vjp that writes there
    must not change what the oracles answer (they start again from the copies)."""
    g = torch.Generator().manual_seed(4)
    A, B = torch.randn(3, 4, generator=g, dtype=dtype), torch.randn(4, 2, generator=g, dtype=dtype)

    def vjp_that_triples_its_input(a, b, G):
        dA, dB = G @ b.mT, a.mT @ G
        a.mul_(3)
        return dA, dB

    report = gradcheck.check_vjp(torch.mm, vjp_that_triples_its_input, (A.clone(), B))
    assert [p.input_index for p in report.problems if p.check == "mutated"] == [0]
    assert report.comparisons and all(c.ok for c in report.comparisons), str(report)  # right for the inputs as given


def test_two_sign_flips_in_one_chunk_and_an_in_place_transpose_are_writes():
    t = _large(torch.float64)
    t[0] = float("nan")  # the weighted value sum cannot see anything now: the bits must
    snap = Snapshot.of(t)
    t[10].neg_()
    t[20].neg_()
    assert not snap.unchanged(t)
    square = torch.randn(300, 300, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    snap = Snapshot.of(square)
    square.t_()  # the same memory, read the other way
    assert not snap.unchanged(square)


def test_a_large_output_of_small_inputs_is_checked_for_determinism_on_its_cotangent():
    """An outer product of two 300-vectors: 600 input elements, a 90,000-element cotangent (fingerprinted,
    not copied) — the determinism calls get the cotangent itself, unchanged, not a missing copy."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(300, generator=g, dtype=torch.float64), torch.randn(300, generator=g, dtype=torch.float64)
    report = gradcheck.check_vjp(torch.outer, lambda a, b, G: (G @ b, G.mT @ a), (x, y))
    assert report.ok, str(report)
    assert not any("determinism not checked" in n for n in report.notes)


def test_inputs_made_under_inference_mode_are_checked():
    g = torch.Generator().manual_seed(6)
    with torch.inference_mode():
        A, B = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    assert gradcheck.check_vjp(torch.mm, gradcheck.rules.mm_vjp, (A, B)).ok


def test_a_vjp_that_writes_into_an_input_and_restores_it_is_judged_not_crashed():
    """The write is exact and undone, so the values are as they were (not reported), but autograd's forward,
    run first on the input's memory, saw a version that is gone: the oracles start again."""
    g = torch.Generator().manual_seed(7)
    A, B = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)

    def vjp(a, b, G):
        dZ = G * (1 - torch.tanh(a @ b) ** 2)
        a.mul_(2.0)
        dB = a.mT @ dZ / 2.0
        a.div_(2.0)
        return dZ @ b.mT, dB

    report = gradcheck.check_vjp(lambda a, b: torch.tanh(a @ b), vjp, (A, B))
    assert report.ok, str(report)
