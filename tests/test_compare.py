"""Value comparison (gradcheck.compare) at its edges: empty gradients, non-finite values and bounds,
and what a comparison says about its own power."""

from __future__ import annotations

import math

import pytest
import torch

import gradcheck
from gradcheck.compare import element_comparison, error_ratio, probe_comparison
from gradcheck.oracles import Probe
from gradcheck.tolerance import gamma

F64 = torch.float64


def _compare(actual, expected, bound, exact=False):
    return element_comparison(1, "W", "autograd", exact, torch.tensor(actual, dtype=F64), torch.tensor(expected, dtype=F64),
                              torch.tensor(bound, dtype=F64))


def test_an_empty_gradient_passes_and_keeps_its_input_and_oracle():
    c = element_comparison(2, "b", "finite_differences", True, torch.zeros(0, 3), torch.zeros(0, 3, dtype=F64), torch.zeros(0, 3))
    assert (c.input_index, c.input_name, c.oracle, c.exact, c.worst) == (2, "b", "finite_differences", True, "-")
    assert c.ok and (c.ratio, c.max_abs_error, c.max_rel_error, c.abs_error, c.bound) == (0, 0, 0, 0, 0)
    assert math.isnan(c.actual) and math.isnan(c.expected)  # no element, so no values to show
    assert c.describe().startswith("input 2 (b) vs finite_differences: worst at -")


def test_equal_infinities_are_no_error_and_do_not_hide_a_finite_one():
    c = _compare([math.inf, 1.0 + 2**-40], [math.inf, 1.0], [0.0, 1e-10])
    assert c.ok, c.describe()
    assert (c.max_abs_error, c.worst) == (2**-40, "(1,)")


def test_a_nan_in_the_gradient_is_an_infinite_error_not_a_nan():
    c = _compare([1.0, math.nan], [1.0, 2.0], [1e-10, 1e-10])
    assert not c.ok and c.worst == "(1,)"
    assert c.abs_error == c.max_abs_error == c.ratio == math.inf


def test_an_infinite_or_nan_bound_never_fails_and_has_no_power():
    c = _compare([1.0, 5.0], [1.5, 2.0], [math.inf, math.nan])
    assert c.ok and c.ratio == 0
    assert c.bound == math.inf and c.power == math.inf and c.no_power


def test_a_failing_element_is_described_by_its_own_values():
    c = _compare([1.0, 3.0], [1.0, 2.0], [0.1, 0.25], exact=True)
    assert not c.ok and (c.exact, c.worst, c.actual, c.expected, c.bound, c.ratio) == (True, "(1,)", 3.0, 2.0, 0.25, 4.0)
    assert (c.abs_error, c.max_abs_error, c.max_rel_error) == (1.0, 1.0, 0.5)
    assert c.power == pytest.approx(0.1, abs=0) and c.no_power is False


def test_power_is_the_smallest_relative_error_the_bound_would_catch():
    # bounds 0.1 on values 2 and 4: a relative error of 0.1/4 at the second element is caught; an
    # exact zero (0/0) offers no relative power and is left out rather than counted as 0
    c = _compare([2.0, 4.0, 0.0], [2.0, 4.0, 0.0], [0.1, 0.1, 0.0])
    assert c.ok and c.power == pytest.approx(0.025, rel=1e-12, abs=0) and not c.no_power


@pytest.mark.parametrize(("expected", "bound", "no_power"), [
    ([1.0], [2.0], True),             # a bound above the value: a wrong sign passes, so no power
    ([1.0], [1.0], True),             # a bound as large as the value: still none
    ([1.0, 1.0], [2.0, 0.5], False),  # one element where the bound is below the value is enough
    ([0.25], [0.5], True),            # (bounds below 1 too)
    ([0.0], [0.0], False),            # a zero bound (exact arithmetic) catches any error, even on a zero gradient
])
def test_no_power_means_no_element_has_a_bound_below_its_value(expected, bound, no_power):
    assert _compare(expected, expected, bound).no_power is no_power


def test_a_report_claims_no_power_it_does_not_have():
    """A zero gradient gives no relative power anywhere: the summary says so instead of quoting the
    largest float64 as the relative error it would catch."""
    x = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    report = gradcheck.check_vjp(lambda x: (x * 0).sum() + 1.0, lambda x, G: (torch.zeros_like(x) * G,), (x,), names=("x",))
    assert report.ok and all(c.power == math.inf and c.no_power for c in report.comparisons)
    assert "would catch" not in str(report) and "no power: input 0 (x) vs autograd" in str(report)


