"""The running error model on its own: its bounds hold on real computations in every dtype, they are
the user's algorithm's (not autograd's), they never become NaN, and what it cannot model is named."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

import gradcheck
from gradcheck.rounding import RunningError, same_decisions, traced
from gradcheck.tolerance import gamma

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


# ---- the matmul family's bound, term by term ---------------------------------------------------------

def _matmul_bound(A, B, eA, eB, k, extra=0):
    """The model's bound on a float64 product whose operands carry errors: the propagated terms
    |A|·E_B + E_A·|B| + E_A·E_B, and γ_k of the terms' magnitude, bounded by Cauchy–Schwarz
    (‖A_i,:‖·‖B_:,j‖); ``extra`` more roundings per term for complex products (γ_{k+2})."""
    propagated = A.abs() @ eB + eA @ B.abs() + eA @ eB
    norms = A.abs().pow(2).sum(-1).sqrt().unsqueeze(-1) * B.abs().pow(2).sum(-2).sqrt().unsqueeze(-2)
    return propagated + gamma(k + extra, F64) * norms


def _traced_error(op, A, B, eA, eB, exact=False):
    mode = RunningError(exact=exact)
    mode.watch(A, B)
    for t, e in ((A, eA), (B, eB)):
        if bool(e.any()):
            mode.set_error(t, e)
    with mode:
        out = op(A, B)
    return mode.error(out)


def _close_above(got, bound):
    """``got`` is the bound, up to a relative safety margin of 1e-9 above (and the rounding of computing
    the bound here in another order below)."""
    return bool((got >= bound * (1 - 1e-12)).all() and (got <= bound * (1 + 1e-9) + 1e-300).all())


@pytest.mark.parametrize("exact", [False, True], ids=["", "exact mode, values off its grid"])
@pytest.mark.parametrize("errors", ["none", "A only", "B only", "both, few indices", "both, dense"])
@pytest.mark.parametrize("op", ["mm", "bmm"])
def test_a_products_bound_is_the_propagated_errors_plus_gamma_k_of_its_magnitude(errors, op, exact):
    A, B = _seeded((3, 16), (16, 2), seed=1)
    eA, eB = torch.zeros_like(A), torch.zeros_like(B)
    if errors in ("A only", "both, few indices", "both, dense"):
        eA[:, 1] = 1e-3  # one reduction index: the thin product path for mm
    if errors in ("B only", "both, few indices", "both, dense"):
        eB[5, :] = 2e-3
    if errors == "both, dense":
        eA, eB = eA + 1e-6, eB + 3e-6
    fn = torch.mm if op == "mm" else (lambda a, b: torch.bmm(a[None], b[None])[0])
    got = _traced_error(fn, A, B, eA, eB, exact=exact)
    assert _close_above(got, _matmul_bound(A, B, eA, eB, 16)), (got, _matmul_bound(A, B, eA, eB, 16))


def test_matrix_vector_and_dot_products_use_their_own_norms():
    A, B = _seeded((3, 8), (8, 2), seed=2)
    eA, eB = torch.full_like(A, 1e-4), torch.full_like(B, 2e-4)
    got = _traced_error(torch.mv, A, B[:, 0], eA, eB[:, 0])
    assert _close_above(got, _matmul_bound(A, B[:, :1], eA, eB[:, :1], 8)[:, 0])
    got = _traced_error(torch.dot, A[0], B[:, 0], eA[0], eB[:, 0])
    assert _close_above(got, _matmul_bound(A[:1], B[:, :1], eA[:1], eB[:, :1], 8)[0, 0])


def test_a_complex_product_rounds_two_more_times_per_term():
    A, B = (torch.complex(*_seeded(s, s, seed=3 + i)) for i, s in enumerate(((3, 8), (8, 2))))
    got = _traced_error(torch.mm, A, B, torch.zeros(3, 8, dtype=F64), torch.zeros(8, 2, dtype=F64))
    assert _close_above(got, _matmul_bound(A, B, torch.zeros(3, 8, dtype=F64), torch.zeros(8, 2, dtype=F64), 8, extra=2))


def test_an_exact_integer_product_has_no_rounding_until_it_leaves_the_exact_range():
    A, B = torch.tensor([[1.0, -2.0], [3.0, 4.0]], dtype=F64), torch.tensor([[2.0, 0.5], [-1.0, 3.0]], dtype=F64)
    zeros = torch.zeros(2, 2, dtype=F64)
    assert torch.equal(_traced_error(torch.mm, A, B, zeros, zeros, exact=True), zeros)
    big = A * 2.0**20  # ‖rows‖·‖cols‖ past 2²¹: float64 may round the sums
    assert bool((_traced_error(torch.mm, big, B, zeros, zeros, exact=True) > 0).all())
    assert bool((_traced_error(torch.mm, A, B, zeros, zeros, exact=False) > 0).all())  # and outside exact mode


def test_a_float32_products_bound_covers_its_float32_result():
    A, B = _seeded((4, 64), (64, 3), dtype=torch.float32, seed=5)
    mode = RunningError()
    mode.watch(A, B)
    with mode:
        C = A @ B
    exact = torch.tensor([[float(sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(A[i], B[:, j])))
                           for j in range(3)] for i in range(4)], dtype=F64)
    assert bool(((C.double() - exact).abs() <= mode.error(C)).all())
    assert bool((mode.error(C) < 64 * torch.finfo(torch.float32).eps * (A.abs().double() @ B.abs().double())).all())


# ---- single ops: the standard model, comparisons, piecewise-constant ops, exact mode ------------------

U64 = 2.0**-53


def _trace(f, *inputs, errors=(), exact=False):
    mode = RunningError(exact=exact)
    mode.watch(*inputs)
    for t, e in errors:
        mode.set_error(t, e)
    with mode:
        out = f(*inputs)
    return out, mode


def test_a_float64_product_errs_by_u_times_its_value():
    x, y = torch.tensor([1.5, -3.0, 0.1], dtype=F64), torch.tensor([2.0, 0.7, 3.0], dtype=F64)
    out, mode = _trace(torch.mul, x, y)
    assert torch.allclose(mode.error(out), U64 * (x * y).abs(), rtol=1e-12, atol=torch.finfo(F64).tiny * 2)  # fl(a·b) = a·b(1 + δ), |δ| ≤ u


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64], ids=str)
def test_an_in_place_square_is_bounded_from_the_operands_as_they_were(dtype):
    x = _seeded((6,), seed=7)[0].to(dtype)
    y = x.clone()
    out, mode = _trace(lambda t: t.mul_(t), y)
    exact = x.to(torch.complex128 if dtype.is_complex else F64) ** 2
    err = (out.to(exact.dtype) - exact).abs()
    assert bool((err <= mode.error(out)).all()) and bool((mode.error(out) <= 8 * torch.finfo(dtype).eps * exact.abs() + 1e-30).all())


def test_a_comparison_records_its_decision_and_where_the_operands_sat_within_their_errors():
    a, b = torch.tensor([1.0, 2.0, 3.0], dtype=F64), torch.tensor([2.0, 2.0, 2.0], dtype=F64)
    _, mode = _trace(torch.gt, a, b)
    (d,) = mode.decisions
    assert (d.op, d.outcome.tolist(), d.at_boundary) == ("gt", [False, False, True], 1)  # exactly equal: on the boundary
    # |a − b| = (1, 0, 1) against E_a + E_b = (0.5 + 0.6, 0, 0.5 + 0): all three could be on either side
    _, mode = _trace(torch.gt, a, b, errors=((a, torch.tensor([0.5, 0.0, 0.5], dtype=F64)), (b, torch.tensor([0.6, 0.0, 0.0], dtype=F64))))
    assert mode.decisions[-1].at_boundary == 2 + 0  # (1 ≤ 1.1, 0 ≤ 0, 1 > 0.5)
    _, mode = _trace(torch.gt, a, b, errors=((a, torch.tensor([0.5, 0.0, 1.5], dtype=F64)),))
    assert mode.decisions[-1].at_boundary == 2  # (1 > 0.5, 0 ≤ 0, 1 ≤ 1.5)


def test_a_piecewise_constant_op_is_exact_of_degree_zero_and_a_decision():
    x = torch.tensor([1.5, -2.7, 0.2], dtype=F64)
    out, mode = _trace(torch.floor, x * 2)
    assert torch.equal(mode.error(out), torch.zeros(3, dtype=F64)) and mode.degree(out) == 0
    assert [(d.op, d.outcome.tolist()) for d in mode.decisions] == [("floor", [3.0, -6.0, 0.0])]


@pytest.mark.parametrize(("name", "f"), [
    ("var", lambda t: torch.var(t, dim=1)), ("var, correction 0", lambda t: torch.var(t, dim=0, correction=0, keepdim=True)),
    ("var_mean", lambda t: torch.var_mean(t, dim=1, keepdim=True)[0] + torch.var_mean(t, dim=1, keepdim=True)[1]),
    ("std", lambda t: torch.std(t)), ("std over a dim", lambda t: torch.std(t, dim=-1, correction=2)),
])
def test_variance_and_standard_deviation_are_rewritten_faithfully_and_bounded(name, f):
    x = _seeded((3, 5), dtype=torch.float32, seed=8)[0]
    out, mode = _trace(f, x)
    reference = f(x.double())
    assert out.shape == reference.shape and torch.allclose(out.double(), reference, rtol=1e-5), name
    assert bool(((out.double() - reference).abs() <= mode.error(out) + 1e-15 * reference.abs()).all()), name


def test_exact_mode_holds_for_values_on_the_grid_below_two_to_the_21():
    grid = torch.tensor([3.0, 2.0**-16, 2.0**19], dtype=F64)
    out, mode = _trace(lambda t: t * 3, grid, exact=True)
    assert torch.equal(mode.error(out), torch.zeros(3, dtype=F64))
    for off_grid in (torch.tensor([2.0**-17], dtype=F64), torch.tensor([2.0**21], dtype=F64)):  # finer than 2⁻¹⁶; too large
        out, mode = _trace(lambda t: t * 1.0, off_grid, exact=True)
        assert bool((mode.error(out) > 0).all()), off_grid
    out, mode = _trace(lambda t: t * (2.0**-16 + 2.0**-40), grid[:1], exact=True)  # a Python scalar off the grid
    assert bool((mode.error(out) > 0).all())
    e = torch.tensor([1e-3], dtype=F64)
    v = grid[:1].clone()
    out, mode = _trace(lambda t: t * 3, v, errors=((v, e),), exact=True)  # an input with an error is not exact
    assert bool((mode.error(out) > 3 * e).all())


def test_all_finite():
    from gradcheck.rounding import all_finite

    assert all_finite(torch.zeros(0)) and all_finite(torch.tensor([1e308, 1e308], dtype=F64))  # the sum overflows, no element does
    assert not all_finite(torch.tensor([1.0, math.inf])) and not all_finite(torch.tensor([math.nan, 1.0]))


# ---- rules built while a test runs: the monotone-function factory and the real-line guard ------------
# ``_monotone`` and ``_real_only`` make the rules that rounding.py registers at import; here they are
# called again in the test (and registered over a copy of the rule table), so that what they build is
# tested on its own, not only through the copies made at import.

from gradcheck import rounding as _rounding  # noqa: E402


@pytest.fixture
def own_rules(monkeypatch):
    """A private copy of the rule table: what a test registers is gone after it."""
    monkeypatch.setattr(_rounding, "_RULES", dict(_rounding._RULES))

    def register(op, fn, ulps, *pole_at_zero):
        built = _rounding._monotone(fn, ulps, *pole_at_zero)  # no pole unless one is named
        assert _rounding.rule(op)(built) is built and _rounding._RULES[op] is built
        return built

    return register


def test_a_registered_monotone_rule_bounds_exact_inputs_by_the_ulps_it_was_given(own_rules):
    x = _seeded((16,), seed=11)[0]
    bounds = {}
    for ulps in (0.5, 4.0):
        own_rules(aten_exp, torch.exp, ulps)
        out, mode = _trace(torch.exp, x)
        assert not mode.fallbacks, mode.fallbacks
        bounds[ulps] = mode.error(out)
        y = out.abs()
        assert bool((bounds[ulps] >= U64 * y).all())  # a float64 exp is at best correctly rounded
        assert bool((bounds[ulps] <= 1e-14 * y).all())  # and a few ulps is all a libm exp loses
    assert torch.allclose(bounds[4.0], 8 * bounds[0.5], rtol=1e-9, atol=0)  # eight times the ulps, eight times the bound


@pytest.mark.parametrize(("name", "fn", "pole"), [("exp", torch.exp, False), ("reciprocal", torch.reciprocal, True)])
def test_a_monotone_rule_bounds_the_function_over_the_interval_its_input_may_lie_in(own_rules, name, fn, pole):
    """Increasing (exp) and decreasing (1/x on x > 0): the change is largest at one end of [x − E, x + E],
    a different end for each; the bound covers both ends and is no wider than the larger change."""
    own_rules(getattr(torch.ops.aten, name).default, fn, 4.0, pole)
    x = _seeded((12,), seed=12)[0].abs() + 0.5
    e = 1e-3 * x
    out, mode = _trace(fn, x, errors=((x, e),))
    assert not mode.fallbacks, mode.fallbacks
    bound = mode.error(out)
    change = torch.maximum((fn(x + e) - out).abs(), (fn(x - e) - out).abs())
    assert bool((bound >= change).all())
    assert bool((bound <= change * (1 + 1e-9)).all())  # rigorous, not a blanket
    assert mode.degree(out) == math.inf  # a watched input: no polynomial
    out, mode = _trace(lambda t: fn(torch.full_like(t, 1.5)), x)  # a constant: degree 0
    assert mode.degree(out) == 0


def test_a_monotone_rule_gives_no_finite_bound_where_the_interval_leaves_the_domain(own_rules):
    own_rules(torch.ops.aten.exp.default, torch.exp, 4.0)
    own_rules(torch.ops.aten.sqrt.default, torch.sqrt, 0.5)
    own_rules(torch.ops.aten.reciprocal.default, torch.reciprocal, 0.5, True)
    x = torch.tensor([700.0, 1.0], dtype=F64)  # exp(700 + 20) overflows float64: unbounded, not 1.8e308
    out, mode = _trace(torch.exp, x, errors=((x, torch.tensor([20.0, 0.0], dtype=F64)),))
    assert math.isinf(float(mode.error(out)[0])) and math.isfinite(float(mode.error(out)[1]))
    x = torch.tensor([0.1], dtype=F64)  # exp has no pole: an interval across zero is no reason for an infinite bound
    out, mode = _trace(torch.exp, x, errors=((x, torch.tensor([0.5], dtype=F64)),))
    assert 0.5 < float(mode.error(out)) < math.exp(0.6) - math.exp(0.1) + 1e-9
    x = torch.tensor([1e-4, 4.0], dtype=F64)  # sqrt of [−9e-4, 1.1e-3] is not even real at one end
    out, mode = _trace(torch.sqrt, x, errors=((x, torch.tensor([1e-3, 1e-3], dtype=F64)),))
    assert math.isinf(float(mode.error(out)[0])) and math.isfinite(float(mode.error(out)[1]))
    x = torch.tensor([1.0, 4.0], dtype=F64)  # 1/x over [−1, 3] crosses its pole, though both ends are finite
    out, mode = _trace(torch.reciprocal, x, errors=((x, torch.tensor([2.0, 1.0], dtype=F64)),))
    assert math.isinf(float(mode.error(out)[0])) and math.isfinite(float(mode.error(out)[1]))


def test_a_real_only_rule_sends_complex_operands_to_the_named_fallback(own_rules):
    own_rules(aten_exp, torch.exp, 4.0)
    z = torch.complex(*_seeded((6,), (6,), seed=13)).to(torch.complex64)
    out, mode = _trace(torch.exp, z)
    assert list(mode.fallbacks) == ["aten.exp.default"] and "failed" not in mode.fallbacks["aten.exp.default"], mode.fallbacks
    error = (out.to(torch.complex128) - torch.exp(z.to(torch.complex128))).abs()
    assert bool(torch.isfinite(mode.error(out)).all()) and bool((error <= mode.error(out)).all())


aten_exp = torch.ops.aten.exp.default


# ---- the fallback: ops with neither a rule nor a decomposition --------------------------------------

def _only_fallback(mode):
    """The one fallback taken, as (op, how): never a rule that failed."""
    (item,) = mode.fallbacks.items()
    assert "failed" not in item[1], item
    return item


def test_a_fallback_op_at_exact_inputs_is_bounded_by_a_few_ulps_of_float64():
    """Bessel's i0 has no rule: float64 evaluates it, and float64's i0 is not correctly rounded (up to
    about 3·u·|y| off on this grid, against 100-digit mpmath): the bound allows for that, and no more."""
    mpmath = pytest.importorskip("mpmath")
    x = torch.linspace(-20, 20, 41, dtype=F64)
    out, mode = _trace(torch.special.i0, x)
    name, how = _only_fallback(mode)
    assert "i0" in name and how.startswith("its rounding measured against float64 (exact inputs)"), how
    with mpmath.workprec(80):
        err = torch.tensor([float(abs(mpmath.mpf(o) - mpmath.besseli(0, mpmath.mpf(v)))) for o, v in zip(out.tolist(), x.tolist())], dtype=F64)
    bound = mode.error(out)
    assert bool((err <= bound).all()) and bool((bound <= 1e-14 * out.abs()).all())
    assert mode.degree(out) == math.inf


@pytest.mark.parametrize("side", [1.0, -1.0], ids=["rising", "falling"])
def test_a_fallback_op_moves_its_inputs_both_ways_and_doubles_the_larger_change(side):
    """i0 rises for x > 0 and falls for x < 0: the larger change is at x + E on one side, x − E on the other."""
    x = side * torch.tensor([0.5, 1.5, 3.0], dtype=F64)
    e = torch.tensor([1e-3, 2e-3, 1e-2], dtype=F64)
    out, mode = _trace(torch.special.i0, x, errors=((x, e),))
    _, how = _only_fallback(mode)
    assert how.startswith("propagation by moving its inputs by their errors, × 2"), how
    change = torch.maximum((torch.special.i0(x + e) - out).abs(), (torch.special.i0(x - e) - out).abs())
    bound = mode.error(out)
    assert bool((bound >= 2 * change).all()) and bool((bound <= 2 * change * (1 + 1e-9) + 1e-13 * out.abs()).all())


def test_a_fallback_op_moves_only_the_inputs_that_carry_an_error():
    y, x = torch.tensor([0.3, -2.0, 1.0], dtype=F64), torch.tensor([1.0, 0.5, -3.0], dtype=F64)
    e = torch.full_like(y, 1e-4)
    mode = RunningError()
    mode.watch(y)  # x: a constant made outside the trace, exact
    mode.set_error(y, e)
    with mode:
        out = torch.atan2(y, x)
    _only_fallback(mode)
    change = torch.maximum((torch.atan2(y + e, x) - out).abs(), (torch.atan2(y - e, x) - out).abs())
    bound = mode.error(out)
    assert bool((bound >= 2 * change).all()) and bool((bound <= 2 * change * (1 + 1e-9) + 1e-13).all())
    mode = RunningError()  # the primitive itself, as a decomposition calls it: x reaches the fallback untracked
    mode.watch(y)
    mode.set_error(y, e)
    with mode:
        out = torch.ops.prims.atan2.default(y, x)
    _only_fallback(mode)
    assert torch.allclose(mode.error(out), bound, rtol=1e-12, atol=0)


def test_a_fallback_op_gives_no_finite_bound_where_a_moved_input_leaves_the_domain_or_the_range():
    x = torch.tensor([0.999, 0.5], dtype=F64)  # ndtri(0.999 + 0.01) is NaN: past 1, no quantile
    out, mode = _trace(torch.special.ndtri, x, errors=((x, torch.tensor([1e-2, 1e-3], dtype=F64)),))
    _only_fallback(mode)
    assert math.isinf(float(mode.error(out)[0])) and math.isfinite(float(mode.error(out)[1]))
    x = torch.tensor([700.0, 1.0], dtype=F64)  # i0(720) overflows float64: unbounded, not 1.8e308
    out, mode = _trace(torch.special.i0, x, errors=((x, torch.tensor([20.0, 1e-3], dtype=F64)),))
    _only_fallback(mode)
    assert math.isinf(float(mode.error(out)[0])) and math.isfinite(float(mode.error(out)[1]))


def _exact_inverse(A):
    """The inverse of a small float64 matrix in rational arithmetic (Gauss–Jordan on Fractions)."""
    n = A.shape[0]
    M = [[Fraction(float(v)) for v in row] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(A.tolist())]
    for col in range(n):
        pivot = next(r for r in range(col, n) if M[r][col] != 0)
        M[col], M[pivot] = M[pivot], M[col]
        M[col] = [v / M[col][col] for v in M[col]]
        for r in range(n):
            if r != col and M[r][col] != 0:
                M[r] = [a - M[r][col] * b for a, b in zip(M[r], M[col])]
    return [row[n:] for row in M]


def test_a_fallback_op_with_several_outputs_bounds_each_float_output_and_no_integer_one():
    A = torch.tensor([[4.0, 1.0, 0.3], [0.7, 3.0, -1.1], [0.2, -0.9, 5.0]], dtype=F64)
    (inverse, info), mode = _trace(torch.linalg.inv_ex, A)
    name, _ = _only_fallback(mode)
    assert "inv_ex" in name and info.dtype == torch.int32
    exact = _exact_inverse(A)
    err = torch.tensor([[float(abs(Fraction(float(inverse[i, j])) - exact[i][j])) for j in range(3)] for i in range(3)], dtype=F64)
    assert bool((err <= mode.error(inverse)).all()) and bool((mode.error(inverse) <= 1e-14).all())
    assert not bool(mode.error(info).any())
    # uneven errors, large enough that moving A up changes some entries of the inverse more, down others
    e = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0], [1.0, 0.0, 0.0]], dtype=F64) * 1e-2
    (inverse, info), mode = _trace(torch.linalg.inv_ex, A, errors=((A, e),))
    _only_fallback(mode)
    change = torch.maximum((torch.linalg.inv(A + e) - inverse).abs(), (torch.linalg.inv(A - e) - inverse).abs())
    bound = mode.error(inverse)
    assert bool((bound >= 2 * change).all()) and bool((bound <= 2 * change * (1 + 1e-6) + 1e-14).all())
    assert not bool(mode.error(info).any())


# ---- composite ops: computed by their own kernel, bounded by a float64 trace of their parts ----------

COMPOSITES = {
    "softmax": lambda t: torch.softmax(t, -1),
    "log_softmax": lambda t: torch.log_softmax(t, -1),
    "gelu": torch.nn.functional.gelu,
    "layer_norm": lambda t: torch.nn.functional.layer_norm(t, t.shape[-1:]),
    "logsumexp": lambda t: torch.logsumexp(t, -1),
    "silu": torch.nn.functional.silu,
    "var": lambda t: torch.var(t, -1),
    "std": lambda t: torch.std(t, -1),
    "std, correction 0, keepdim": lambda t: torch.std(t, -1, correction=0, keepdim=True),
    "var_mean": lambda t: torch.var_mean(t, -1, keepdim=True)[0],
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("name", COMPOSITES)
def test_a_composite_op_runs_as_without_the_mode_and_its_bound_is_its_measured_error(name, dtype):
    """The mode changes no value (the op's own kernel runs, not its decomposition in the op's dtype), and
    on exact inputs the bound is what that kernel lost against float64, plus float64's own tiny share."""
    f = COMPOSITES[name]
    x = _seeded((4, 24), seed=21, scale=3.0)[0].to(dtype)
    out, mode = _trace(f, x)
    assert torch.equal(out, f(x)), name
    assert not mode.fallbacks, mode.fallbacks
    reference = f(x.to(F64))
    error, bound = (out.to(F64) - reference).abs(), mode.error(out)
    assert bool((error <= bound).all()) and bool((bound <= error + 1e-12).all()), name  # values of size 1 to 10


