"""Forward mode: check_jvp against forward-mode autograd and elementwise finite differences, planted
wrong JVPs, the seed's Hessian-vector product, and forward-mode autograd.Functions."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
from torch.utils._python_dispatch import _disable_current_modes

import gradcheck
from gradcheck.arguments import validate_inputs
from gradcheck.forward import _tangents, defines_jvp, finite_differences
from gradcheck.rules import hessian_vector_product, linear_regression_loss, rule_named, unbroadcast
from gradcheck.tolerance import FLOATING_DTYPES

F64 = torch.float64


def seeded(seed: int, dtype: torch.dtype, *shapes: tuple[int, ...], scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return tuple((scale * torch.randn(shape, generator=generator, dtype=F64)).to(dtype) for shape in shapes)


def oracles_failed(report: gradcheck.Report) -> set[str]:
    return {c.oracle for c in report.comparisons if not c.ok}


# ---- correct JVPs pass, with power ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATING_DTYPES, ids=str)
def test_correct_jvp_passes_against_both_oracles(dtype):
    A, B = seeded(0, dtype, (5, 7), (7, 3))
    report = gradcheck.check_jvp(torch.mm, rule_named("mm").jvp, (A, B), names=("A", "B"))
    assert report.ok, str(report)
    assert {c.oracle for c in report.comparisons} == {"autograd", "finite_differences"}
    assert all(c.power < 0.1 for c in report.comparisons), str(report)


def test_the_jvp_runs_in_its_own_dtype_and_its_rounding_is_traced():
    """A float16 JVP differs from float64's answer by its rounding; the traced bound allows exactly that."""
    A, B = seeded(1, torch.float16, (16, 16), (16, 16))
    report = gradcheck.check_jvp(torch.mm, rule_named("mm").jvp, (A, B))
    assert report.ok, str(report)
    autograd = next(c for c in report.comparisons if c.oracle == "autograd")
    assert autograd.max_abs_error > 0 and 0 < autograd.ratio <= 1


def test_tuple_outputs_and_non_tensor_inputs():
    (x,) = seeded(2, torch.float32, (6,))
    report = gradcheck.check_jvp(lambda a, k: (a.sin() * k, a * a), lambda a, k, da, dk: (a.cos() * da * k, 2 * a * da),
                                 (x, 3.0))
    assert report.ok, str(report)
    assert {c.input_name for c in report.comparisons} == {"output 0 tangent", "output 1 tangent"}
    wrong = gradcheck.check_jvp(lambda a, k: (a.sin() * k, a * a), lambda a, k, da, dk: (a.cos() * da * k, a * da), (x, 3.0))
    assert {c.input_name for c in wrong.failures if hasattr(c, "oracle")} == {"output 1 tangent"}


# ---- wrong JVPs are caught --------------------------------------------------------------------------

def mm_without_second_term(A, B, dA, dB):
    return dA @ B


def linear_without_bias(x, W, b, dx, dW, db):
    return dx @ W.mT + x @ dW.mT


def squared_error_wrong_sign(y_pred, y, dy_pred, dy):
    return ((y_pred - y) * (dy_pred + dy)).sum()


def mul_swapped_factors(A, B, dA, dB):
    return dA * A + B * dB


PLANTED = [
    ("mm", mm_without_second_term, ((4, 3), (3, 5))),
    ("linear", linear_without_bias, ((4, 3), (2, 3), (2,))),
    ("squared_error", squared_error_wrong_sign, ((3, 4), (3, 4))),
    ("mul", mul_swapped_factors, ((3, 4), (3, 4))),
]


