"""The strategies reach the hard cases: empty and size-1 dims, 1-D and batched matmul operands,
non-contiguous layouts; values stay bounded and subnormal-free."""

from __future__ import annotations

import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st

from gradcheck import strategies as S
from gradcheck.tolerance import FLOATING_DTYPES


def test_matmul_shapes_include_1d_and_batched_operands():
    one_d = find(S.matmul_operands(dtype=torch.float64, device="cpu"), lambda ab: ab[0].ndim == 1 and ab[1].ndim >= 3)
    assert one_d[0].ndim == 1
    broadcast = find(S.matmul_operands(dtype=torch.float64, device="cpu"),
                     lambda ab: ab[0].ndim >= 3 and ab[1].ndim >= 3 and ab[0].shape[:-2] != ab[1].shape[:-2])
    assert torch.matmul(*broadcast).ndim >= 3


def test_sizes_zero_and_one_occur():
    assert find(S.mm_operands(dtype=torch.float64, device="cpu"), lambda ab: ab[0].shape[1] == 0)[0].numel() == 0
    assert 1 in find(S.mm_operands(dtype=torch.float64, device="cpu"), lambda ab: 1 in ab[0].shape)[0].shape


def test_non_contiguous_layouts_occur():
    layouts = {
        "expanded": lambda t: 0 in t.stride() and t.numel() > 1,
        "transposed": lambda t: t.ndim == 2 and t.numel() > 1 and t.stride()[-1] != 1 and t.stride()[-2] == 1,
        "strided": lambda t: t.ndim >= 1 and t.numel() > 1 and t.shape[-1] > 1 and t.stride()[-1] == 2,
    }
    for name, is_layout in layouts.items():
        found = find(S.linreg_operands(dtype=torch.float32, device="cpu"), lambda ops: any(is_layout(t) for t in ops))
        assert any(is_layout(t) and not t.is_contiguous() for t in found), name


@given(S.linreg_operands(device="cpu"))
def test_operands_share_a_dtype_and_stay_finite_and_normal(ops):
    assert len({t.dtype for t in ops}) == 1
    for t in ops:
        assert torch.isfinite(t).all()
        tiny = torch.finfo(t.dtype).tiny
        assert ((t == 0) | (t.abs() >= tiny)).all()


@given(S.mean_operands(device="cpu", exact=True))
def test_exact_operands_are_small_integers_and_means_divide_exactly(ops):
    (A,) = ops
    assert A.dtype == torch.float64 and torch.equal(A, A.round()) and (A.numel() == 0 or A.abs().max() <= S.EXACT_RANGE)
    assert A.shape[-1] in (1, 2, 4)


@settings(max_examples=30)
@given(st.data())
def test_cotangents_match_their_output(data):
    out = torch.zeros(data.draw(st.sampled_from([(), (3,), (2, 0)])), dtype=data.draw(st.sampled_from(FLOATING_DTYPES)))
    G = data.draw(S.cotangents(out))
    assert G.shape == out.shape and G.dtype == out.dtype


def test_exact_operands_refuse_a_narrow_dtype():
    import pytest

    with pytest.raises(ValueError, match="float64"):
        S.mm_operands(dtype=torch.float32, exact=True)
