"""The strategies reach the hard cases: empty and size-1 dims, 1-D and batched matmul operands,
non-contiguous layouts; values stay bounded and subnormal-free."""

from __future__ import annotations

import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from gradcheck import strategies as S
from gradcheck.tolerance import FLOATING_DTYPES


def reaches(strategy, predicate) -> bool:
    """Whether hypothesis can draw an example satisfying ``predicate`` from ``strategy``."""
    try:
        find(strategy, predicate)
    except NoSuchExample:
        return False
    return True


def test_reaches_can_say_no():
    assert not reaches(S.mm_operands(dtype=torch.float64, device="cpu"), lambda ab: ab[0].shape[0] > S.MAX_SIDE)


def test_matmul_shapes_include_1d_and_batched_operands():
    strategy = S.matmul_operands(dtype=torch.float64, device="cpu")
    assert reaches(strategy, lambda ab: ab[0].ndim == 1 and ab[1].ndim >= 3)
    assert reaches(strategy, lambda ab: ab[1].ndim == 1 and ab[0].ndim >= 3)
    assert reaches(strategy, lambda ab: ab[0].ndim >= 3 and ab[1].ndim >= 3 and ab[0].shape[:-2] != ab[1].shape[:-2])


def test_sizes_zero_and_one_occur():
    for size in (0, 1):
        assert reaches(S.mm_operands(dtype=torch.float64, device="cpu"), lambda ab, size=size: ab[0].shape[1] == size)


def test_non_contiguous_layouts_occur():
    layouts = {
        "expanded": lambda t: 0 in t.stride() and t.numel() > 1,
        "transposed": lambda t: t.ndim == 2 and t.numel() > 1 and t.stride()[-1] != 1 and t.stride()[-2] == 1,
        "strided": lambda t: t.ndim >= 1 and t.numel() > 1 and t.shape[-1] > 1 and t.stride()[-1] == 2,
    }
    for name, is_layout in layouts.items():
        assert reaches(S.linreg_operands(dtype=torch.float32, device="cpu"),
                       lambda ops, is_layout=is_layout: any(is_layout(t) and not t.is_contiguous() for t in ops)), name


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
