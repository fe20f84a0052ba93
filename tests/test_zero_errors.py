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


def test_new_zeros_made_from_an_input_are_their_own_and_filling_them_leaves_the_input_exact():
    """A blocked kernel's accumulator: new zeros of an input's kind, filled tile by tile through views.
    Writing into them is no write into the input (whose views must keep a zero error, not lose it)."""
    g = torch.Generator().manual_seed(1)
    A, G = torch.randn(3, 17, generator=g, dtype=F64), torch.randn(3, 2, generator=g, dtype=F64)

    def blocked(a, gg):
        X = a.mT
        out = X.new_zeros(17, 2)
        for start in range(0, 17, 8):
            out[start:start + 8] += X[start:start + 8] @ gg
        return out

    out, mode = _traced(blocked, A, G)
    e = mode.error(out)
    assert bool(torch.isfinite(e).all()) and float(e.max()) < 1e-14 and bool((e > 0).all())


def test_an_accumulating_index_put_bounds_the_rounding_of_its_sums():
    """index_put_(…, accumulate=True), as an embedding's backward adds rows: the sums round (float32 here),
    and the bound covers what they lost against exact arithmetic — where a plain move would claim none."""
    from fractions import Fraction

    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, generator=g, dtype=torch.float32) * 3
    idx = torch.arange(40) % 3

    def accumulate(t):
        buf = torch.zeros(3, dtype=torch.float32)
        buf.index_put_((idx,), t, accumulate=True)  # the inputs themselves: the sums are all that rounds
        return buf

    out, mode = _traced(accumulate, x)
    exact = [sum(Fraction(float(v)) for v, i in zip(x.tolist(), idx.tolist()) if i == j) for j in range(3)]
    lost = [abs(Fraction(float(o)) - e) for o, e in zip(out.tolist(), exact)]
    bound = mode.error(out).tolist()
    assert all(float(l_) <= b for l_, b in zip(lost, bound)) and any(l_ > 0 for l_ in lost), (lost, bound)


def test_an_out_variant_writing_into_a_view_carries_its_rounding_into_the_buffer():
    """``torch.mul(a, b, out=buf[:n])`` — a backward filling a preallocated gradient: the product's
    rounding (float32) must reach the buffer's bound, through the view it was written into."""
    from fractions import Fraction

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(6, generator=g), torch.randn(6, generator=g)

    def fill(a, b):
        buf = torch.zeros(12)
        torch.mul(a / 3, b, out=buf[:6])
        torch.div(a, 7, out=buf[6:])
        return buf

    out, mode = _traced(fill, x, y)
    exact = [Fraction(float(a)) / 3 * Fraction(float(b)) for a, b in zip(x.tolist(), y.tolist())] + \
        [Fraction(float(a)) / 7 for a in x.tolist()]
    lost = [abs(Fraction(float(o)) - e) for o, e in zip(out.tolist(), exact)]
    bound = mode.error(out).tolist()
    assert all(float(l_) <= b for l_, b in zip(lost, bound)) and sum(l_ > 0 for l_ in lost) >= 6, (lost, bound)
