"""The oracles on functions whose gradients are known in closed form, each on its own."""

from __future__ import annotations

import math

import pytest
import torch

import gradcheck
from gradcheck.oracles import (
    FULL_JACOBIAN_MAX_ELEMENTS,
    LARGE_INPUT_ELEMENTS,
    RANDOM_PROBES,
    OracleUnavailable,
    _below_fast_two_sum,
    _shifted,
    _steps,
    _two_sum_error,
    autograd_reference,
    directions,
    finite_difference_probes,
    inner_terms,
    nudged_references,
    phi,
    random_direction,
    traced_vjp,
    upcast,
)
from gradcheck.tolerance import gamma

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _lhs(p, grads) -> float:
    return sum(float((g * d).sum()) for g, d in zip(grads, p.delta) if d is not None)


def test_autograd_reference_gives_zeros_for_an_unused_input():
    x, unused = torch.randn(3, dtype=F64, generator=_gen()), torch.randn(2, dtype=F64, generator=_gen(1))
    G = torch.randn(3, dtype=F64, generator=_gen(2))
    ref = autograd_reference(lambda a, b: a * 3.0, (x, unused), G)
    assert torch.equal(ref.grads[0], 3.0 * G) and torch.equal(ref.grads[1], torch.zeros(2, dtype=F64))
    assert torch.equal(ref.errors[1], torch.zeros(2, dtype=F64))


def test_autograd_reference_bound_covers_its_own_rounding():
    """exp(30·x) in float64: the reference's derivative is 30·exp(30x)·G, computed with rounding the
    traced bound must cover; the closed form in float64 agrees within the sum of both bounds."""
    x = torch.linspace(-1, 1, 50, dtype=F64)
    G = torch.randn(50, dtype=F64, generator=_gen())
    ref = autograd_reference(lambda t: torch.exp(30 * t), (x,), G)
    closed = 30 * torch.exp(30 * x) * G
    slack = 4 * torch.finfo(F64).eps * closed.abs()  # the closed form's own three roundings
    assert bool(((ref.grads[0] - closed).abs() <= ref.errors[0] + slack).all())
    assert bool((ref.errors[0] > 0).all()) and bool((ref.errors[0] < 1e-13 * closed.abs()).all())


def test_autograd_reference_reports_a_kink_at_the_point():
    x = torch.tensor([0.0, 1.0, -2.0], dtype=F64)
    assert autograd_reference(torch.relu, (x,), torch.ones(3, dtype=F64)).kinks == ["relu"]
    assert autograd_reference(torch.relu, (x + 0.5,), torch.ones(3, dtype=F64)).kinks == []


def test_phi_bounds_its_rounding_with_mixed_sign_terms():
    """Σ t·w with w of mixed sign: the rounding of φ scales with Σ|t·w|, not with |Σ t·w| (the root
    of an old flaky false alarm)."""
    for seed in range(50):
        g = _gen(seed)
        t, w = torch.randn(100, dtype=F64, generator=g), torch.randn(100, dtype=F64, generator=g)
        value = phi(lambda a: (a * w).sum(), (t,), torch.tensor(1.0, dtype=F64), exact=False)
        exact = sum(__import__("fractions").Fraction(float(a)) * __import__("fractions").Fraction(float(b)) for a, b in zip(t, w))
        assert abs(__import__("fractions").Fraction(value.value) - exact) <= value.error
        assert value.degree == 1


def test_coordinate_probes_recover_a_cubic_derivative_exactly_by_richardson():
    x = torch.tensor([0.5, -1.25, 2.0], dtype=F64)
    G = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    probes = finite_difference_probes(lambda t: t**3, (x,), G, exact=False, generator=_gen())
    assert [p.element for p in probes] == [(0, (0,)), (0, (1,)), (0, (2,))]
    for p in probes:
        assert p.degree == 3 and p.weight == 6  # traced degree 3: the combination 8·D(h) − D(2h) is exact
        expected = _lhs(p, (3 * x**2 * G,))
        assert abs(expected - p.difference) <= p.error
        assert p.error < 1e-7 * abs(p.difference)  # rounding of φ over the step only: no truncation term