@pytest.mark.parametrize("name", COMPOSITES)
def test_a_composite_ops_bound_carries_its_inputs_errors(name):
    f = COMPOSITES[name]
    x = _seeded((3, 16), seed=22)[0].to(torch.float32)
    e = torch.full(x.shape, 1e-3, dtype=F64)
    out, mode = _trace(f, x, errors=((x, e),))
    bound = mode.error(out)
    g = torch.Generator().manual_seed(23)
    for _ in range(4):  # exact inputs anywhere within the errors: the exact result stays within the bound
        moved = x.to(F64) + e * (2 * torch.rand(x.shape, generator=g, dtype=F64) - 1)
        assert bool(((out.to(F64) - f(moved)).abs() <= bound).all()), name


def test_a_composite_ops_degree_is_its_parts():
    x = _seeded((3, 8), seed=24)[0]
    out, mode = _trace(lambda t: torch.var(t, -1), x)
    assert mode.degree(out) == 2  # a sum of squares of the watched inputs
    out, mode = _trace(lambda t: torch.softmax(t, -1), x)
    assert mode.degree(out) == math.inf
    mode = RunningError()  # a composite op of a constant (made outside, not watched): a constant
    with mode:
        out = torch.softmax(x, -1) * 1.0
    assert mode.degree(out) == 0


