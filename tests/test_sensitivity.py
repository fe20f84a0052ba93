"""The sensitivity targets of the core issue, on typical (seeded, 4×4) operands: a relative error of
1e-9 in float64, 1e-4 in float32, 1e-2 in float16 and 5e-2 in bfloat16 is caught in every input of
every example, while the unperturbed rule passes on the same examples."""

from __future__ import annotations

import warnings

import pytest
import torch

import gradcheck
from gradcheck.rules import rule_named
from gradcheck.sensitivity import as_function, perturbed_vjp, seeded_operands

TARGETS = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}
SHAPES = {
    "mm": [(4, 4), (4, 4)],
    "matmul": [(2, 4, 4), (4, 4)],  # B broadcast over the batch
    "linear": [(4, 4), (3, 4), (3,)],
    "linear_regression": [(8, 3), (3, 1), (1,), (8, 1)],
}
SEEDS = range(4)


def _cases():
    for name in SHAPES:
        for dtype in TARGETS:
            yield pytest.param(name, dtype, id=f"{name}-{str(dtype).removeprefix('torch.')}")


@pytest.mark.parametrize(("name", "dtype"), _cases())
def test_target_relative_error_is_caught_and_correct_rule_passes(name, dtype):
    rule = rule_named(name)
    for seed in SEEDS:
        inputs = seeded_operands(SHAPES[name], dtype, seed)
        assert gradcheck.check_vjp(rule.forward, rule.vjp, inputs, **rule.check_options()).ok
        for index, input_name in enumerate(rule.input_names):
            report = gradcheck.check_vjp(rule.forward, perturbed_vjp(rule.vjp, index, TARGETS[dtype]), inputs, **rule.check_options())
            assert report.failing_inputs == {input_name}, str(report)


@pytest.mark.parametrize("n", [4, 16, 64])  # 256 and beyond: benches/sensitivity.py
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_power_on_a_default_mm_check_at_every_size(dtype, n):
    rule = rule_named("mm")
    inputs = seeded_operands([(n, n), (n, n)], dtype, n)
    assert gradcheck.check_vjp(rule.forward, rule.vjp, inputs).ok
    for index in range(2):
        assert not gradcheck.check_vjp(rule.forward, perturbed_vjp(rule.vjp, index, TARGETS[dtype]), inputs).ok


@pytest.mark.parametrize("n", [16, 64])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_power_in_exact_mode_for_16_bit_dtypes(dtype, n):
    """Integer operands in {−1, 0, 1}: every partial sum is an integer the dtype holds exactly."""
    rule = rule_named("mm")
    g = torch.Generator().manual_seed(n)
    inputs = tuple(torch.randint(-1, 2, (n, n), generator=g).to(dtype) for _ in range(2))
    assert gradcheck.check_vjp(rule.forward, rule.vjp, inputs, exact=True).ok
    for index in range(2):
        assert not gradcheck.check_vjp(rule.forward, perturbed_vjp(rule.vjp, index, TARGETS[dtype]), inputs, exact=True).ok


def test_torch_gradcheck_misses_1e_3_in_float64_which_gradcheck_catches():
    rule = rule_named("mm")
    inputs = tuple(t.requires_grad_() for t in seeded_operands(SHAPES["mm"], torch.float64, 0))
    wrong = perturbed_vjp(rule.vjp, 0, 1e-3)
    assert torch.autograd.gradcheck(as_function(rule.forward, wrong).apply, inputs)
    assert not gradcheck.check_vjp(rule.forward, wrong, inputs, **rule.check_options()).ok


def test_torch_gradcheck_fails_correct_float32_code_which_gradcheck_passes():
    rule = rule_named("mm")
    inputs = tuple(t.requires_grad_() for t in seeded_operands(SHAPES["mm"], torch.float32, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that its check wants float64
        assert not torch.autograd.gradcheck(as_function(rule.forward, rule.vjp).apply, inputs, raise_exception=False)
    assert gradcheck.check_vjp(rule.forward, rule.vjp, inputs, **rule.check_options()).ok
