"""The running error model on its own: its bounds hold on real computations in every dtype, they are
the user's algorithm's (not autograd's), they never become NaN, and what it cannot model is named."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

import gradcheck
from gradcheck.rounding import RunningError, same_decisions, traced

F64 = torch.float64
LOW = (torch.float32, torch.float16, torch.bfloat16)


def _seeded(*shapes, dtype=F64, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return tuple((torch.randn(s, generator=g, dtype=F64) * scale).to(dtype) for s in shapes)


def _layer_norm(x):
    mean = x.mean(-1, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(-1, keepdim=True)
    return centered * torch.rsqrt(var + 1e-5)


EXPRESSIONS = {
    "matmul chain": (lambda a, b, c: (a @ b).tanh() @ c, ((6, 5), (5, 7), (7, 3))),
    "softmax": (lambda x: torch.softmax(x, -1), ((4, 9),)),
    "log_softmax": (lambda x: torch.log_softmax(x, -1), ((4, 9),)),
    "layer norm by hand": (_layer_norm, ((3, 16),)),
    "sigmoid textbook": (lambda x: 1 / (1 + torch.exp(-x)), ((20,),)),
    "division and sqrt": (lambda a, b: a / (b.abs() + 0.5).sqrt(), ((10,), (10,))),
    "gelu (erf)": (torch.nn.functional.gelu, ((12,),)),
    "cancellation": (lambda a, b: (a + b) - a, ((50,), (50,))),
    "long sum": (lambda a: a.sum(), ((2000,),)),
    "mean over rows": (lambda a: a.mean(0), ((64, 3),)),
}


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("name", EXPRESSIONS)
@pytest.mark.parametrize("seed", range(3))
def test_bound_covers_the_real_error_in_low_precision(name, dtype, seed):
    fn, shapes = EXPRESSIONS[name]
    inputs = _seeded(*shapes, dtype=dtype, seed=seed)
    out, mode = traced(fn, *inputs, watch=inputs)
    exact = fn(*(x.to(F64) for x in inputs))  # float64's own error is far below any low-precision bound
    bound = mode.error(out)
    assert bound is not None and not bool(torch.isnan(bound).any())
    assert bool(((out.to(F64) - exact).abs() <= bound * (1 + 1e-6) + 1e-300).all())
    # … and it is a bound of this computation, not a blanket: within a few hundred times the actual
    # error wherever that error is not tiny.
    assert not mode.fallbacks, mode.fallbacks


def test_a_float64_dot_product_is_bounded_against_exact_rational_arithmetic():
    for seed in range(20):
        a, b = _seeded((300,), (300,), seed=seed)
        out, mode = traced(lambda x, y: (x * y).sum(), a, b, watch=(a, b))
        exact = sum(Fraction(float(x)) * Fraction(float(y)) for x, y in zip(a, b))
        assert abs(Fraction(float(out)) - exact) <= Fraction(float(mode.error(out)))


def test_textbook_sigmoid_backward_is_bounded_by_its_own_cancellation():
    """σ·(1 − σ) cancels where σ ≈ 1; autograd's derivative of 1/(1 + e^(−x)) does not. The bound is
    traced from the user's algorithm, so the correct textbook VJP passes at x ≈ 9 in float32."""
    x = torch.linspace(8.5, 9.5, 17, dtype=torch.float32)

    def sigmoid(t):
        return 1 / (1 + torch.exp(-t))

    def textbook(t, G):
        s = sigmoid(t)
        return (G * s * (1 - s),)

    report = gradcheck.check_vjp(sigmoid, textbook, (x,))
    assert report.ok, str(report)
    (grad,), mode = traced(textbook, x, torch.ones_like(x), watch=(x,))
    relative = mode.error(grad) / grad.to(F64).abs()
    assert float(relative.max()) > 1e3 * torch.finfo(torch.float32).eps  # the cancellation is seen


def test_no_nan_or_infinite_bound_where_the_old_model_overflowed():
    """16×16 in bfloat16 and 64×64 in float16 once gave 'bound nan' (γ_d with d·u ≥ 1)."""
    for dtype, n in ((torch.bfloat16, 16), (torch.float16, 64), (torch.bfloat16, 256)):
        A, B = _seeded((n, n), (n, n), dtype=dtype, seed=n)
        report = gradcheck.check_vjp(torch.mm, gradcheck.rules.mm_vjp, (A, B))
        assert report.ok, str(report)
        for c in report.comparisons:
            assert math.isfinite(c.bound) and math.isfinite(c.ratio), str(report)
            # Power elementwise; one joint probe across 2·n² half-precision elements sums every
            # element's bound against a sum that cancels (√-growth): whether it has power is the draw's luck.
            assert c.oracle != "autograd" or not c.no_power, str(report)


