"""Unit roundoffs, γ_k and its probabilistic variant."""

from __future__ import annotations

import math

import pytest
import torch

from gradcheck.tolerance import failure_probability, gamma, probabilistic_gamma, unit_roundoff


@pytest.mark.parametrize(("dtype", "mantissa_bits"), [(torch.float64, 53), (torch.float32, 24), (torch.float16, 11), (torch.bfloat16, 8)])
def test_unit_roundoff_is_half_an_ulp_of_one(dtype, mantissa_bits):
    assert unit_roundoff(dtype) == 2.0 ** -mantissa_bits


def test_gamma_grows_with_length_and_is_infinite_not_nan_past_one_over_u():
    assert 0 < gamma(1, torch.float32) < gamma(10, torch.float32) < gamma(10, torch.float16)
    assert gamma(2**11, torch.float16) == math.inf
    assert gamma(2**12, torch.bfloat16) == math.inf


def test_unit_roundoff_rejects_integer_dtypes():
    with pytest.raises(TypeError, match="int32"):
        unit_roundoff(torch.int32)


def test_probabilistic_gamma_grows_like_the_square_root_of_the_length():
    small, large = probabilistic_gamma(100, torch.float64, 5.0), probabilistic_gamma(10_000, torch.float64, 5.0)
    assert large / small == pytest.approx(10.0, rel=1e-6)
    assert probabilistic_gamma(10_000, torch.float64, 5.0) < gamma(10_000, torch.float64) / 10


def test_failure_probability_of_the_probabilistic_bound():
    assert failure_probability(5.0, torch.float64) == pytest.approx(2 * math.exp(-12.5))
    assert failure_probability(0.0, torch.float64) == 1.0