# ---- the adjoint identity along probes ------------------------------------------------------------

def _t(*values):
    return torch.tensor(values, dtype=F64)


def _probe(delta, difference, error=0.0, element=None, crossed_kink=False):
    return Probe(tuple(delta), difference, 1.0, error, element, crossed_kink, 2.0)


# two inputs, manual gradients (1, 2) and (3,), a step (2, −4) and (1,): ⟨manual, δ⟩ = 2 − 8 + 3 = −3 over
# 3 terms of magnitude Σ|terms| = 13; the step's longest element is 4 (errors are reported per unit step)
MANUAL = (_t(1.0, 2.0), _t(3.0))
DELTA = (_t(2.0, -4.0), _t(1.0))
NO_ERRORS = (_t(0.0, 0.0), _t(0.0))


def test_a_probe_allows_the_rounding_of_the_dot_product_and_reports_per_unit_step():
    c = probe_comparison(0, "A", False, MANUAL, NO_ERRORS, [_probe(DELTA, -3.0 + 1e-14)])
    assert (c.input_index, c.input_name, c.oracle, c.exact, c.worst) == (0, "A", "finite_differences", False, "probe 0")
    allowed = gamma(3, F64) * 13  # Higham: a float64 dot product of 3 terms errs by at most γ₃·Σ|terms|
    assert c.bound == pytest.approx(allowed / 4, rel=1e-12, abs=0)
    assert c.ratio == pytest.approx(abs(-3.0 - (-3.0 + 1e-14)) / allowed, rel=1e-6) and not c.ok
    assert (c.actual, c.expected) == (-3.0 / 4, (-3.0 + 1e-14) / 4)
    assert c.abs_error == c.max_abs_error == pytest.approx(abs(-3.0 - (-3.0 + 1e-14)) / 4, rel=1e-12, abs=0)
    assert c.power == pytest.approx(allowed / 3, rel=1e-12, abs=0) and c.no_power is False


def test_a_probe_adds_the_gradients_own_bounds_along_the_step_and_the_differences_error():
    # Σ E·|δ| = 0.5·2 + 0.25·4 + 1·1 = 3, plus the probe's own error 0.3; a gap of 0.1 (the ratio is
    # computed in float64: neither 0.1 nor 3.3 is a float32)
    errors = (_t(0.5, 0.25), _t(1.0))
    c = probe_comparison(0, "A", False, MANUAL, errors, [_probe(DELTA, -3.0 + 0.1, error=0.3)])
    allowed = 3.0 + 0.3 + gamma(3, F64) * 13
    assert c.ok and c.ratio == pytest.approx(abs(-3.0 - (-3.0 + 0.1)) / allowed, rel=1e-13)
    assert c.bound == pytest.approx(allowed / 4, rel=1e-12, abs=0) and c.max_rel_error == pytest.approx(0.1 / 2.9, rel=1e-12, abs=0)
    assert c.power == pytest.approx(allowed / 2.9, rel=1e-12, abs=0) and c.no_power  # the bound exceeds the difference


def test_a_one_term_dot_product_rounds_once():
    c = probe_comparison(0, "a", False, (_t(3.0),), (_t(0.0),), [_probe((_t(0.5),), 1.5)])
    assert c.ok and c.bound == pytest.approx(gamma(1, F64) * 1.5 / 0.5, rel=1e-12, abs=0)


@pytest.mark.parametrize(("unit", "named"), [(0.5, "(0,)"), (0.5j, "(0,) along i")])
def test_a_complex_coordinate_probe_names_the_part_it_moved(unit, named):
    delta = torch.tensor([unit, 0], dtype=torch.complex128)
    c = probe_comparison(0, "z", False, (torch.tensor([1 + 2j, 0], dtype=torch.complex128),), (_t(0.0, 0.0),),
                         [_probe((delta,), 0.5 if unit == 0.5 else 1.0, element=(0, (0,)))])
    assert c.ok and c.worst == named