def test_a_quadratic_needs_only_one_pair_of_evaluations():
    x = torch.randn(4, 3, dtype=F64, generator=_gen())
    w = torch.randn(3, 2, dtype=F64, generator=_gen(1))
    G = torch.randn(4, 2, dtype=F64, generator=_gen(2))
    probes = finite_difference_probes(lambda a, b: a @ b, (x, w), G, exact=False, generator=_gen())
    assert len(probes) == RANDOM_PROBES
    assert all(p.weight == 1 and p.degree == 2 for p in probes)


def test_a_non_polynomial_gets_a_truncation_allowance():
    x = torch.tensor([0.3, -0.7, 1.1], dtype=F64)
    G = torch.ones(3, dtype=F64)
    exp_probes = finite_difference_probes(lambda t: torch.exp(30 * t), (x,), G, exact=False, generator=_gen())
    cubic_probes = finite_difference_probes(lambda t: (30 * t) ** 3, (x,), G, exact=False, generator=_gen())
    for p, q in zip(exp_probes, cubic_probes):
        assert p.degree == float("inf") and p.weight == 6
        assert p.error > 10 * q.error  # the gap between the O(h²) and O(h⁴) estimates
        assert abs(_lhs(p, (30 * torch.exp(30 * x) * G,)) - p.difference) <= p.error


def test_exact_probes_have_step_one_and_no_error():
    x = torch.tensor([[1.0, -2.0], [3.0, 0.0]], dtype=F64)
    G = torch.tensor(2.0, dtype=F64)
    probes = finite_difference_probes(lambda t: 0.5 * (t**2).sum(), (x,), G, exact=True, generator=_gen())
    assert len(probes) == 4
    for p in probes:
        assert p.error == 0 and p.weight == 1 and float(p.delta[0].abs().max()) == 2.0
        assert p.difference == 2.0 * float(x[p.element[1]]) * 2.0  # exact: φ' = G·x, times the step 2


def test_large_inputs_use_joint_random_directions_in_every_input():
    n = FULL_JACOBIAN_MAX_ELEMENTS + 1
    g = _gen(3)
    x, y = torch.randn(n, dtype=F64, generator=g), torch.randn(n, dtype=F64, generator=g)
    w = torch.randn(n, dtype=F64, generator=g)
    G = torch.tensor(1.5, dtype=F64)
    probes = finite_difference_probes(lambda a, b: (a * w).sum() + (b * b).sum(), (x, y), G, exact=False, generator=_gen())
    assert len(probes) == RANDOM_PROBES
    first = probes[0].delta
    for p in probes:
        assert p.element is None and all(d is not None for d in p.delta)
        assert all(len(torch.unique(d.abs())) > 2 for d in p.delta)  # not a sign pattern: permutations cannot cancel
    assert not torch.equal(first[0], probes[1].delta[0])  # directions differ from probe to probe


@pytest.mark.parametrize("seed", range(40))
def test_adjoint_identity_holds_within_the_bound_for_mixed_signs(seed):
    n = 64
    g = _gen(seed)
    x, w = torch.randn(n, dtype=F64, generator=g), torch.randn(n, dtype=F64, generator=g) * 10
    G = torch.tensor(1.5, dtype=F64)
    for p in finite_difference_probes(lambda t: (t * w).sum(), (x,), G, exact=False, generator=_gen(seed)):
        assert abs(_lhs(p, (G * w,)) - p.difference) <= p.error


def test_a_step_that_rounds_across_a_power_of_two_is_taken_as_realized():
    """x ± h·v rounds when it crosses 1.0; the probe uses the realized step (a correct float64 squared
    error once failed here by a factor of 10⁴)."""
    y_pred, y = torch.tensor([1.0], dtype=F64), torch.tensor([0.9999982815544685], dtype=F64)
    G = torch.tensor(1.0, dtype=F64)
    for p in finite_difference_probes(lambda a, b: 0.5 * ((a - b) ** 2).sum(), (y_pred, y), G, exact=False, generator=_gen()):
        residual = float(y_pred - y)
        assert abs(_lhs(p, (torch.tensor([residual], dtype=F64), torch.tensor([-residual], dtype=F64))) - p.difference) <= p.error


def test_only_moves_one_input():
    x, y = torch.randn(5, 2, dtype=F64, generator=_gen()), torch.randn(5, 2, dtype=F64, generator=_gen(1))
    probes = finite_difference_probes(lambda a, b: a * b, (x, y), torch.ones(5, 2, dtype=F64), exact=False,
                                      generator=_gen(), only=1)
    assert probes and all(p.delta[0] is None and p.delta[1] is not None for p in probes)