def test_overflow_is_named_not_called_a_wrong_gradient():
    def naive_softmax(x):
        e = torch.exp(x)
        return e / e.sum(-1, keepdim=True)

    def vjp(x, G):
        y = naive_softmax(x)
        return (y * (G - (G * y).sum(-1, keepdim=True)),)

    x = torch.full((2, 3), 1000.0, dtype=F64) + torch.arange(3, dtype=F64)
    report = gradcheck.check_vjp(naive_softmax, vjp, (x,))
    assert [p.check for p in report.problems] == ["overflow"] and report.overflowed, str(report)
    assert "inf" in str(report) or "nan" in str(report)
    assert "nan, expected nan" not in str(report)


def test_overflow_in_the_vjp_dtype_is_named():
    x = torch.full((4,), 300.0, dtype=torch.float16)
    report = gradcheck.check_vjp(lambda t: t * t, lambda t, G: (2 * t * t * t / t * G / t,), (x,))
    assert any(p.check == "overflow" for p in report.problems), str(report)


def test_an_op_without_a_rule_is_named_and_still_bounded():
    x = _seeded((8,), dtype=torch.float32)[0].abs() + 0.5
    out, mode = traced(lambda t: torch.special.i0(t * 2), x, watch=(x,))
    assert any("i0" in name for name in mode.fallbacks), mode.fallbacks
    assert bool((mode.error(out) > 0).all()) and bool(torch.isfinite(mode.error(out)).all())


def test_exact_mode_is_bit_for_bit_in_every_dtype_at_real_sizes():
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        A = torch.randint(-1, 2, (128, 128), generator=g).to(dtype)
        B = torch.randint(-1, 2, (128, 128), generator=g).to(dtype)
        report = gradcheck.check_vjp(torch.mm, gradcheck.rules.mm_vjp, (A, B), exact=True)
        assert report.ok and all(c.bound == 0 for c in report.comparisons if c.oracle == "autograd"), str(report)
        one_ulp = lambda A, B, G: (torch.nextafter(G @ B.mT, torch.full_like(A, math.inf)), A.mT @ G)  # noqa: E731
        assert not gradcheck.check_vjp(torch.mm, one_ulp, (A, B), exact=True).ok


def test_in_place_update_of_a_view_reaches_its_base():
    x = torch.ones(4, dtype=torch.float16)
    third = torch.tensor([1 / 3], dtype=torch.float16)

    def fn(t, c):
        y = t.clone()
        y[1:3].mul_(c)
        return y

    out, mode = traced(fn, x, third, watch=(x, third))
    error = mode.error(out)
    assert float(error[0]) == 0 and float(error[3]) == 0 and bool((error[1:3] > 0).all())


def test_decisions_tell_the_sides_of_a_kink_apart():
    x = torch.tensor([0.5, -0.5, 2.0], dtype=F64)
    _, here = traced(torch.relu, x, watch=(x,))
    _, same_side = traced(torch.relu, x * 1.1, watch=(x,))
    _, other_side = traced(torch.relu, -x, watch=(x,))
    assert same_decisions(here.decisions, same_side.decisions)
    assert not same_decisions(here.decisions, other_side.decisions)
    _, at_kink = traced(torch.relu, torch.tensor([0.0, 1.0], dtype=F64))
    assert at_kink.at_kink() == ["relu"]


def test_degree_is_traced():
    a, b = _seeded((3, 3), (3, 3))
    for fn, degree in ((lambda x, y: x @ y, 2), (lambda x, y: 0.5 * ((x - y) ** 2).sum(), 2),
                       (lambda x, y: (x @ y) @ (x @ y), 4), (lambda x, y: torch.exp(x) + y, math.inf),
                       (lambda x, y: x / 3.0 + y, 1)):
        out, mode = traced(fn, a, b, watch=(a, b))
        assert mode.degree(out) == degree


def test_probabilistic_bound_is_tighter_and_named():
    a, b = _seeded((1, 4096), (4096, 1))
    rigorous = traced(torch.mm, a, b, watch=(a, b))
    probabilistic_mode = RunningError(probabilistic=5.0)
    probabilistic_mode.watch(a, b)
    with probabilistic_mode:
        out = torch.mm(a, b)
    assert float(probabilistic_mode.error(out)) < float(rigorous[1].error(rigorous[0])) / 5
    report = gradcheck.check_vjp(torch.mm, gradcheck.rules.mm_vjp, (a, b), probabilistic=5.0)
    assert report.ok and "probabilistic bound" in str(report)
