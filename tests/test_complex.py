"""Complex dtypes: PyTorch's convention for the matmul family (dA = G·Bᴴ, dB = Aᴴ·G), an unconjugated rule
failing against each oracle alone, finite differences along real and imaginary directions, the error
model's complex bounds, strategies that reach every quadrant, and the survey's complex rows."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import torch
from hypothesis import Phase, find, settings

import gradcheck
from gradcheck.cli import formula_table, main
from gradcheck.rounding import traced
from gradcheck.rules import RULES, rule_named
from gradcheck.strategies import mm_operands, tensors
from gradcheck.survey import survey
from gradcheck.tolerance import COMPLEX_DTYPES, FLOATING_DTYPES

COMPLEX_RULES = [rule for rule in RULES if rule.complex_formula is not None]
MATMUL_FAMILY = {"mm", "matmul", "bmm", "mv", "dot", "outer", "linear", "addmm"}


def _thorough() -> bool:
    return settings.get_current_profile_name() == "gradcheck-thorough"


def _inputs(dtype, *shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s, generator=g, dtype=torch.complex128).to(dtype) for s in shapes)


def mm_unconjugated(A, B, G):
    """The real rule applied to complex inputs: transposes without conjugation."""
    return G @ B.mT, A.mT @ G


def mm_wrong_imaginary_part(A, B, G):
    """Right real parts; the imaginary part of dA off by 1e-3 of the real part."""
    dA, dB = rule_named("mm").vjp(A, B, G)
    return dA + 1e-3j * dA.real, dB


def mm_ignores_imaginary_cotangent(A, B, G):
    return G.real.to(G.dtype) @ B.mH, A.mH @ G.real.to(G.dtype)


# ---- the rule table --------------------------------------------------------------------------------

def test_the_matmul_family_holds_for_complex_and_says_so_in_the_formula_table():
    assert {rule.name for rule in COMPLEX_RULES} == MATMUL_FAMILY
    for rule in RULES:
        assert rule.dtypes == FLOATING_DTYPES + (COMPLEX_DTYPES if rule.name in MATMUL_FAMILY else ())
    table = formula_table(markdown=True)
    assert "complex (PyTorch's convention)" in table.splitlines()[0]
    assert "| `mm` | C = A·B;  dA = G·Bᵀ,  dB = Aᵀ·G | dA = G·Bᴴ,  dB = Aᴴ·G |" in table
    assert "| `sum` |" in table and "| — |" in table  # a real-only rule says it has no complex formula


@pytest.mark.parametrize("dtype", COMPLEX_DTYPES, ids=str)
@pytest.mark.parametrize("rule", COMPLEX_RULES, ids=lambda r: r.name)
def test_complex_rule_matches_oracles(rule, dtype):
    """Small here; ``GRADCHECK_PROFILE=thorough`` (the soak) runs the profile's count at its sizes."""
    sizes = {} if _thorough() else {"max_side": 4}
    seen = []
    gradcheck.verify(rule.forward, rule.vjp, rule.operands(dtype=dtype, device="cpu", **sizes),
                     max_examples=None if _thorough() else 4, on_report=seen.append, **rule.check_options())
    assert seen and all(r.dtype == str(dtype).removeprefix("torch.") for r in seen)


@pytest.mark.parametrize("rule", COMPLEX_RULES, ids=lambda r: r.name)
def test_complex_rule_is_exact_on_gaussian_integers(rule):
    gradcheck.verify(rule.forward, rule.vjp, rule.operands(dtype=torch.complex128, device="cpu", exact=True, max_side=4),
                     exact=True, max_examples=None if _thorough() else 2, **rule.check_options())


# ---- wrong rules: each oracle alone catches them ---------------------------------------------------

@pytest.mark.parametrize("dtype", COMPLEX_DTYPES, ids=str)
def test_the_unconjugated_rule_fails_against_each_oracle_and_the_report_says_why(dtype):
    A, B = _inputs(dtype, (3, 4), (4, 2))
    report = gradcheck.check_vjp(torch.mm, mm_unconjugated, (A, B), names=("A", "B"))
    assert not report.ok
    for oracle in ("autograd", "finite_differences"):
        assert {c.input_name for c in report.comparisons if c.oracle == oracle and not c.ok} == {"A", "B"}, str(report)
    text = str(report)
    assert "FAIL input 0 (A) vs autograd" in text and "PyTorch's convention" in text and "dA = G·Bᴴ" in text
    only_fd = gradcheck.check_vjp(torch.mm, mm_unconjugated, (A, B), names=("A", "B"), oracles=("finite_differences",))
    assert only_fd.failing_inputs == {"A", "B"}
    assert gradcheck.check_vjp(torch.mm, rule_named("mm").vjp, (A, B), names=("A", "B")).ok


def test_hypothesis_finds_the_unconjugated_rule_with_finite_differences_alone():
    unshrunk = settings(database=None, phases=(Phase.generate,))  # finding it is the point here, not shrinking
    with pytest.raises(gradcheck.GradientMismatch) as caught:
        gradcheck.verify(torch.mm, mm_unconjugated, mm_operands(dtype=torch.complex128, device="cpu", max_side=3),
                         names=("A", "B"), oracles=("finite_differences",), max_examples=50, hypothesis_settings=unshrunk)
    assert caught.value.report.failing_inputs and not caught.value.report.ok


