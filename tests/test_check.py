"""The public API: check_vjp / assert_vjp / verify / check_function, and what a report says."""

from __future__ import annotations

import pytest
import torch
from hypothesis import strategies as st

import gradcheck
from gradcheck.rules import linear_vjp, mm_vjp, rule_named
from gradcheck.strategies import mm_operands


def _mm_inputs(dtype=torch.float64, m=3, k=4, p=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(m, k, generator=g, dtype=torch.float64).to(dtype),
            torch.randn(k, p, generator=g, dtype=torch.float64).to(dtype))


def _randn(*shape, seed=0):
    """A seeded float64 tensor: every test sees the same numbers on every run."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_correct_vjp_passes_with_both_oracles():
    report = gradcheck.check_vjp(torch.mm, mm_vjp, _mm_inputs(), names=("A", "B"))
    assert report.ok, str(report)
    assert {(c.input_name, c.oracle) for c in report.comparisons} == {
        ("A", "autograd"), ("B", "autograd"), ("all inputs (joint direction)", "finite_differences")}
    assert report.worst_ratio("autograd") <= 1 and 0 < report.worst_ratio("finite_differences") <= 1


def test_report_explains_a_failure():
    wrong = lambda A, B, G: (G @ B.mT * 1.001, A.mT @ G)  # noqa: E731
    report = gradcheck.check_vjp(torch.mm, wrong, _mm_inputs(), names=("A", "B"))
    assert not report.ok
    text = str(report)
    for needed in ("FAILED", "input 0 (A)", "autograd", "finite_differences", "abs error", "rel error", "bound",
                   "worst at (", "float64", "(3, 4)", "replay:"):
        assert needed in text, needed
    assert report.failing_inputs == {"A"}
    failing = [c for c in report.comparisons if not c.ok]
    assert all(abs(c.max_rel_error - 1e-3) < 1e-6 for c in failing if c.oracle == "autograd")


def test_assert_vjp_raises_an_assertion_error_carrying_the_report():
    wrong = lambda A, B, G: (G @ B.mT, -(A.mT @ G))  # noqa: E731
    with pytest.raises(AssertionError) as caught:
        gradcheck.assert_vjp(torch.mm, wrong, _mm_inputs(), names=("A", "B"))
    assert isinstance(caught.value, gradcheck.GradientMismatch)
    assert caught.value.report.failing_inputs == {"B"}
    assert gradcheck.assert_vjp(torch.mm, mm_vjp, _mm_inputs()).ok


def test_every_input_is_checked_not_only_the_first():
    wrong = lambda x, W, b, G: (*linear_vjp(x, W, b, G)[:2], linear_vjp(x, W, b, G)[2] * 3)  # noqa: E731
    x, W, b = _randn(5, 3), _randn(2, 3, seed=1), _randn(2, seed=2)
    report = gradcheck.check_vjp(torch.nn.functional.linear, wrong, (x, W, b), names=("x", "W", "b"))
    assert report.failing_inputs == {"b"}


def test_cotangent_is_drawn_not_all_ones():
    """A backward that ignores G looks right under loss.sum().backward(); a drawn G exposes it."""
    ignores_g = lambda A, B, G: mm_vjp(A, B, torch.ones_like(G))  # noqa: E731
    inputs = _mm_inputs()
    assert gradcheck.check_vjp(torch.mm, ignores_g, inputs, cotangent=torch.ones(3, 2, dtype=torch.float64)).ok
    assert not gradcheck.check_vjp(torch.mm, ignores_g, inputs).ok


def test_missing_sum_in_bias_passes_torch_gradcheck_but_not_ours():
    """The fact the harness is built on: the engine sums a broadcastable wrong-shaped gradient away."""

    class LinearForgotSum(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, W, b):
            ctx.save_for_backward(x, W)
            return x @ W.mT + b

        @staticmethod
        def backward(ctx, G):
            x, W = ctx.saved_tensors
            return G @ W, G.mT @ x, G  # db should be G.sum(0)

    x = _randn(4, 3).requires_grad_()
    W = _randn(2, 3, seed=1).requires_grad_()
    b = _randn(2, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(LinearForgotSum.apply, (x, W, b))
    report = gradcheck.check_function(LinearForgotSum, (x, W, b), names=("x", "W", "b"), strict=True)
    assert not report.ok
    assert [(p.input_name, p.check) for p in report.problems] == [("b", "shape")]
    assert "expected (2,)" in str(report) and "got (4, 2)" in str(report)
    # Under the engine's contract (the default) it is a warning that says what the engine did; the
    # values, summed as the engine sums them, are right.
    engine = gradcheck.check_function(LinearForgotSum, (x, W, b), names=("x", "W", "b"))
    assert engine.ok and [(w.input_name, w.check) for w in engine.warnings] == [("b", "shape")]
    assert "which the engine sums to (2,)" in str(engine)
    # check_vjp holds the raw contract.
    raw = gradcheck.check_vjp(torch.nn.functional.linear, lambda x, W, b, G: LinearForgotSum.backward(
        type("ctx", (), {"saved_tensors": (x, W)})(), G), (x, W, b), names=("x", "W", "b"))
    assert [(p.input_name, p.check) for p in raw.problems] == [("b", "shape")]


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, G):
        (x,) = ctx.saved_tensors
        return 2 * x * G


class SquareNewStyle(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, G):
        (x,) = ctx.saved_tensors
        return 3 * x * G  # wrong: 2x


def test_check_function_on_a_correct_function_and_a_wrong_new_style_one():
    x = _randn(5)
    assert gradcheck.check_function(Square, (x,)).ok
    report = gradcheck.check_function(SquareNewStyle, (x,), names=("x",))
    assert report.failing_inputs == {"x"}
    assert report.function == "SquareNewStyle"


def test_check_function_with_a_non_differentiable_forward_still_uses_finite_differences():
    class NumpySquare(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.from_numpy(x.detach().numpy() ** 2)

        @staticmethod
        def backward(ctx, G):
            (x,) = ctx.saved_tensors
            return 2.5 * x * G  # wrong

    report = gradcheck.check_function(NumpySquare, (_randn(4),))
    assert any("autograd oracle unavailable" in note for note in report.notes)
    assert [c.oracle for c in report.comparisons if not c.ok] == ["finite_differences"]


def test_smooth_non_polynomial_function_passes_with_truncation_estimate():
    x = torch.rand(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.5
    report = gradcheck.check_vjp(torch.sin, lambda x, G: (torch.cos(x) * G,), (x,))
    assert report.ok, str(report)
    wrong = gradcheck.check_vjp(torch.sin, lambda x, G: (torch.cos(x) * G * (1 + 1e-7),), (x,))
    assert not wrong.ok


def test_verify_passes_a_correct_rule_and_returns_none():
    rule = rule_named("mm")
    assert gradcheck.verify(rule.forward, rule.vjp, mm_operands(dtype=torch.float32, device="cpu"),
                            max_examples=20, **rule.check_options()) is None


def test_verify_shrinks_to_a_minimal_counterexample():
    # wrong only when a dimension exceeds 2: hypothesis must find k = 3 and shrink everything else
    def vjp(A, B, G):
        dA, dB = mm_vjp(A, B, G)
        return (dA * 2 if A.shape[1] >= 3 else dA), dB

    with pytest.raises(gradcheck.GradientMismatch) as caught:
        gradcheck.verify(torch.mm, vjp, mm_operands(dtype=torch.float64, device="cpu"), names=("A", "B"),
                         max_examples=300)
    report = caught.value.report
    assert report.shapes == ((1, 3), (3, 0)) or report.shapes == ((1, 3), (3, 1)), report.shapes
    assert report.failing_inputs == {"A"}
    assert "replay:" in str(report) and "torch.tensor(" in report.reproducer


def test_reproducer_replays_the_failure():
    wrong = lambda A, B, G: (G @ B.mT * 1.01, A.mT @ G)  # noqa: E731
    report = gradcheck.check_vjp(torch.mm, wrong, _mm_inputs(dtype=torch.float32), names=("A", "B"))
    assert "from torch import mm as f" in report.reproducer
    assert "vjp = ...  # fill in" in report.reproducer  # a lambda cannot be imported: the script says so
    namespace = {"vjp": wrong}
    code = "\n".join(line for line in report.reproducer.splitlines() if "fill in" not in line)
    exec(code.replace("print(", "replayed = ("), namespace)  # noqa: S102 - executing our own generated script is the point
    replayed = namespace["replayed"]
    assert not replayed.ok and replayed.failing_inputs == {"A"}
    assert replayed.worst_ratio("autograd") == pytest.approx(report.worst_ratio("autograd"))


def test_verify_rejects_something_that_is_not_a_strategy():
    with pytest.raises(gradcheck.GradcheckError, match="operands: expected a hypothesis strategy"):
        gradcheck.verify(torch.mm, mm_vjp, _mm_inputs())


def test_verify_names_a_strategy_that_draws_the_wrong_thing():
    with pytest.raises(gradcheck.GradcheckError, match="expected the strategy to draw tuples"):
        gradcheck.verify(torch.mm, mm_vjp, st.just(torch.zeros(2, 2)), max_examples=2)