def test_a_probe_across_relus_kink_is_flagged():
    near = torch.tensor([1e-7, 2.0, -3.0, 4.0, 5.0, -6.0, 7.0, 8.0, 9.0], dtype=F64)
    far = near + torch.tensor([1.0] + [0.0] * 8, dtype=F64)
    G = torch.ones(9, dtype=F64)
    crossing = finite_difference_probes(torch.relu, (near,), G, exact=False, generator=_gen())
    assert any(p.crossed_kink for p in crossing)
    assert not any(p.crossed_kink for p in finite_difference_probes(torch.relu, (far,), G, exact=False, generator=_gen()))


def test_empty_input_has_no_probes():
    assert finite_difference_probes(lambda t: t.sum(), (torch.zeros(0, dtype=F64),), torch.tensor(1.0, dtype=F64),
                                    exact=False, generator=_gen()) == []


def _batch_norm(x):
    return torch.nn.functional.batch_norm(x, None, None, training=True, eps=1e-5)


def test_a_step_that_outruns_fs_scale_is_refined_not_a_false_alarm():
    """Batch norm of a constant column of 1000s varies on the scale of √eps ≈ 3e-3, below the step
    that |x| = 1000 asks for: the Richardson gap undershot and correct code failed (error/bound 4.6).
    The step is refined while the gap is large; the check passes and a 1e-2 error is still caught."""
    x = torch.tensor([[1000.0, 3.0], [1000.0, 4.0], [1000.0, 5.0]], dtype=F64)

    def vjp(x, G):
        return torch.func.vjp(_batch_norm, x)[1](G)

    def wrong(x, G):
        return (vjp(x, G)[0] * 1.01,)

    for seed in (0, 4):  # 4: the seed that needed the most refining
        report = gradcheck.check_vjp(_batch_norm, vjp, (x,), oracles=("finite_differences",), seed=seed)
        assert report.ok, str(report)
    assert not gradcheck.check_vjp(_batch_norm, wrong, (x,), oracles=("finite_differences",)).ok


# ---- the oracles' parts, one by one -----------------------------------------------------------------

def test_upcast_copies_so_the_oracles_never_touch_the_callers_tensors():
    x, h = torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([0.5], dtype=torch.float16)
    x64, h64 = upcast((x, h))
    x64 += 1
    assert torch.equal(x, torch.tensor([1.0, 2.0], dtype=F64)) and h64.dtype == F64 and float(h64) == 0.5


def test_inner_terms_of_a_real_and_a_complex_tensor_sum_to_the_real_part_of_the_inner_product():
    real = torch.tensor([[1.0, 2.0]], dtype=F64)
    cplx = torch.tensor([[3 + 4j, 5 - 1j]], dtype=torch.complex128)
    # Re⟨a, b⟩ = Re Σ conj(a)·b: 1·3 + 2·5 = 13 either way round (the imaginary parts meet zeros)
    for a, b in ((real, cplx), (cplx, real)):
        terms = inner_terms(a, b)
        assert not terms.is_complex() and float(terms.sum()) == 13.0 and float(terms.abs().sum()) == 13.0


def test_autograd_reference_of_an_unused_first_input_and_what_the_trace_saw():
    x, y = torch.tensor([1.0, 100.0]), torch.tensor([0.5, 2.0])
    ref = autograd_reference(lambda a, b: torch.exp(b), (x, y), torch.ones(2))
    assert torch.equal(ref.grads[0], torch.zeros(2)) and torch.equal(ref.grads[1], torch.exp(y))
    assert torch.equal(ref.output, torch.exp(y)) and ref.fallbacks == {} and ref.overflows == []
    overflowed = autograd_reference(torch.exp, (x,), torch.ones(2))  # exp(100) is past float32's range
    assert overflowed.overflows == ["aten.exp.default gave inf in torch.float32 from finite inputs"]
    erfcx = autograd_reference(torch.special.erfcx, (y.double(),), torch.ones(2, dtype=F64))
    assert list(erfcx.fallbacks) == ["prims.erfcx.default"]