@pytest.mark.parametrize("dtype", COMPLEX_DTYPES, ids=str)
def test_a_wrong_imaginary_part_alone_is_caught_by_each_oracle(dtype):
    A, B = _inputs(dtype, (3, 4), (4, 2), seed=1)
    G = _inputs(dtype, (3, 2), seed=2)[0]
    right, wrong = rule_named("mm").vjp(A, B, G)[0], mm_wrong_imaginary_part(A, B, G)[0]
    assert torch.equal(right.real, wrong.real) and not torch.equal(right.imag, wrong.imag)
    for oracle in ("autograd", "finite_differences"):
        report = gradcheck.check_vjp(torch.mm, mm_wrong_imaginary_part, (A, B), names=("A", "B"), oracles=(oracle,))
        assert report.failing_inputs == {"A"}, str(report)


def test_coordinate_probes_move_the_imaginary_part_and_name_it():
    """Two one-element inputs: four coordinates, each moved along 1 and along i; a wrong imaginary
    part shows on the probe along i alone, and the report says so."""
    a, b = _inputs(torch.complex128, (1,), (1,), seed=3)

    def dot_wrong_imaginary(a, b, G):
        da, db = rule_named("dot").vjp(a, b, G)
        return da + 1e-6j, db

    report = gradcheck.check_vjp(torch.dot, dot_wrong_imaginary, (a, b), names=("a", "b"), oracles=("finite_differences",))
    (failure,) = report.failures
    assert failure.input_name == "a" and failure.worst == "(0,) along i", str(report)


def test_a_cotangent_with_an_imaginary_part_is_drawn():
    A, B = _inputs(torch.complex128, (3, 4), (4, 2), seed=4)
    report = gradcheck.check_vjp(torch.mm, mm_ignores_imaginary_cotangent, (A, B), names=("A", "B"))
    assert report.failing_inputs == {"A", "B"}


def test_the_conjugate_of_the_right_gradient_is_recognized():
    A, B = _inputs(torch.complex64, (2, 3), (3, 2), seed=5)
    report = gradcheck.check_vjp(torch.mm, lambda A, B, G: tuple(g.conj() for g in rule_named("mm").vjp(A, B, G)),
                                 (A, B), names=("A", "B"))
    assert not report.ok and "input 0 (A): the gradient is the complex conjugate of PyTorch's" in str(report)


def test_exact_mode_on_gaussian_integers_is_bit_for_bit():
    g = torch.Generator().manual_seed(6)
    A, B = (torch.complex(*(torch.randint(-3, 4, s, generator=g).double() for _ in range(2))) for s in ((3, 4), (4, 2)))

    def off_by_i(A, B, G):
        dA, dB = rule_named("mm").vjp(A, B, G)
        return dA + torch.where(torch.arange(dA.numel()).reshape(dA.shape) == 0, 1j, 0), dB

    assert gradcheck.check_vjp(torch.mm, rule_named("mm").vjp, (A, B), exact=True).ok
    assert gradcheck.check_vjp(torch.mm, off_by_i, (A, B), names=("A", "B"), exact=True).failing_inputs == {"A"}
    with pytest.raises(gradcheck.GradcheckError, match="integer values"):
        gradcheck.check_vjp(torch.mm, rule_named("mm").vjp, (A + 0.5j, B), exact=True)


class ComplexMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, B):
        ctx.save_for_backward(A, B)
        return A @ B

    @staticmethod
    def backward(ctx, G):
        A, B = ctx.saved_tensors
        return G @ B.mH, A.mH @ G


def test_a_complex_function_is_checked_as_the_engine_runs_it():
    A, B = _inputs(torch.complex64, (2, 3), (3, 4), seed=7)
    assert gradcheck.check_function(ComplexMM, (A, B), strict=True).ok


def test_forward_mode_refuses_complex_inputs_by_name():
    A, B = _inputs(torch.complex64, (2, 3), (3, 2), seed=12)
    with pytest.raises(gradcheck.GradcheckError, match=r"input 0 \(A\): forward mode .*complex64"):
        gradcheck.check_jvp(torch.mm, rule_named("mm").jvp, (A, B), names=("A", "B"))
    with pytest.raises(gradcheck.GradcheckError, match=r"input 0 \(input0\): second order .*complex64"):
        gradcheck.check_hvp(lambda A, B: (A @ B).abs().sum(), lambda A, B, v: (v,), (A, B), wrt=(0,))


# ---- the error model -------------------------------------------------------------------------------

