"""Unit roundoffs, γ_k and its probabilistic variant."""

from __future__ import annotations

import math

import pytest
import torch

from gradcheck.tolerance import failure_probability, gamma, probabilistic_gamma, reference_dtype, unit_roundoff


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


def test_gamma_is_k_u_over_one_minus_k_u_where_k_u_is_not_small():
    # float16: u = 2⁻¹¹, so k = 512 gives k·u = 1/4 and γ = (1/4)/(3/4) = 1/3, and k = 1024 gives 1/2 → 1
    # (Higham §3.1); at these sizes k·u/(1 + k·u), k·u·(1 − k·u) or k·u/(2 − k·u) are off by 20% or more.
    assert gamma(512, torch.float16) == pytest.approx(1 / 3, rel=1e-15, abs=0)
    assert gamma(1024, torch.float16) == 1.0
    assert gamma(1, torch.bfloat16) == pytest.approx(1 / 255, rel=1e-15, abs=0)  # u = 2⁻⁸: (1/256)/(255/256)


def test_probabilistic_gamma_matches_higham_and_mary_where_the_second_order_term_matters():
    # float16, k = 2²⁰, λ = 1: λ·√k·u = 2¹⁰·2⁻¹¹ = 1/2 and k·u²/(1 − u) = (1/4)/(1 − 2⁻¹¹); the second
    # term is half the first here, so its sign and its denominator show in the result.
    u = 2.0**-11
    assert probabilistic_gamma(2**20, torch.float16, 1.0) == pytest.approx(math.expm1(0.5 + 0.25 / (1 - u)), rel=1e-12)
    assert probabilistic_gamma(2**20, torch.float16, 0.0) == pytest.approx(math.expm1(0.25 / (1 - u)), rel=1e-12)


def test_failure_probability_depends_on_the_dtypes_unit_roundoff():
    # bfloat16, u = 2⁻⁸: 2·exp(−λ²(1 − u)²/2) at λ = 3 is measurably larger than at u = 0 (float64 ≈ 0)
    u = 2.0**-8
    expected = 2 * math.exp(-9 * (1 - u) ** 2 / 2)
    assert failure_probability(3.0, torch.bfloat16) == pytest.approx(expected, rel=1e-12)
    assert failure_probability(3.0, torch.bfloat16) > failure_probability(3.0, torch.float64) * 1.03


@pytest.mark.parametrize(("dtype", "reference"), [(torch.float16, torch.float64), (torch.float64, torch.float64),
                                                  (torch.complex64, torch.complex128), (torch.complex128, torch.complex128)])
def test_reference_dtype_is_float64_or_complex128(dtype, reference):
    assert reference_dtype(dtype) is reference