def test_a_composite_ops_boolean_output_is_uncertain_where_its_input_is_unbounded():
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float32)
    out, mode = _trace(torch.isposinf, x, errors=((x, torch.tensor([math.inf, 0.0, 1.0], dtype=F64)),))
    assert out.dtype == torch.bool and mode.error(out).tolist() == [True, False, False]
    out, mode = _trace(lambda t: torch.isposinf(t).to(F64), x)
    assert mode.degree(out) == 0  # a decision: piecewise constant


# ---- decisions and what they carry -----------------------------------------------------------------

def test_a_comparisons_output_is_uncertain_exactly_where_its_operands_may_swap_sides():
    a, b = torch.tensor([1.0, 2.0, 3.0, 5.0], dtype=F64), torch.tensor([2.0, 2.0, 2.5, 1.0], dtype=F64)
    out, mode = _trace(torch.gt, a, b)  # exact operands, one tie: every outcome is certain
    assert not mode.fallbacks and mode.error(out).tolist() == [False] * 4
    out, mode = _trace(lambda x, y: torch.gt(x, y).to(F64), a, b)
    assert mode.degree(out) == 0  # a decision is piecewise constant, whatever the operands' degree
    out, mode = _trace(torch.gt, a, b, errors=((a, torch.tensor([0.5, 0.0, 0.3, 1.0], dtype=F64)),
                                               (b, torch.tensor([0.6, 0.0, 0.3, 1.0], dtype=F64))))
    # |a − b| = (1, 0, 0.5, 4) against E_a + E_b = (1.1, 0, 0.6, 2)
    assert not mode.fallbacks and mode.error(out).tolist() == [True, True, True, False]