@pytest.mark.parametrize("dtype", FLOATING_DTYPES, ids=str)
@pytest.mark.parametrize(("rule", "planted", "shapes"), PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_wrong_jvp_is_caught_by_both_oracles(rule, planted, shapes, dtype):
    inputs = seeded(3, dtype, *shapes)
    report = gradcheck.check_jvp(rule_named(rule).forward, planted, inputs, names=rule_named(rule).input_names)
    assert not report.ok
    assert oracles_failed(report) == {"autograd", "finite_differences"}, str(report)
    assert "replay:" in str(report) and "gradcheck.check_jvp(" in report.reproducer


@pytest.mark.parametrize(("rule", "planted"), [(p[0], p[1]) for p in PLANTED[:1]], ids=["mm"])
def test_verify_jvp_shrinks_a_planted_bug(rule, planted):
    r = rule_named(rule)
    with pytest.raises(gradcheck.GradientMismatch) as caught:
        gradcheck.verify_jvp(r.forward, planted, r.operands(dtype=torch.float32, max_side=8), names=r.input_names, max_examples=50)
    assert "FAILED" in str(caught.value)


def test_a_jvp_that_ignores_its_tangent_is_caught():
    """Drawn tangents are never all ones: J·1 in place of J·v fails."""
    (x,) = seeded(4, torch.float32, (5,))
    report = gradcheck.check_jvp(torch.sin, lambda a, da: a.cos(), (x,))
    assert oracles_failed(report) == {"autograd", "finite_differences"}


def test_exact_mode_compares_bit_for_bit_in_bfloat16():
    generator = torch.Generator().manual_seed(5)
    A, B = (torch.randint(-3, 4, shape, generator=generator).to(torch.bfloat16) for shape in ((6, 8), (8, 4)))
    report = gradcheck.check_jvp(torch.mm, rule_named("mm").jvp, (A, B), exact=True)
    assert report.ok and all(c.bound == 0 for c in report.comparisons), str(report)
    off_by_one = gradcheck.check_jvp(torch.mm, lambda A, B, dA, dB: dA @ B + A @ dB + (torch.arange(4) == 0), (A, B), exact=True)
    assert not off_by_one.ok


# ---- structure, mutation, raising, overflow ---------------------------------------------------------

@pytest.mark.parametrize(("jvp", "check"), [
    (lambda a, da: da[:2], "shape"),
    (lambda a, da: (a.cos() * da).double(), "dtype"),
    (lambda a, da: None, "missing"),
    (lambda a, da: 1 / 0, "raised"),
    (lambda a, da: (a.cos() * da, da), "count"),
    (lambda a, da: a.cos() * da.mul_(2), "mutated"),
], ids=["shape", "dtype", "missing", "raised", "count", "mutated"])
def test_structural_problems_are_named(jvp, check):
    (x,) = seeded(6, torch.float32, (5,))
    report = gradcheck.check_jvp(torch.sin, jvp, (x,))
    assert check in {p.check for p in report.problems}, str(report)


def test_a_mutated_tangent_does_not_leak_into_the_oracles_or_the_replay():
    (x,) = seeded(7, torch.float32, (4,))
    tangent = torch.tensor([0.5, -1.0, 2.0, 0.25])
    report = gradcheck.check_jvp(torch.sin, lambda a, da: a.cos() * da.mul_(2) / 2, (x,), tangents=tangent)
    assert {p.check for p in report.problems} == {"mutated"} and all(c.ok for c in report.comparisons), str(report)
    assert "[0.5, -1.0, 2.0, 0.25]" in report.reproducer


def test_overflow_in_the_jvp_is_named():
    report = gradcheck.check_jvp(torch.exp, lambda a, da: a.exp() * da, (torch.tensor([12.0], dtype=torch.float16),))
    assert "overflow" in {p.check for p in report.problems}


def test_an_untraced_jvp_gets_forward_modes_bound_and_a_note():
    def hidden(A, B, dA, dB):  # a compiled kernel, as the error model sees it: arithmetic it cannot watch
        with _disable_current_modes():
            return dA @ B + A @ dB

    A, B = seeded(8, torch.float32, (6, 5), (5, 4))
    report = gradcheck.check_jvp(torch.mm, hidden, (A, B))
    assert report.ok and any("not visible to the error model" in n for n in report.notes), str(report)


def test_at_a_kink_one_sided_derivatives_are_not_held_against_the_jvp():
    x = torch.tensor([0.0, 1.0, -2.0, 0.0, 3.0])
    assert gradcheck.check_jvp(torch.relu, lambda a, da: da * (a > 0), (x,)).ok
    assert gradcheck.check_jvp(torch.relu, lambda a, da: da * (a >= 0), (x,)).ok
    wrong_away_from_the_kink = gradcheck.check_jvp(torch.relu, lambda a, da: da * (a > 0) * (1 + (a > 2)), (x,))
    assert "autograd" in oracles_failed(wrong_away_from_the_kink)


# ---- tangents and validation ------------------------------------------------------------------------

def test_drawn_tangents_are_seeded_nonzero_and_never_all_ones():
    args = validate_inputs((torch.zeros(3, 2), 2.0, torch.zeros(())), None)
    first, again = _tangents(args, None, seed=3, exact=False), _tangents(args, None, seed=3, exact=False)
    assert first[1] is None and all(torch.equal(a, b) for a, b in zip((first[0], first[2]), (again[0], again[2])))
    assert not torch.equal(first[0], _tangents(args, None, seed=4, exact=False)[0])
    for seed in range(200):
        for exact in (False, True):
            (t,) = _tangents(validate_inputs((torch.zeros(1),), None), None, seed=seed, exact=exact)
            assert t.item() != 1.0 and t.item() != 0.0


@pytest.mark.parametrize(("call", "message"), [
    (lambda x: gradcheck.check_jvp(1, torch.sin, (x,)), "f: expected a callable"),
    (lambda x: gradcheck.check_jvp(torch.sin, None, (x,)), "jvp: expected a callable"),
    (lambda x: gradcheck.check_jvp(torch.sin, torch.cos, x), "inputs: expected a tuple"),
    (lambda x: gradcheck.check_jvp(torch.sin, torch.cos, (x,), tangents=(x, x)), "tangents: expected 1"),
    (lambda x: gradcheck.check_jvp(torch.sin, torch.cos, (x,), tangents=x[:1]), "expected shape (3,)"),
    (lambda x: gradcheck.check_jvp(torch.sin, torch.cos, (x,), tangents=x.double()), "torch.float32"),
    (lambda x: gradcheck.check_jvp(torch.sin, torch.cos, (x,), tangents=x / 0), "expected finite values"),
    (lambda x: gradcheck.check_jvp(torch.mul, torch.cos, (x, 2.0), tangents=(x, 1.0)), "expected None"),
    (lambda x: gradcheck.check_jvp(torch.sin, torch.cos, (x + 0.5,), exact=True), "exact mode expects integer"),
    (lambda x: gradcheck.check_hvp(linear_regression_loss, hessian_vector_product, (x, x, x, x), wrt=(4,)), "wrt:"),
    (lambda x: gradcheck.check_function_jvp(torch.sin, (x,)), "torch.autograd.Function subclass"),
], ids=["f", "jvp", "inputs", "count", "shape", "dtype", "finite", "non-tensor", "exact", "wrt", "function"])
def test_caller_mistakes_are_gradcheck_errors(call, message):
    with pytest.raises(gradcheck.GradcheckError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(torch.ones(3))


def test_assert_jvp_raises_gradient_mismatch_with_the_report():
    A, B = seeded(9, torch.float32, (3, 3), (3, 3))
    assert gradcheck.assert_jvp(torch.mm, rule_named("mm").jvp, (A, B)).ok
    with pytest.raises(gradcheck.GradientMismatch) as caught:
        gradcheck.assert_jvp(torch.mm, mm_without_second_term, (A, B))
    assert not caught.value.report.ok


def test_the_replay_reproduces_the_failure():
    A, B = seeded(10, torch.float32, (3, 2), (2, 3))
    report = gradcheck.check_jvp(torch.mm, mm_without_second_term, (A, B), label="mm")
    script = report.reproducer.replace("jvp = ...", "jvp = planted")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(script, {"planted": mm_without_second_term})  # noqa: S102 - the script gradcheck wrote
    assert "mm: FAILED" in printed.getvalue()


# ---- the finite-difference oracle -------------------------------------------------------------------

@pytest.mark.parametrize(("f", "degree"), [(lambda x: (x * x,), 2.0), (lambda x: (x**3,), 3.0), (lambda x: (x.exp(),), float("inf"))],
                         ids=["quadratic", "cubic", "exp"])
def test_finite_differences_bound_their_own_error(f, degree):
    x, v = seeded(11, F64, (7,), (7,))
    found = finite_differences(f, [x], [v])
    exact = torch.func.jvp(lambda t: f(t)[0], (x,), (v,))[1]
    assert found.degree == degree and not found.crossed_kink
    assert bool(((found.estimates[0] - exact).abs() <= found.errors[0]).all())
    assert float(found.errors[0].max()) < 1e-6


def test_finite_differences_count_the_rounding_of_the_shifted_points():
    """y ± h·v rounds in float64 for a full-precision y; at ŷ − y ≈ 1.7e-6 that lost part, over the step,
    is the whole disagreement (3e-17, ten thousand times the rest of the bound). It is carried into the
    trace as an input error, computed exactly (TwoSum)."""
    rule = rule_named("squared_error")
    inputs = (torch.tensor([1.0], dtype=F64), torch.tensor([0.9999982815544685], dtype=F64))
    tangents = (torch.tensor([0.0], dtype=F64), torch.tensor([1.0], dtype=F64))
    report = gradcheck.check_jvp(rule.forward, rule.jvp, inputs, tangents=tangents)
    assert report.ok, str(report)
    assert report.worst_ratio("finite_differences") > 0.1


# ---- second order: the seed's Hessian-vector product -------------------------------------------------

def hvp_with_n_minus_one(x, y, w, b, v_w, v_b):
    dr = x @ v_w + v_b
    return x.mT @ dr, unbroadcast(dr, b.shape) - v_b


def hvp_with_rows_swapped(x, y, w, b, v_w, v_b):
    return (x * x).sum() * v_w + x.sum() * v_b, (x * x).sum() * v_w + x.shape[0] * v_b


def seed_operands(dtype: torch.dtype, n: int = 8) -> tuple[torch.Tensor, ...]:
    return seeded(12, dtype, (n, 1), (n, 1), (1, 1), (1, 1))


@pytest.mark.parametrize("dtype", FLOATING_DTYPES, ids=str)
def test_seed_hessian_vector_product_matches_torch_func_and_finite_differences(dtype):
    report = gradcheck.check_hvp(linear_regression_loss, hessian_vector_product, seed_operands(dtype), wrt=(2, 3),
                                 names=("x", "y", "w", "b"))
    assert report.ok, str(report)
    assert {c.oracle for c in report.comparisons} == {"autograd", "finite_differences"}


@pytest.mark.parametrize("dtype", FLOATING_DTYPES, ids=str)
@pytest.mark.parametrize("planted", [hvp_with_n_minus_one, hvp_with_rows_swapped], ids=["n-1", "rows swapped"])
def test_planted_wrong_hessian_is_caught(planted, dtype):
    report = gradcheck.check_hvp(linear_regression_loss, planted, seed_operands(dtype), wrt=(2, 3), names=("x", "y", "w", "b"))
    assert oracles_failed(report) == {"autograd", "finite_differences"}, str(report)
    assert "gradcheck.check_hvp(loss, hvp, inputs" in report.reproducer and "wrt=(2, 3)" in report.reproducer


def test_hvp_of_a_wider_regression():
    """The same rule for x (n, k), w (k, m), b (m,): H·v = (xᵀ·(x·v_w + v_b), Σ_rows (x·v_w + v_b))."""
    inputs = seeded(13, torch.float32, (6, 3), (6, 2), (3, 2), (2,))
    assert gradcheck.check_hvp(linear_regression_loss, hessian_vector_product, inputs, wrt=(2, 3)).ok


# ---- forward-mode torch.autograd.Function -----------------------------------------------------------

class Exp(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x.exp()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_forward(output)
        ctx.save_for_backward(output)

    @staticmethod
    def jvp(ctx, dx):
        (y,) = ctx.saved_tensors
        return y * dx

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class ExpWrongJvp(Exp):
    @staticmethod
    def jvp(ctx, dx):
        (y,) = ctx.saved_tensors
        return 1.25 * y * dx


class ScaleAndShift(torch.autograd.Function):
    """Old style (``forward(ctx, …)``), a non-tensor input, two outputs."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x * k, x + 1

    @staticmethod
    def jvp(ctx, dx, dk):
        return dx * ctx.k, dx

    @staticmethod
    def backward(ctx, g, h):
        return g * ctx.k + h, None


class NoForwardMode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        return 2 * g


@pytest.mark.parametrize("dtype", FLOATING_DTYPES, ids=str)
def test_function_jvp_through_dual_tensors(dtype):
    (x,) = seeded(14, dtype, (3, 4))
    assert gradcheck.check_function_jvp(Exp, (x,)).ok
    assert gradcheck.check_function_jvp(ScaleAndShift, (x, 3.0)).ok
    wrong = gradcheck.check_function_jvp(ExpWrongJvp, (x,))
    assert oracles_failed(wrong) == {"autograd", "finite_differences"}, str(wrong)
    assert wrong.function == "ExpWrongJvp.jvp" and "gradcheck.check_function_jvp(F, inputs" in wrong.reproducer


def test_function_without_jvp_is_refused():
    assert defines_jvp(Exp) and not defines_jvp(NoForwardMode)
    with pytest.raises(gradcheck.GradcheckError, match="defines jvp"):
        gradcheck.check_function_jvp(NoForwardMode, (torch.ones(2),))