def test_autograd_reference_is_exact_only_when_asked_and_passes_on_probabilistic():
    x, G = torch.tensor([3.0, -5.0], dtype=F64), torch.tensor([2.0, 7.0], dtype=F64)
    assert bool((autograd_reference(lambda a: a * a * a, (x,), G).errors[0] > 0).all())  # default: rigorous rounding
    assert bool((autograd_reference(lambda a: a * a * a, (x,), G, exact=True).errors[0] == 0).all())  # integers: exact
    W = torch.randn(1, 4000, dtype=F64, generator=_gen())  # the VJP sums 4000 products
    a = torch.ones(1, 1, dtype=F64)
    rigorous = autograd_reference(lambda t: t @ W, (a,), W).errors[0]
    assert float(autograd_reference(lambda t: t @ W, (a,), W, probabilistic=5.0).errors[0]) < float(rigorous) / 5


def test_autograd_reference_refuses_a_disconnected_forward():
    with pytest.raises(OracleUnavailable) as caught:
        autograd_reference(lambda a: torch.ones(2), (torch.ones(2, dtype=F64),), torch.ones(2, dtype=F64))
    assert str(caught.value) == "the forward's output is not connected to its inputs in autograd's graph"


def test_traced_vjp_runs_in_the_inputs_dtype_with_a_bound_and_zeros_for_an_unused_input():
    x, unused = torch.tensor([0.1, 3.0], dtype=torch.float32), torch.ones(3, dtype=torch.float32)
    G = torch.tensor([1.0, -0.3], dtype=F64)
    values, errors = traced_vjp(lambda a, b: torch.sin(a), (x, unused), G)
    assert values[0].dtype == torch.float32 and torch.equal(values[1], torch.zeros(3))
    truth = torch.cos(x.double()) * G.float().double()
    assert bool(((values[0].double() - truth).abs() <= errors[0]).all()) and bool((errors[0] > 0).all())
    assert errors[1].dtype == F64 and torch.equal(errors[1], torch.zeros(3, dtype=F64))


def test_phi_rounds_its_final_dot_product_unless_exact_integers():
    identity = lambda a: a  # noqa: E731  (no error of its own: only the dot product ⟨G, f⟩ rounds)
    ones = torch.ones(3, dtype=F64)
    x = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    assert phi(identity, (x,), ones, exact=False).error == pytest.approx(gamma(3, F64) * 6, rel=1e-12, abs=0)
    assert phi(identity, (x,), -ones, exact=False).error == pytest.approx(gamma(3, F64) * 6, rel=1e-12, abs=0)  # Σ|G·f|
    huge = torch.full((4,), 1e170, dtype=F64)  # norms overflow (‖f‖² > 1e308), |G|·|f| does not
    assert phi(identity, (huge,), ones[:1].expand(4), exact=False).error == pytest.approx(gamma(4, F64) * 4e170, rel=1e-12)
    assert phi(identity, (x,), ones, exact=True).error == 0
    assert phi(identity, (x * 0.5,), ones, exact=True).error == pytest.approx(gamma(3, F64) * 3, rel=1e-12, abs=0)
    assert phi(identity, (x * 2.0**51,), ones, exact=True).error > 0  # Σ|terms| = 6·2⁵¹ ≥ 2⁵³: may have rounded
    assert phi(identity, (torch.tensor([2.0**52, 2.0**51, 2.0**51], dtype=F64),), ones, exact=True).error > 0  # = 2⁵³ too
    assert phi(identity, (x * 100,), ones, exact=True).error == 0
    assert phi(identity, (x[:1] * 3,), ones[:1], exact=False).error == pytest.approx(gamma(1, F64) * 3, rel=1e-12, abs=0)  # one term: equal
    assert phi(lambda a: a * 1e308, (x,), ones, exact=False).error == math.inf


@pytest.mark.parametrize(("x", "log2_step"), [(0.5, -18), (1000.0, -8)])
def test_the_step_is_a_power_of_two_near_the_cube_root_of_eps_times_max_one_x(x, log2_step):
    (p,) = finite_difference_probes(lambda t: t**2, (torch.tensor([x], dtype=F64),), torch.ones(1, dtype=F64),
                                    exact=False, generator=_gen())
    assert float(p.delta[0]) == 2 * 2.0**log2_step  # a central difference spans 2h
    assert 2.0**log2_step <= torch.finfo(F64).eps ** (1 / 3) * max(1.0, x) < 2.0 ** (log2_step + 1)