def test_a_piecewise_constant_ops_decision_is_its_value_and_no_kink_off_its_jumps():
    x = torch.tensor([0.26, -1.73, 2.04], dtype=F64)
    out, mode = _trace(lambda t: torch.round(t, decimals=1), x)
    assert torch.equal(out, torch.round(x, decimals=1))
    (d,) = mode.decisions
    assert d.op == "round" and torch.equal(d.outcome, out) and d.at_boundary == 0 and mode.at_kink() == []
    assert torch.equal(mode.error(out), torch.zeros(3, dtype=F64)) and mode.degree(out) == 0


def test_prims_division_divides_floats_and_truncates_integers_toward_zero():
    from gradcheck.rounding import _prim_div

    seven = torch.tensor([7, -7, 6], dtype=torch.int64)
    assert _prim_div(seven, torch.tensor([2, 2, -4])).tolist() == [3, -3, -1]  # C's integer division, not floor
    assert _prim_div(seven, 2.0).tolist() == [3.5, -3.5, 3.0]  # a float operand: true division
    assert _prim_div(seven.to(F64), torch.tensor([2, 2, -4])).tolist() == [3.5, -3.5, -1.5]
    assert _prim_div(7.0, torch.tensor([2])).tolist() == [3.5]


def test_a_declared_input_error_keeps_the_inputs_degree_and_is_a_float64_bound():
    x = _seeded((4,), seed=31)[0]
    mode = RunningError()
    mode.watch(x, degree=2.0)
    mode.set_error(x, torch.full((4,), 1e-3, dtype=torch.float32))  # a float32 error: kept as a float64 bound
    assert mode.degree(x) == 2.0 and mode.error(x).dtype == F64 and torch.equal(mode.error(x), torch.full((4,), 1e-3, dtype=torch.float32).to(F64))
    y = _seeded((4,), seed=32)[0]
    mode.set_error(y, torch.tensor(1e-2, dtype=F64))  # never watched: a variable of degree one, its error expanded
    assert mode.degree(y) == 1.0 and mode.error(y).shape == (4,)
    with mode:
        out = x * y
    assert mode.degree(out) == 3.0