def test_the_worst_probe_is_the_one_with_the_largest_error_relative_to_its_bound():
    # probe 0: an error of 1 against 10; probe 1: 0.5 against 1 (the larger error is the smaller ratio)
    probes = [_probe(DELTA, -3.0 + 1.0, error=10.0), _probe(DELTA, -3.0 + 0.5, error=1.0)]
    c = probe_comparison(0, "A", False, MANUAL, NO_ERRORS, probes)
    assert c.worst == "probe 1" and c.ratio == pytest.approx(0.5, rel=1e-12, abs=0) and c.max_abs_error == 1.0 / 4
    # equal ratios (both exact): the first is named
    tied = probe_comparison(0, "A", True, MANUAL, NO_ERRORS, [_probe(DELTA, -3.0), _probe(DELTA, -3.0, error=1.0)])
    assert tied.worst == "probe 0" and tied.ratio == 0


@pytest.mark.parametrize(("difference", "error", "no_power"), [
    (-3.0, 3.0, True),    # an allowance as large as the difference: no power
    (-3.0, 2.5, False),
    (-0.25, 0.5, True),   # (allowances below 1 too)
])
def test_a_probe_has_no_power_where_its_allowance_reaches_the_difference(difference, error, no_power):
    exact_manual = (_t(1.0, 2.0), _t(3.0 + difference + 3.0))  # ⟨manual, δ⟩ = difference: no gap
    assert probe_comparison(0, "A", True, exact_manual, NO_ERRORS, [_probe(DELTA, difference, error)]).no_power is no_power


def test_an_exact_zero_directional_derivative_has_power():
    c = probe_comparison(0, "A", True, (_t(2.0, 1.0), _t(0.0)), NO_ERRORS, [_probe(DELTA, 0.0)])
    assert c.ok and c.bound == 0 and c.no_power is False and c.power == math.inf


def test_an_exact_integer_dot_product_has_no_rounding_allowance_below_two_to_the_53():
    exact = probe_comparison(None, "all", True, MANUAL, NO_ERRORS, [_probe(DELTA, -3.0)])
    assert exact.ok and exact.bound == 0 and "exact arithmetic, bit for bit" in exact.describe()
    assert not probe_comparison(None, "all", True, MANUAL, NO_ERRORS, [_probe(DELTA, -2.0)]).ok
    big = (_t(2.0**50, 100.0), _t(3.0))  # magnitude 2⁵¹ + 403: still exact
    assert probe_comparison(None, "all", True, big, NO_ERRORS, [_probe(DELTA, 2.0**51 - 400 + 3)]).bound == 0
    # a non-integer answer, or a magnitude of 2⁵³ (float64 may have rounded), gets the γ allowance back
    quarter = (_t(0.25, 2.0), _t(3.0))  # ⟨manual, δ⟩ = 0.5 − 8 + 3 = −4.5 over Σ|terms| = 11.5
    c = probe_comparison(None, "all", True, quarter, NO_ERRORS, [_probe(DELTA, -4.5)])
    assert c.bound == pytest.approx(gamma(3, F64) * 11.5 / 4, rel=1e-12, abs=0)
    huge = (_t(2.0**52, 0.0), _t(2.0**52))
    c = probe_comparison(None, "all", True, huge, NO_ERRORS, [_probe((_t(1.0, 0.0), _t(1.0)), 2.0**53)])
    assert c.bound == pytest.approx(gamma(3, F64) * 2.0**53, rel=1e-12, abs=0)


def test_a_missing_gradient_counts_as_zero_along_its_step():
    c = probe_comparison(1, "B", False, (None, _t(3.0)), NO_ERRORS, [_probe(DELTA, 3.0)])
    assert c.ok and c.actual == 3.0 / 4 and c.bound == pytest.approx(gamma(3, F64) * 3 / 4, rel=1e-12, abs=0)


def test_a_coordinate_probe_names_its_element_and_kinked_probes_are_skipped():
    kinked = _probe(DELTA, 100.0, crossed_kink=True)
    coordinate = _probe((_t(0.0, 1.0), None), 2.5, element=(0, (1,)))
    c = probe_comparison(0, "A", False, MANUAL, NO_ERRORS, [kinked, coordinate])
    assert c.worst == "(1,)" and not c.ok and c.inconclusive is None  # 2 against 2.5, the kinked probe left out
    assert (c.actual, c.expected) == (2.0, 2.5)