def _exact_product(A: torch.Tensor, B: torch.Tensor) -> list[list[tuple[Fraction, Fraction]]]:
    """A·B in rational arithmetic (real and imaginary parts as Fractions of the float values)."""
    def parts(z):
        return Fraction(z.real), Fraction(z.imag)

    a, b = [[parts(z) for z in row] for row in A.tolist()], [[parts(z) for z in row] for row in B.tolist()]
    return [[(sum(x[0] * y[0] - x[1] * y[1] for x, y in zip(row, col)), sum(x[0] * y[1] + x[1] * y[0] for x, y in zip(row, col)))
             for col in zip(*b)] for row in a]


@pytest.mark.parametrize("dtype", COMPLEX_DTYPES, ids=str)
def test_the_traced_bound_of_a_complex_vjp_holds_against_rational_arithmetic(dtype):
    """The VJP's ops (a transpose, a conjugate view, a complex mm) get rules, no fallback, and the bound
    holds against the exact product — in complex128 too, where only the a-priori γ_{k+2} covers it."""
    A, B = _inputs(dtype, (3, 40), (40, 2), seed=8)
    A = A * 1e3 + 1  # cancellation-prone: large terms, small sums
    G = _inputs(dtype, (3, 2), seed=9)[0]
    (dA, dB), mode = traced(rule_named("mm").vjp, A, B, G, watch=(A, B, G))
    assert mode.fallbacks == {}
    for got, exact in ((dA, _exact_product(G, B.mH)), (dB, _exact_product(A.mH, G))):
        bound = mode.error(got)
        for (i, j), z in ((ij, got[ij].item()) for ij in ((i, j) for i in range(got.shape[0]) for j in range(got.shape[1]))):
            re, im = exact[i][j]
            error = abs(complex(float(Fraction(z.real) - re), float(Fraction(z.imag) - im)))
            assert error <= float(bound[i, j]), (i, j, error, float(bound[i, j]))
        assert float(bound.max()) < 1e-3 * float(got.abs().max())  # and it has power


def test_complex_views_keep_their_error():
    z = _inputs(torch.complex64, (4,), seed=10)[0]
    (w, re, im, pairs), mode = traced(lambda z: ((z * z).conj(), (z * z).real, (z * z).imag, torch.view_as_real(z * z)), z, watch=(z,))
    assert mode.fallbacks == {}
    assert torch.equal(mode.error(w), mode.error(re)) and torch.equal(mode.error(re), mode.error(im))
    assert torch.equal(mode.error(pairs), mode.error(w).unsqueeze(-1).expand(4, 2))
    assert bool((mode.error(w) > 0).all())  # a complex square rounds


def test_complex_exp_is_not_given_a_real_monotone_rule():
    z = _inputs(torch.complex128, (3,), seed=11)[0]
    _, mode = traced(torch.exp, z * 2, watch=(z,))
    assert "aten.exp.default" in mode.fallbacks


# ---- strategies --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", COMPLEX_DTYPES, ids=str)
def test_strategies_reach_every_quadrant(dtype):
    def quadrants(t):
        return {(bool(z.real < 0), bool(z.imag < 0)) for z in t.flatten().tolist() if z.real and z.imag}

    quick = settings(database=None, phases=(Phase.generate,), max_examples=500)  # reached is the point, not shrunk
    found = find(tensors((16,), dtype=dtype), lambda t: len(quadrants(t)) == 4, settings=quick)
    assert found.dtype == dtype
    found = find(tensors((2,), dtype=dtype), lambda t: bool((t.imag != 0).all() and (t.real < 0).any()), settings=quick)
    assert found.dtype == dtype


def test_exact_complex_operands_are_gaussian_integers():
    ops = find(mm_operands(dtype=torch.complex128, device="cpu", exact=True, max_side=3),
               lambda ops: all(bool((t.imag != 0).any()) for t in ops))
    for t in ops:
        assert t.dtype == torch.complex128 and torch.equal(torch.view_as_real(t), torch.view_as_real(t).round())


# ---- the survey --------------------------------------------------------------------------------------

def test_the_survey_has_complex_rows_for_the_rules_that_hold_for_them():
    rows = survey([rule_named("sum"), rule_named("dot")], ["cpu"], [torch.float32, torch.complex64, torch.complex128], 2,
                  max_side=3)
    assert [(r.rule, r.dtype, r.exact, r.status) for r in rows] == [
        ("sum", "float32", "—", "ok"), ("dot", "float32", "—", "ok"), ("dot", "complex64", "—", "ok"),
        ("dot", "complex128", "pass", "ok")]


def test_the_default_run_has_complex64_rows_and_complex128_on_request(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["--rules", "dot", "--examples", "2", "--max-side", "3", "--jobs", "1", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["rows"]
    assert [r["dtype"] for r in rows] == ["float64", "float32", "float16", "bfloat16", "complex64"]
    assert "not run" not in capsys.readouterr().out  # nothing was asked for by name


def test_the_command_takes_complex_dtypes_and_refuses_a_rule_without_them(capsys):
    assert main(["--rules", "outer,sum", "--dtype", "complex64", "--examples", "2", "--max-side", "3", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "outer" in out and "complex64" in out and "not run (no complex formula): sum on complex64" in out
    with pytest.raises(SystemExit) as exit_:
        main(["--rules", "sum", "--dtype", "complex128"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "complex formula" in err