def test_a_declared_error_is_copied_unless_the_caller_hands_it_over():
    x = _seeded((4,), seed=34)[0]
    mode = RunningError()
    e = torch.full((4,), 1e-3, dtype=F64)
    mode.set_error(x, e)
    e.mul_(100)  # the caller reuses its tensor: the declared bound stays what it was
    assert torch.equal(mode.error(x), torch.full((4,), 1e-3, dtype=F64))
    mode.set_error(x, torch.full((4,), 1e-3, dtype=torch.float32), copy=False)  # not float64: converted all the same
    assert mode.error(x).dtype == F64
    mode.set_error(x, torch.tensor(1e-2, dtype=F64), copy=False)  # not x's shape: expanded all the same
    assert mode.error(x).shape == (4,) and bool((mode.error(x) == 1e-2).all())


def test_a_rule_that_fails_is_named_and_leaves_an_infinite_bound_not_none(monkeypatch):
    from gradcheck import rounding

    def broken(c):
        raise ValueError("no such case")

    monkeypatch.setitem(rounding._RULES, torch.ops.aten.exp.default, broken)
    x = _seeded((3,), seed=33)[0]
    out, mode = _trace(torch.exp, x)
    assert torch.equal(out, torch.exp(x))  # the user's code is not broken
    assert "ValueError: no such case" in mode.fallbacks["aten.exp.default"]
    assert bool(torch.isinf(mode.error(out)).all()) and mode.degree(out) == math.inf


