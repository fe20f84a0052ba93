"""The oracles on functions whose gradients are known in closed form."""

from __future__ import annotations

import torch

from gradcheck.oracles import FULL_JACOBIAN_MAX_ELEMENTS, autograd_vjp, finite_difference_probes, magnitude_vjp


def _gen():
    return torch.Generator().manual_seed(0)


def test_autograd_vjp_gives_zeros_for_an_unused_input():
    x, unused = torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    G = torch.randn(3, dtype=torch.float64)
    dx, dunused = autograd_vjp(lambda a, b: a * 3.0, (x, unused), G)
    assert torch.equal(dx, 3.0 * G) and torch.equal(dunused, torch.zeros(2, dtype=torch.float64))


def test_magnitude_of_mm_is_abs_G_times_abs_B_transposed():
    A, B, G = (torch.randn(s, dtype=torch.float64) for s in ((3, 4), (4, 2), (3, 2)))
    mA, mB = magnitude_vjp(torch.mm, (A, B), G, None)
    torch.testing.assert_close(mA, G.abs() @ B.abs().mT)
    torch.testing.assert_close(mB, A.abs().mT @ G.abs())


def test_magnitude_signs_turn_a_residual_into_a_sum_of_absolute_values():
    yp, y, G = torch.tensor([2.0], dtype=torch.float64), torch.tensor([1.999], dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    loss = lambda a, b: 0.5 * ((a - b) ** 2).sum()  # noqa: E731
    m_yp, m_y = magnitude_vjp(loss, (yp, y), G, (1, -1))
    assert m_yp.item() == m_y.item() == 2.0 + 1.999


def test_coordinate_probes_recover_a_cubic_derivative():
    x = torch.tensor([0.5, -1.25, 2.0], dtype=torch.float64)
    G = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    probes = finite_difference_probes(lambda t: t**3, (x,), G, 0, exact=False, quadratic=False, signs=None, generator=_gen())
    assert [p.element for p in probes] == [(0,), (1,), (2,)]
    for p, xi, gi in zip(probes, x, G):
        step = float(p.delta.sum())
        derivative = p.difference / step
        expected = float(3 * xi**2 * gi)
        assert abs(derivative - expected) <= p.error / step + 1e-12, (derivative, expected)
        assert p.error > 0  # the Richardson estimate sees the truncation of a cubic


def test_exact_probes_have_step_one_and_no_error():
    x = torch.tensor([[1.0, -2.0], [3.0, 0.0]], dtype=torch.float64)
    G = torch.tensor(2.0, dtype=torch.float64)
    probes = finite_difference_probes(lambda t: 0.5 * (t**2).sum(), (x,), G, 0, exact=True, quadratic=True, signs=None, generator=_gen())
    for p in probes:
        assert p.error == 0 and float(p.delta.abs().max()) == 2.0
        assert p.difference == 2.0 * float(x[p.element]) * 2.0  # exact: φ' = G·x, times the step 2


def test_large_inputs_use_random_directions_through_the_adjoint_identity():
    n = FULL_JACOBIAN_MAX_ELEMENTS + 1
    x, w = torch.randn(n, dtype=torch.float64), torch.randn(n, dtype=torch.float64)
    G = torch.tensor(1.5, dtype=torch.float64)
    probes = finite_difference_probes(lambda t: (t * w).sum(), (x,), G, 0, exact=False, quadratic=True, signs=None, generator=_gen())
    assert len(probes) < n and all(p.element is None for p in probes)
    for p in probes:
        assert abs(p.difference - float((G * w * p.delta).sum())) <= p.error


def test_empty_input_has_no_probes():
    assert finite_difference_probes(lambda t: t.sum(), (torch.zeros(0, dtype=torch.float64),),
                                    torch.tensor(1.0, dtype=torch.float64), 0, exact=False, quadratic=True,
                                    signs=None, generator=_gen()) == []