def test_random_directions_are_on_their_grids_and_follow_the_generator():
    x = torch.zeros(3000, dtype=torch.float32)
    v = random_direction(x, _gen(), exact=False)
    assert v.dtype == torch.float32 and torch.equal(v, random_direction(x, _gen(), exact=False))
    thirty_seconds = (v.double() * 32).unique()
    assert bool((thirty_seconds == thirty_seconds.round()).all()) and len(thirty_seconds) == 256  # −4, −4 + 1/32, …, 4 − 1/32
    assert float(v.min()) == -4 and float(v.max()) == 4 - 1 / 32
    assert abs(float(v.double().mean())) < 0.1 and float((v == 0).double().mean()) < 0.01  # centred, rarely zero
    other = random_direction(x, torch.Generator().manual_seed(1), exact=False)
    assert float((v == other).double().mean()) < 0.02  # the generator decides every entry
    assert set(random_direction(x, _gen(), exact=True).tolist()) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    z = random_direction(torch.zeros(2000, dtype=torch.complex64), _gen(), exact=True)
    assert z.dtype == torch.complex64 and set(z.real.tolist()) == set(z.imag.tolist()) == {-2.0, -1.0, 0.0, 1.0, 2.0}


def test_directions_count_a_complex_element_twice_and_go_random_past_the_limit():
    z2, z3 = torch.zeros(2, dtype=torch.complex128), torch.zeros(3, dtype=torch.complex128)  # 4 and 6 real coordinates
    coordinates = directions([z2], [True], _gen(), exact=False)
    assert [(e, d[0][e[1]].item()) for d, e in coordinates] == [((0, (0,)), 1), ((0, (0,)), 1j), ((0, (1,)), 1), ((0, (1,)), 1j)]
    assert [e for _, e in directions([z3], [True], _gen(), exact=False)] == [None] * RANDOM_PROBES
    assert [e for _, e in directions([torch.zeros(1, dtype=F64)], [True], _gen(), exact=False)] == [(0, (0,))]
    joint = directions([torch.zeros(5, dtype=F64)] * 2, [True, True], _gen(), exact=True)
    assert joint[0][0][0].abs().max() <= 2 and torch.equal(joint[0][0][0], joint[0][0][0].round())  # exact: integers
    again = directions([torch.zeros(5, dtype=F64)] * 2, [True, True], _gen(), exact=True)
    assert all(torch.equal(a, b) for (da, _), (db, _) in zip(joint, again) for a, b in zip(da, db))


def test_past_the_large_input_limit_one_direction_is_drawn():
    at_limit, past = torch.zeros(LARGE_INPUT_ELEMENTS, dtype=F64), torch.zeros(LARGE_INPUT_ELEMENTS + 1, dtype=F64)
    assert len(directions([at_limit], [True], _gen(), exact=False, count=3)) == 3
    assert len(directions([past], [True], _gen(), exact=False, count=3)) == 1


def test_two_sum_error_is_exactly_what_the_addition_lost():
    a, b = torch.tensor([1.0, 2.0**60], dtype=F64), torch.tensor([2.0**-60, -3.0], dtype=F64)
    s = a + b
    assert _two_sum_error(a, b, s).tolist() == [2.0**-60, -3.0]  # a + b = s + e exactly


def test_nudged_references_step_off_a_kink_both_ways_and_barely_move_smooth_parts():
    x = torch.tensor([0.0] * 8 + [1.0, -2.0, 3.0], dtype=F64)  # relu(x − shift): kinks at the eight zeros and at x = 1
    shift = torch.tensor([0.0] * 8 + [1.0, 0.0, 0.0], dtype=F64)
    y = torch.tensor([1.0, 0.5, -1.0, 2.0] * 2 + [1.0, 1.0, 1.0], dtype=F64)
    G = torch.ones(11, dtype=F64)
    found = nudged_references(lambda a, b: torch.relu(a - shift) + b * b, (x, y), G, _gen())
    assert len(found) == 4
    (up, _), (down, _), (r, _), (r_opposite, _) = found
    assert up.tolist() == [1.0] * 9 + [0.0, 1.0] and down.tolist() == [0.0] * 9 + [0.0, 1.0]
    assert (r + r_opposite).tolist() == [1.0] * 9 + [0.0, 2.0]  # a random side, then the other side
    assert 0 < float(r[:9].sum()) < 9  # a sign pattern, not all up or all down
    for _, dy in found:  # the smooth part: 2y, a few ulps off at most
        assert bool(((dy - 2 * y).abs() <= 12 * torch.finfo(F64).eps * (2 * y).abs()).all())
    again = nudged_references(lambda a, b: torch.relu(a - shift) + b * b, (x, y), G, _gen())
    assert all(torch.equal(a, b) for fa, fb in zip(found, again) for a, b in zip(fa, fb))  # seeded by the generator