def test_helpers_find_every_tensor_and_make_float64_bounds():
    from gradcheck.rounding import _as_tensor, _leaves, _reduced_dims

    a, b, c = torch.zeros(1), torch.ones(2), torch.full((3,), 2.0)
    assert _leaves(((a, [b]), {"weight": c, "opts": {"bias": a}}, 3)) == [a, b, c, a, 3]  # keyword arguments too
    bound = _as_tensor(1e-10, torch.zeros(3, dtype=torch.float16))  # below float16's range: kept in float64
    assert bound.dtype == F64 and bound.shape == (3,) and bool((bound == 1e-10).all())
    x = torch.zeros(2, 3, 4)
    assert _reduced_dims(x, -1) == (2,) and _reduced_dims(x, [0, -2]) == (0, 1) and _reduced_dims(x, None) == (0, 1, 2)
    assert _reduced_dims(torch.tensor(1.0), -1) == (0,)  # a 0-d tensor's only dimension


def test_exact_mode_claims_an_exact_product_only_when_both_operands_and_the_magnitude_allow_it():
    on_grid = torch.tensor([[1.0, -2.0], [3.0, 4.0]], dtype=F64)
    off_grid = torch.tensor([[0.1, -2.0], [3.0, 4.0]], dtype=F64)  # 0.1: not a multiple of 2⁻¹⁶
    zeros = torch.zeros(2, 2, dtype=F64)
    for op in (torch.mm, lambda a, b: torch.bmm(a[None], b[None])[0]):
        assert bool((_traced_error(op, off_grid, on_grid, zeros, zeros, exact=True) > 0).any())
        assert bool((_traced_error(op, on_grid, off_grid, zeros, zeros, exact=True) > 0).any())
        assert torch.equal(_traced_error(op, on_grid, on_grid, zeros, zeros, exact=True), zeros)
    v = torch.tensor([0.1, 2.0], dtype=F64)
    for op, a, b in ((torch.mv, off_grid, v), (torch.dot, v, v)):  # vectors: their own norms, in exact mode too
        out, mode = _trace(op, a, b, exact=True)
        assert not mode.fallbacks and bool((mode.error(out) > 0).all()) and bool(torch.isfinite(mode.error(out)).all())
    row, col = torch.full((1, 4), 2.0**10, dtype=F64), torch.full((4, 1), 2.0**10, dtype=F64)  # one element: 2²² past 2²¹
    assert bool((_traced_error(lambda a, b: torch.bmm(a[None], b[None])[0], row, col, torch.zeros(1, 4, dtype=F64),
                               torch.zeros(4, 1, dtype=F64), exact=True) > 0).all())