def test_when_every_probe_crossed_a_kink_the_comparison_is_inconclusive():
    c = probe_comparison(2, "W", True, MANUAL, NO_ERRORS, [_probe(DELTA, 100.0, crossed_kink=True)] * 2)
    assert (c.input_index, c.input_name, c.oracle, c.exact) == (2, "W", "finite_differences", True)
    assert c.ok and c.worst == "every probe crossed a kink"
    assert c.inconclusive == "f is not smooth along any probe (a kink between the probe points)"
    assert (c.ratio, c.max_abs_error, c.max_rel_error, c.bound, c.abs_error) == (0, 0, 0, 0, 0)
    assert math.isnan(c.actual) and math.isnan(c.expected)
    none = probe_comparison(2, "W", False, MANUAL, NO_ERRORS, [])
    assert none.ok and none.worst == "-" and none.inconclusive is None


def test_non_finite_probes():
    # a NaN gradient shows as an infinite error, not a NaN one (check_vjp reports its NaN values before any comparison)
    c = probe_comparison(0, "A", False, (_t(math.nan, 2.0), _t(3.0)), NO_ERRORS, [_probe(DELTA, -3.0)])
    assert c.max_abs_error == c.abs_error == math.inf
    # φ overflowed (an infinite difference) against a finite allowance: a failure
    assert not probe_comparison(0, "A", False, MANUAL, NO_ERRORS, [_probe(DELTA, math.inf)]).ok
    # … against an infinite allowance: nothing to compare, no error
    c = probe_comparison(0, "A", False, MANUAL, NO_ERRORS, [_probe(DELTA, math.inf, error=math.inf)])
    assert c.ok and c.max_abs_error == 0
    # a NaN allowance is an infinite one: no power, the gap still shown
    c = probe_comparison(0, "A", False, MANUAL, NO_ERRORS, [_probe(DELTA, 1.0, error=math.nan)])
    assert c.ok and c.ratio == 0 and c.bound == math.inf and c.max_abs_error == 1.0
    c = probe_comparison(0, "A", False, MANUAL, NO_ERRORS, [_probe(DELTA, 1.0, error=math.inf)])
    assert c.ok and c.max_abs_error == 1.0


# ---- error ratios ---------------------------------------------------------------------------------

def test_error_ratio_decides_the_edge_cases():
    error = _t(0.0, 0.0, 1.0, 1.0, math.inf, math.nan, math.nan, 3.0)
    bound = _t(0.0, math.inf, 0.0, math.inf, math.inf, 1.0, math.inf, 2.0)
    # no error is 0; an infinite bound has no power (0); a positive error on a zero bound, and a NaN
    # error whatever the bound, are infinite
    assert error_ratio(error, bound).tolist() == [0.0, 0.0, math.inf, 0.0, 0.0, math.inf, math.inf, 1.5]
    assert _compare([1.0], [0.0], [0.0]).ratio == math.inf
    assert "error/bound inf" in _compare([1.0], [0.0], [0.0]).describe()


def test_relative_error_of_the_worst_element():
    assert _compare([3.0, 1.0], [2.0, 1.0], [0.1, 0.1]).max_rel_error == 0.5  # an error of exactly 1 on 2
    assert _compare([1.0], [1.0], [0.1]).max_rel_error == 0
    assert _compare([0.5], [0.0], [0.1]).max_rel_error == math.inf  # an error on a zero value


def test_the_weighted_sum_behind_a_probes_rounding_is_each_term_once():
    """``Σ |wᵢ|·vᵢ`` (oracles' chunked sum, which bounds φ's rounding): every term counted once, the signs of
    the weights dropped — a term counted twice would loosen the bound, one dropped would break it."""
    from gradcheck.oracles import _weighted_sum

    weights, values = torch.tensor([1.0, -2.0, 0.5, -4.0, 3.0], dtype=torch.float64), torch.tensor([1.0, 2.0, 4.0, 0.25, 0.5], dtype=torch.float64)
    assert _weighted_sum(weights, values) == 1.0 + 4.0 + 2.0 + 1.0 + 1.5
    assert _weighted_sum(weights[:1], values[:1]) == 1.0 and _weighted_sum(weights[:0], values[:0]) == 0