# ---- probes: steps, Richardson, refinement -------------------------------------------------------

H0 = 2.0**-18  # the step at |x| ≤ 1: the power of two below eps^(1/3)
EPS = torch.finfo(F64).eps
ONE = torch.ones(1, dtype=F64)


def _coordinate_probe(f, x, G=ONE, exact=False):
    (p,) = finite_difference_probes(f, (torch.tensor([x], dtype=F64),), G, exact=exact, generator=_gen())
    return p


def test_a_central_difference_adds_both_evaluations_errors_and_the_subtractions_rounding():
    # identity, x = 2²⁰ (h = 4), G = 3: φ(x ± h) = 3·(2²⁰ ± 4), each rounded once by the final dot product;
    # their difference 24 is an integer, yet outside exact mode its subtraction is still allowed for
    p = _coordinate_probe(lambda t: t, 2.0**20, G=torch.tensor([3.0], dtype=F64))
    assert (p.weight, p.difference, float(p.delta[0])) == (1.0, 24.0, 8.0)
    expected = gamma(1, F64) * 3 * (2**20 + 4) + gamma(1, F64) * 3 * (2**20 - 4) + 24 * EPS
    assert p.error == pytest.approx(expected, rel=1e-12, abs=0)


def test_richardsons_error_is_eight_times_the_inner_pair_plus_the_outer_pair_plus_rounding():
    cube = lambda t: t * t * t  # noqa: E731
    x = 0.75
    p = _coordinate_probe(cube, x)
    assert p.weight == 6 and p.truncation == 0 and float(p.delta[0]) == 12 * H0
    e = {s: phi(cube, (torch.tensor([x + s * H0], dtype=F64),), ONE, exact=False).error for s in (1, -1, 2, -2)}
    expected = 8 * (e[1] + e[-1]) + e[2] + e[-2] + 3 * abs(p.difference) * EPS
    assert p.error == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize(("power", "truncated"), [(3, False), (4, False), (5, True)])
def test_richardson_is_exact_up_to_degree_four_and_estimates_its_gap_beyond(power, truncated):
    p = _coordinate_probe(lambda t: t**power, 0.75)
    assert p.degree == power and (p.truncation > 0) is truncated


def test_a_richardson_probe_whose_outer_points_cross_a_kink_is_flagged():
    # relu(t − 1.5h)³ at 0: x ± h lie on one side, x + 2h on the other
    p = _coordinate_probe(lambda t: torch.relu(t - 1.5 * H0) ** 3, 0.0)
    assert p.weight == 6 and p.crossed_kink is True


def test_exact_probes_keep_step_one_even_for_a_non_polynomial_and_stay_exact_in_richardson():
    assert float(_coordinate_probe(torch.exp, 0.5, exact=True).delta[0]) == 12.0  # never refined
    cube = _coordinate_probe(lambda t: t * t * t, 2.0, exact=True)
    assert (cube.weight, cube.error, cube.difference) == (6.0, 0.0, 6 * 2 * 3 * 2.0**2)  # 8·D(1) − D(2) = 6·2·f'(2)


@pytest.mark.parametrize(("k", "refinements"), [(2.0**15, 1), (2.0**17, 2)])
def test_a_step_too_coarse_for_f_is_divided_by_four_until_the_gap_is_small(k, refinements):
    p = _coordinate_probe(lambda t: torch.exp(k * t), 0.0)
    assert float(p.delta[0]) == 12 * H0 / 4**refinements and p.element == (0, (0,))
    assert p.truncation <= 1e-3 * abs(p.difference) and abs(_lhs(p, (torch.tensor([k]),)) - p.difference) <= p.error


