"""Errors known to be zero — an input's, a constant's, an exact op's — are not allocated until needed,
and never stand for an error that is not zero: writing through a view withdraws the knowledge."""

from __future__ import annotations

import math

import torch

from gradcheck.rounding import RunningError, _lazy

F64 = torch.float64


def _traced(fn, *inputs):
    mode = RunningError()
    mode.watch(*inputs)
    with mode:
        out = fn(*inputs)
    return out, mode


def test_an_inputs_transpose_costs_no_zeros_and_its_product_has_its_bound():
    g = torch.Generator().manual_seed(0)
    A, G = torch.randn(6, 5, generator=g, dtype=F64), torch.randn(6, 4, generator=g, dtype=F64)
    dB, mode = _traced(lambda a, gg: a.t() @ gg, A, G)
    assert _lazy(mode.info(A).error)  # the transpose viewed the input's zeros without making them
    exact = A.t() @ G  # float64 both ways: the bound is γ_k of the magnitudes, positive everywhere
    assert bool((mode.error(dB) > 0).all()) and torch.equal(dB, exact)


def test_a_zeros_buffer_filled_through_a_view_carries_what_was_written():
    x = torch.tensor([1.0, 3.0], dtype=torch.float32)

    def fill(t):
        out = torch.zeros(2, 2, dtype=torch.float32)
        out[0] = t / 3  # rounds in float32
        return out

    out, mode = _traced(fill, x)
    e = mode.error(out)
    assert bool((e[0] > 0).any()) and torch.equal(e[1], torch.zeros(2, dtype=F64))


def test_an_input_written_through_a_view_leaves_no_bound_claimed_for_its_other_views():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float32)

    def overwrite(t):
        row, col = t[0], t[:, 0]  # two views of the input, taken before the write
        row.add_(0.1)  # rounds in float32, written into the input
        return col * 1.0

    out, mode = _traced(overwrite, x)
    assert bool(torch.isinf(mode.error(out)).all())  # unknown, said so; never a zero that is wrong


def test_an_exact_op_on_inputs_is_a_lazy_zero():
    x = torch.tensor([1.5, -2.0], dtype=F64)
    out, mode = _traced(lambda t: -t, x)
    assert _lazy(mode.info(out).error) and torch.equal(mode.error(out), torch.zeros(2, dtype=F64))
    assert not math.isinf(float(mode.error(out).max()))
