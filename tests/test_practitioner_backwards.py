"""The backwards users write most, checked with no options: correct code passes in every dtype at
every size, as a plain VJP and as an ``autograd.Function``; every planted bug is caught."""

from __future__ import annotations

import pytest
import torch
from hypothesis import Phase, settings
from hypothesis import strategies as st

import gradcheck
from practitioner_backwards import BACKWARDS, DTYPES, backward_named, relu_inputs

CORRECT_SIDES = (1, 8)  # side 64: one run per entry below (cost)
BUG_SIDE = 8


@pytest.mark.parametrize("side", CORRECT_SIDES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("entry", BACKWARDS, ids=lambda b: b.name)
def test_correct_vjp_passes_with_no_options(entry, dtype, side):
    inputs = entry.make_inputs(dtype, side, 0)
    report = gradcheck.check_vjp(entry.forward, entry.vjp, inputs)
    assert report.ok, str(report)
    assert not any("nan" == f"{c.bound}" for c in report.comparisons)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("entry", BACKWARDS, ids=lambda b: b.name)
def test_correct_vjp_passes_at_side_64(entry, dtype):
    report = gradcheck.check_vjp(entry.forward, entry.vjp, entry.make_inputs(dtype, 64, 3))
    assert report.ok, str(report)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("entry", BACKWARDS, ids=lambda b: b.name)
def test_correct_function_passes_with_no_options_and_no_warnings(entry, dtype):
    for side in (1, 8):
        report = gradcheck.check_function(entry.function, entry.make_inputs(dtype, side, 1))
        assert report.ok and not report.warnings, str(report)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("entry", BACKWARDS, ids=lambda b: b.name)
def test_every_planted_bug_is_caught(entry, dtype):
    inputs = entry.make_inputs(dtype, BUG_SIDE, 2)
    for name, wrong in entry.bugs.items():
        report = gradcheck.check_vjp(entry.forward, wrong, inputs)
        assert not report.ok, f"{entry.name}: {name}\n{report}"
        assert not report.overflowed and report.failures, f"{entry.name}: {name}\n{report}"


def test_relu_at_its_kink_passes_and_its_bugs_are_still_caught():
    """At exact zeros any one-sided derivative is right; the elements away from 0 are still judged."""
    relu = backward_named("relu")
    x = relu_inputs(torch.float32, 8, 0, zeros=True)[0]
    assert bool((x == 0).any())
    report = gradcheck.check_vjp(relu.forward, relu.vjp, (x,))
    assert report.ok, str(report)
    at_zero_is_G = lambda t, G: (G * (t >= 0),)  # noqa: E731 - the other common convention
    assert gradcheck.check_vjp(relu.forward, at_zero_is_G, (x,)).ok
    for name, wrong in relu.bugs.items():
        assert not gradcheck.check_vjp(relu.forward, wrong, (x,)).ok, name


NO_SHRINKING = (Phase.explicit, Phase.reuse, Phase.generate)  # the failing input is asserted, not the shrunk example


def test_cross_entropy_with_integer_targets_through_verify_function():
    entry = backward_named("cross_entropy")
    operands = st.tuples(st.integers(0, 2**16), st.integers(1, 16), st.sampled_from(DTYPES)).map(
        lambda drawn: entry.make_inputs(drawn[2], drawn[1], drawn[0]))
    gradcheck.verify_function(entry.function, operands, max_examples=10, hypothesis_settings=settings(derandomize=True, database=None))
    wrong = entry.bugs["sign_flipped"]

    class WrongSign(entry.function):  # the same forward, a planted bug in the backward
        @staticmethod
        def backward(ctx, G):
            x, t = ctx.saved_inputs
            return wrong(x, t, G)

        @staticmethod
        def forward(ctx, x, t):
            ctx.saved_inputs = (x, t)
            return entry.function.forward(type("Ctx", (), {"save_for_backward": lambda *a: None, "mark_non_differentiable": lambda *a: None,
                                                            "needs_input_grad": (True, False)})(), x, t)

    with pytest.raises(gradcheck.GradientMismatch) as caught:
        gradcheck.verify_function(WrongSign, operands, max_examples=10,
                                  hypothesis_settings=settings(derandomize=True, database=None, phases=NO_SHRINKING))
    assert caught.value.report.failing_inputs == {"input0"}