def test_a_complex_probes_dot_product_rounding_counts_every_term_of_every_input():
    """With exact errors (all zero), what a probe allows is the rounding of the float64 dot product
    Re⟨manual, δ⟩ alone: γ_n of its magnitude, n = every real term over all inputs (two per complex element)."""
    manual = (torch.tensor([1 + 2j, -3 + 1j], dtype=torch.complex128), torch.tensor([0.5 - 1j, 2 + 0j], dtype=torch.complex128))
    delta = (torch.tensor([0.25 + 0.5j, 1 - 0.25j], dtype=torch.complex128), torch.tensor([-1 + 1j, 0.5 + 0.5j], dtype=torch.complex128))
    exact = sum(float((m.conj() * d).real.sum()) for m, d in zip(manual, delta))  # small dyadic numbers: exact
    magnitude = sum(float(((m.real * d.real).abs() + (m.imag * d.imag).abs()).sum()) for m, d in zip(manual, delta))
    probe = Probe(delta, exact, 1.0, 0.0, None, False, 1.0)
    zeros = tuple(torch.zeros(2, dtype=F64) for _ in manual)
    c = probe_comparison(0, "z", False, manual, zeros, [probe])
    scale = max(float(d.abs().max()) for d in delta)
    assert c.ok and c.bound == pytest.approx(gamma(8, F64) * magnitude / scale, rel=1e-12, abs=0)


def test_a_refined_probe_keeps_an_input_that_does_not_move_unmoved_and_holds_the_adjoint_identity():
    """sin(3·10⁴·a)·b varies faster than a step of 2⁻¹⁶ resolves: the probe refines its step (h/4, …) with b
    not moving, and what it returns still satisfies ⟨∇φ, δ⟩ = difference within its own error."""
    from gradcheck.oracles import probe

    a, b = torch.tensor([0.3, 0.7, 1.1], dtype=F64), torch.tensor([2.0], dtype=F64)
    k = 3e4

    def f(a, b):
        return (torch.sin(k * a).sum() * b).sum()

    delta = (torch.full_like(a, 2.0**-16), None)
    p = probe(f, (a, b), torch.tensor(1.0, dtype=F64), delta, None, exact=False)
    assert p.delta[1] is None and float(p.delta[0].abs().max()) < 6 * 2.0**-16  # refined: a smaller span
    analytic = float(((k * torch.cos(k * a) * b) * p.delta[0]).sum())
    assert abs(analytic - p.difference) <= p.error + 1e-9 * abs(analytic)


# ---- the finite-difference oracle alone, on awkward correct code and on a one-ulp slip -----------------

def _autograd_vjp(f):
    def vjp(*args):
        *inputs, G = args
        leaves = [t.detach().requires_grad_(True) for t in inputs]
        return torch.autograd.grad(f(*leaves), leaves, G)
    return vjp


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64], ids=str)
def test_finite_differences_alone_pass_a_correct_vjp_of_a_cancelling_low_precision_sum(dtype):
    """Σ t·w with w of mixed signs, in float32 and complex64: φ's own rounding is far above float64's and must
    be in the probe's error, or a correct gradient fails."""
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        # w and G multiples of 1/8 and small: the vjp G·w is exact, so its own bound leaves nothing to spare
        w = (torch.randint(-16, 17, (64,), generator=g) / 8).to(dtype)
        G = torch.tensor(0.375 - (0.25j if dtype.is_complex else 0), dtype=dtype)
        t = (torch.randn(64, generator=g, dtype=torch.float64) * 100).to(dtype)

        def f(t):
            return (t * w).sum()

        report = gradcheck.check_vjp(f, _autograd_vjp(f), (t,), cotangent=G, oracles=("finite_differences",), seed=seed)
        assert report.ok, str(report)


def test_finite_differences_alone_catch_an_integer_slip_in_exact_mode_however_large_phi_is():
    """Exact mode: φ of integers is computed without rounding even where its terms reach 10¹², so the probes
    allow nothing for it, and a gradient off by one in a single element is caught by the finite
    differences on their own (a float64 rounding allowance for φ, γₙ·Σ|G·f|, would be in the hundreds)."""
    g = torch.Generator().manual_seed(5)
    A = torch.randint(-4096, 4097, (32, 32), generator=g).to(F64)
    B = torch.randint(-4096, 4097, (32, 32), generator=g).to(F64)
    G = torch.randint(-4096, 4097, (32, 32), generator=g).to(F64)

    def slipped(A, B, G):
        dA = G @ B.mT
        dA[3, 7] += 1
        return dA, A.mT @ G

    assert gradcheck.check_vjp(torch.mm, _autograd_vjp(torch.mm), (A, B), cotangent=G, exact=True, oracles=("finite_differences",)).ok
    assert not gradcheck.check_vjp(torch.mm, slipped, (A, B), cotangent=G, exact=True, oracles=("finite_differences",)).ok