def test_a_finer_step_that_crosses_a_kink_keeps_the_coarser_probe():
    # t² > c² with c = 3h/8: x ± h and x ± 2h agree, the refined x ± h/4 and x ± h/2 do not
    c = 3 * H0 / 8
    p = _coordinate_probe(lambda t: torch.where(t * t > c * c, torch.exp(2.0**16 * t), torch.exp(2.0**16 * t)), 0.0)
    assert float(p.delta[0]) == 12 * H0 and p.crossed_kink is False


def test_probes_move_only_the_movable_inputs_as_many_times_as_asked():
    x, y = torch.randn(6, dtype=F64, generator=_gen()), torch.randn(6, dtype=F64, generator=_gen(1))
    G = torch.ones(6, dtype=F64)
    f = lambda a, b: a * b * b  # noqa: E731  (degree 3: Richardson, which scales every moved input's step)
    probes = finite_difference_probes(f, (x, y), G, exact=False, generator=_gen(), movable=[True, False], count=3)
    assert len(probes) == 3 and all(p.delta[1] is None and p.delta[0] is not None for p in probes)
    only = finite_difference_probes(f, (x, y), G, exact=False, generator=_gen(), only=0)
    assert all(p.delta[1] is None and p.weight == 6 for p in only)
    again = finite_difference_probes(f, (x, y), G, exact=False, generator=_gen(), movable=[True, False], count=3)
    assert all(torch.equal(p.delta[0], q.delta[0]) for p, q in zip(probes, again))  # drawn from the generator
    exact = finite_difference_probes(f, (x.round(), y.round()), G, exact=True, generator=_gen())
    assert all(torch.equal(d, d.round()) and float(d.abs().max()) <= 6 * 2 * 2 for p in exact for d in p.delta)


def test_steps_are_the_power_of_two_below_the_target():
    x = torch.tensor([0.0, -1e-300, 0.5, 1.0, -3.0, 1e5, 2.0**40, -7.25e300], dtype=F64)
    target = torch.finfo(F64).eps ** (1 / 3) * x.abs().clamp(min=1.0)
    h = _steps(x, exact=False)
    assert bool((h <= target).all() and (target < 2 * h).all())
    assert torch.equal(h, torch.exp2(torch.log2(h).round()))  # powers of two
    assert torch.equal(_steps(x, exact=True), torch.ones_like(x)) and torch.equal(x[2], torch.tensor(0.5, dtype=F64))  # x untouched


def test_the_fast_rounding_of_shifted_points_is_what_two_sum_says():
    g = _gen(3)
    # values just below powers of two (the sum crosses into a coarser binade), zeros, large and small ones
    spread = torch.randn(5000, generator=g, dtype=F64) * torch.exp2(torch.randint(-30, 20, (5000,), generator=g)).to(F64)
    x = torch.cat([torch.tensor([0.0, 1.0 - 2.0**-53, -(2.0 - 2.0**-52), 2.0**-14, 1e300, 2.0**-15, -1e-10], dtype=F64), spread])
    v = random_direction(x, g, exact=False)
    v[1:3] = 4 - 1 / 32
    h = _steps(x, exact=False)
    tiny = _below_fast_two_sum(x)
    assert 5 in tiny.tolist() and 6 in tiny.tolist() and not {0, 1, 2, 3, 4} & set(tiny.tolist())
    assert _below_fast_two_sum(x.to(torch.complex128)) is None and _below_fast_two_sum(x[::2]) is None
    assert _below_fast_two_sum(x[:100]) is None  # small: TwoSum throughout
    assert torch.equal(_below_fast_two_sum(x.abs() + 1), torch.zeros(0, dtype=torch.int64))
    delta = 2 * h * v
    for factor in (0.5, -0.5, 1.0, -1.0, 0.25):  # the factors probes use: |factor·δ| ≤ 8h < 2⁻¹⁴·max(1, |x|)
        (fast,), (fast_lost,) = _shifted([x], [delta], factor, tiny=[tiny])
        (slow,), (slow_lost,) = _shifted([x], [delta], factor)
        assert torch.equal(fast, slow) and torch.equal(fast_lost, slow_lost), factor
        assert bool((slow_lost[tiny] > 0).any()) and bool((slow_lost[1:3] > 0).any())  # tiny elements and crossings round