def test_a_product_over_one_index_and_its_degree():
    A, B = _seeded((3, 1), (1, 2), seed=41)
    zA, zB = torch.zeros_like(A), torch.zeros_like(B)
    got = _traced_error(lambda a, b: torch.bmm(a[None], b[None])[0], A, B, zA, zB)
    assert _close_above(got, _matmul_bound(A, B, zA, zB, 1)), (got, _matmul_bound(A, B, zA, zB, 1))
    M, v = _seeded((2, 3), (3,), seed=42)
    for fn, args in ((torch.mv, (M, v)), (torch.dot, (v, v * 2)), (lambda a, b: torch.bmm(a[None], b[None])[0], (A, B))):
        out, mode = _trace(fn, *args)
        assert mode.degree(out) == 2  # a product of two watched inputs


def test_a_strided_view_of_an_exact_input_is_exact_and_shares_later_errors():
    x = torch.arange(6, dtype=F64)
    windows, mode = _trace(lambda t: t.as_strided((3, 2), (2, 1)), x)  # overlapping windows of an input
    assert not mode.fallbacks and torch.equal(mode.error(windows), torch.zeros(3, 2, dtype=F64))
    out, mode = _trace(lambda t: t.unfold(0, 2, 1) * 3.0, x)
    assert not mode.fallbacks and mode.error(out).shape == (5, 2) and bool(torch.isfinite(mode.error(out)).all())


