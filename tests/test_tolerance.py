"""The error model: IEEE unit roundoffs, γ_k, and the bound holding on real computations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gradcheck.tolerance import gamma, rounding_bound, unit_roundoff


@pytest.mark.parametrize(("dtype", "mantissa_bits"), [(torch.float64, 53), (torch.float32, 24), (torch.float16, 11), (torch.bfloat16, 8)])
def test_unit_roundoff_is_half_an_ulp_of_one(dtype, mantissa_bits):
    assert unit_roundoff(dtype) == 2.0 ** -mantissa_bits


def test_gamma_grows_with_depth_and_has_no_bound_past_one_over_u():
    assert 0 < gamma(1, torch.float32) < gamma(10, torch.float32) < gamma(10, torch.float16)
    assert gamma(2**11, torch.float16) == float("inf")


def test_unit_roundoff_rejects_integer_dtypes():
    with pytest.raises(TypeError, match="int32"):
        unit_roundoff(torch.int32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@given(k=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_bound_holds_for_a_real_low_precision_dot_product(dtype, k, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.randn(k, generator=g).to(dtype) for _ in range(2))
    exact = (a.double() * b.double()).sum()
    computed = (a * b).sum().double()  # torch's own order and accumulation
    bound = rounding_bound((a.double().abs() * b.double().abs()).sum(), exact, k, dtype)
    assert (computed - exact).abs() <= bound
