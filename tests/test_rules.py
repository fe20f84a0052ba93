"""Every rule of the table, on every dtype and device, against autograd and finite differences;
and in exact arithmetic, where all three answers must agree bit for bit."""

from __future__ import annotations

import pytest
import torch
from budget import examples
from hypothesis import find, given
from hypothesis import strategies as st

import gradcheck
from gradcheck.rules import RULES, rule_named, unbroadcast
from gradcheck.tolerance import FLOATING_DTYPES

RULE_IDS = [rule.name for rule in RULES]
# Per (rule, dtype): 14 rules × 4 dtypes × VJP and JVP share the CI budget; python -m gradcheck and the
# thorough profile run thousands (conftest.examples gives the profile's own count there).
RULE_EXAMPLES = 10


@pytest.mark.parametrize("dtype", FLOATING_DTYPES, ids=str)
@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_matches_oracles(rule, dtype, device):
    gradcheck.verify(rule.forward, rule.vjp, rule.operands(dtype=dtype, device=device), max_examples=examples(RULE_EXAMPLES),
                     **rule.check_options())


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_is_exact_on_integers(rule, device):
    gradcheck.verify(rule.forward, rule.vjp, rule.operands(device=device, exact=True), exact=True,
                     max_examples=examples(RULE_EXAMPLES), **rule.check_options())


def test_table_covers_the_issue_minimum():
    names = {rule.name for rule in RULES}
    assert {"mm", "matmul", "bmm", "mv", "dot", "outer", "linear", "addmm", "expand", "mul", "sum", "mean",
            "squared_error", "linear_regression"} <= names


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_documents_itself(rule):
    assert "d" in rule.formula and "=" in rule.formula
    assert rule.vjp.__doc__ and len(rule.vjp.__doc__.strip()) > 20, "the derivation belongs in the vjp's docstring"
    inputs = find(rule.operands(dtype=torch.float64, device="cpu"), lambda ops: all(t.numel() for t in ops))
    assert len(inputs) == len(rule.input_names)
    assert len(rule.vjp(*inputs, torch.ones_like(rule(*inputs)))) == len(inputs)


@given(st.data())
def test_unbroadcast_matches_autograd_of_expand(data):
    """unbroadcast is the adjoint of broadcasting: compare it with autograd through ``expand``."""
    from hypothesis.extra import numpy as hnp

    target = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    from gradcheck.strategies import shapes_broadcasting_to

    shape = data.draw(shapes_broadcasting_to(target))
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="seed"))
    b = torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True)
    G = torch.randn(target, generator=generator, dtype=torch.float64)
    (expected,) = torch.autograd.grad(b.expand(target), b, G)
    got = unbroadcast(G, shape)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_seed_linear_regression_formulas_by_hand():
    """The seed's own numbers: n = 3, x·w + b with w = 2, b = 1, and y chosen so that the residual is (1, −2, 3)."""
    x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    w = torch.tensor([[2.0]], dtype=torch.float64)
    b = torch.tensor([[1.0]], dtype=torch.float64)
    y = x @ w + 1 - torch.tensor([[1.0], [-2.0], [3.0]], dtype=torch.float64)
    dx, dw, db, dy = rule_named("linear_regression").vjp(x, w, b, y, torch.tensor(1.0, dtype=torch.float64))
    # dy_pred = (1, -2, 3); dw = xᵀ·dy_pred = 1 - 4 + 9 = 6; db = Σ dy_pred = 2
    assert dw.item() == 6.0 and db.item() == 2.0
    assert dw.shape == (1, 1) and db.shape == (1, 1)
    assert dy.flatten().tolist() == [-1.0, 2.0, -3.0]
    assert dx.flatten().tolist() == [2.0, -4.0, 6.0]


def test_addmm_finite_difference_bound_survives_cancelling_terms():
    """Found by the 10⁴-example run: β·I and α·A·B (α < 0) nearly cancel in the forward, and a
    magnitude evaluated with every input positive then underestimated the rounding of φ."""
    rule = rule_named("addmm")
    inputs = (torch.tensor(0.001, dtype=torch.float64), torch.tensor([[0.328125]], dtype=torch.float64),
              torch.tensor([[0.001]], dtype=torch.float64))
    G = torch.tensor([[3.462349537981145e-07]], dtype=torch.float64)
    report = gradcheck.check_vjp(rule.forward, rule.vjp, inputs, cotangent=G, **rule.check_options())
    assert report.ok, str(report)
    assert report.worst_ratio("finite_differences") > 0


# ---- forward mode: each rule's JVP ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATING_DTYPES, ids=str)
@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_jvp_matches_oracles(rule, dtype, device):
    gradcheck.verify_jvp(rule.forward, rule.jvp, rule.operands(dtype=dtype, device=device), max_examples=examples(RULE_EXAMPLES),
                         **rule.check_options())


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_jvp_is_exact_on_integers(rule, device):
    gradcheck.verify_jvp(rule.forward, rule.jvp, rule.operands(device=device, exact=True), exact=True,
                         max_examples=examples(RULE_EXAMPLES), **rule.check_options())


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
@given(data=st.data())
def test_rule_jvp_is_the_adjoint_of_its_vjp(rule, data):
    """⟨G, J·v⟩ = Σ_i ⟨(Jᵀ·G)_i, v_i⟩: the table's two directions describe one derivative."""
    inputs = data.draw(rule.operands(dtype=torch.float64, device="cpu"), label="inputs")
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="seed"))
    tangents = [torch.randn(t.shape, generator=generator, dtype=torch.float64) for t in inputs]
    out = rule(*inputs)
    G = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    forward_terms = G * rule.jvp(*inputs, *tangents)
    backward_terms = [g * v for g, v in zip(rule.vjp(*inputs, G), tangents) if g is not None]
    scale = float(forward_terms.abs().sum()) + sum(float(t.abs().sum()) for t in backward_terms)
    difference = float(forward_terms.sum()) - sum(float(t.sum()) for t in backward_terms)
    assert abs(difference) <= 1e-12 * scale


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_documents_its_jvp(rule):
    assert rule.jvp_formula.startswith("d") and "=" in rule.jvp_formula
    assert rule.jvp.__doc__ and len(rule.jvp.__doc__.strip()) > 15, "the derivation belongs in the jvp's docstring"


def test_seed_hessian_by_hand():
    """The seed's numbers: x = (1, 2, 3), so Σx² = 14, Σx = 6, n = 3 and H = [[14, 6], [6, 3]]."""
    from gradcheck.rules import hessian_vector_product

    x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    y, w, b = torch.zeros(3, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
    for v_w, v_b, expected in [(1.0, 0.0, (14.0, 6.0)), (0.0, 1.0, (6.0, 3.0)), (2.0, -1.0, (22.0, 9.0))]:
        hv_w, hv_b = hessian_vector_product(x, y, w, b, torch.tensor([[v_w]], dtype=torch.float64),
                                            torch.tensor([[v_b]], dtype=torch.float64))
        assert (hv_w.item(), hv_b.item()) == expected and hv_w.shape == (1, 1) and hv_b.shape == (1, 1)