def test_traced_passes_exact_mode_on_and_an_unseen_tensor_has_degree_zero():
    grid = torch.tensor([3.0, 2.0**-16, 2.0**19], dtype=F64)
    out, mode = traced(lambda t: t * 3, grid, watch=(grid,), exact=True)
    assert torch.equal(mode.error(out), torch.zeros(3, dtype=F64))
    out, mode = traced(lambda t: t * 3, grid, watch=(grid,))
    assert bool((mode.error(out) > 0).all())  # outside exact mode a product is taken to round
    assert mode.degree(torch.ones(2)) == 0 and mode.error(torch.ones(2)) is None  # never seen: a constant


def test_a_float64_quotient_of_exact_operands_errs_by_half_an_ulp():
    a, b = torch.tensor([1.0, -3.0, 0.7], dtype=F64), torch.tensor([3.0, 7.0, -0.1], dtype=F64)
    out, mode = _trace(torch.div, a, b)
    assert torch.allclose(mode.error(out), U64 * (a / b).abs(), rtol=1e-12, atol=torch.finfo(F64).tiny * 2)  # fl(a/b) = (a/b)(1 + δ)


def test_runs_with_different_numbers_of_decisions_did_not_decide_the_same():
    x = torch.tensor([0.5, -0.5], dtype=F64)
    _, one = traced(torch.relu, x, watch=(x,))
    _, two = traced(lambda t: torch.relu(torch.relu(t)), x, watch=(x,))
    assert same_decisions(one.decisions, one.decisions) and not same_decisions(one.decisions, two.decisions)
    assert not same_decisions(one.decisions, []) and not same_decisions([], one.decisions)


# ---- infinities: exact in IEEE arithmetic, unbounded when made from finite operands --------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16], ids=str)
def test_a_masked_softmax_keeps_its_power(dtype):
    """An attention mask: −inf filled in, then softmax. −inf − max is −inf exactly; its rounding is none,
    so the bound stays finite where the value is, and a VJP that returns zeros (or is off by 1e-3) fails."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g, dtype=F64).to(dtype)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[:, 3:] = True

    def f(t):
        return torch.softmax(t.masked_fill(mask, float("-inf")), -1)

    def vjp(t, G):
        y = f(t)
        return (y * (G - (G * y).sum(-1, keepdim=True)),)

    assert gradcheck.check_vjp(f, vjp, (x,)).ok
    assert not gradcheck.check_vjp(f, lambda t, G: (torch.zeros_like(t),), (x,)).ok
    assert not gradcheck.check_vjp(f, lambda t, G: (vjp(t, G)[0] * (1 + 1e-3),), (x,)).ok


def test_an_overflow_from_finite_operands_is_unbounded_and_inf_arithmetic_is_exact():
    big = torch.tensor([1e308, 2.0], dtype=F64)
    (y,), mode = traced(lambda t: (t * 10,), big, watch=(big,))
    assert math.isinf(float(mode.error(y)[0])) and float(mode.error(y)[1]) < 1e-14  # 1e309 is not a float64
    inf = torch.tensor([-math.inf, 1.0], dtype=F64)
    (z,), mode = traced(lambda t: (t - 3.0,), inf, watch=(inf,))
    assert float(mode.error(z)[0]) == 0.0  # −inf − 3 is −inf, exactly


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_sorted_values_carry_their_inputs_error_and_a_sort_vjp_is_checked(dtype):
    """sort and topk select: exact, but an input known to within E comes out within max E along the
    sorted dimension — never as exact (which a correct backward of rounded values would then fail)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 7, generator=g, dtype=F64).to(dtype)
    (values, top), mode = traced(lambda t: (torch.sort(t / 3, dim=1).values, torch.topk(t / 3, 2, dim=0).values), x, watch=(x,))
    exact_sorted = torch.sort(x.double() / 3, dim=1).values
    assert bool(((values.double() - exact_sorted).abs() <= mode.error(values)).all())
    assert bool((mode.error(values) > 0).all() if dtype != F64 else (mode.error(values) > 0).any())
    assert {d.op for d in mode.decisions} >= {"sort", "topk"}

    def f(t):
        return torch.sort(t * 1.5, dim=1).values

    def vjp(t, G):
        order = torch.sort(t * 1.5, dim=1).indices
        return (torch.zeros_like(t).scatter(1, order, G * 1.5),)

    assert gradcheck.check_vjp(f, vjp, (x,)).ok
    assert not gradcheck.check_vjp(f, lambda t, G: (torch.zeros_like(t).scatter(1, torch.sort(t, dim=1).indices, G),), (x,)).ok
