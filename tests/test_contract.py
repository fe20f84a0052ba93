"""PyTorch's Function contract and the shapes of calls people make: several outputs, non-tensor
arguments, a VJP that differentiates inside, the engine's repairs, and replays that replay."""

from __future__ import annotations

import pytest
import torch

import gradcheck
from gradcheck.rules import mm_vjp


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ScaleAndShift(torch.autograd.Function):
    """Two outputs (y = a·x, z = x + c) and a float constant c; setup_context style."""

    @staticmethod
    def forward(x, a, c):
        return a * x, x + c

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, a, _ = inputs
        ctx.save_for_backward(x, a)

    @staticmethod
    def backward(ctx, gy, gz):
        x, a = ctx.saved_tensors
        return gy * a + gz, (gy * x).sum(), None


def test_a_function_with_two_outputs_and_a_float_constant():
    x, a = torch.randn(4, dtype=torch.float64, generator=_gen()), torch.tensor(1.5, dtype=torch.float64)
    report = gradcheck.check_function(ScaleAndShift, (x, a, 0.25), names=("x", "a", "c"))
    assert report.ok, str(report)

    class Forgets(ScaleAndShift):  # ignores the second output's gradient
        @staticmethod
        def backward(ctx, gy, gz):
            x, a = ctx.saved_tensors
            return gy * a, (gy * x).sum(), None

    assert gradcheck.check_function(Forgets, (x, a, 0.25), names=("x", "a", "c")).failing_inputs == {"x"}


def test_a_plain_vjp_of_a_two_output_function_gets_one_cotangent_each():
    f = lambda x, a, c: (a * x, x + c)  # noqa: E731
    vjp = lambda x, a, c, gy, gz: (gy * a + gz, (gy * x).sum(), None)  # noqa: E731
    x, a = torch.randn(3, generator=_gen(1)), torch.tensor(2.0)
    assert gradcheck.check_vjp(f, vjp, (x, a, 0.5)).ok


def test_a_gradient_for_a_non_tensor_argument_is_a_failure():
    f = lambda x, c: x * c  # noqa: E731
    report = gradcheck.check_vjp(f, lambda x, c, G: (G * c, G.sum()), (torch.randn(3, dtype=torch.float64, generator=_gen()), 2.0), names=("x", "c"))
    assert [(p.input_name, p.check) for p in report.problems] == [("c", "type")], str(report)
    assert "None (this input, a float, is not differentiated)" in str(report)


def test_a_vjp_may_use_autograd_inside():
    def vjp(x, G):
        with torch.enable_grad():
            leaf = x.detach().requires_grad_()
            (grad,) = torch.autograd.grad(torch.sin(leaf), leaf, G)
        return (grad,)

    assert gradcheck.check_vjp(torch.sin, vjp, (torch.randn(6, dtype=torch.float32, generator=_gen()),)).ok


def test_a_backward_that_needs_input_grad_is_told_which_inputs_need_one():
    seen = []

    class Records(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, targets):
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        def backward(ctx, G):
            seen.append(ctx.needs_input_grad)
            return 2 * G, None

    assert gradcheck.check_function(Records, (torch.randn(3, generator=_gen()), torch.tensor([1, 2, 0]))).ok
    assert seen and seen[0] == (True, False)


def test_engine_contract_casts_and_sums_are_warnings_and_values_still_compared():
    class Float64Grads(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, b):
            ctx.save_for_backward(x)
            return x + b

        @staticmethod
        def backward(ctx, G):
            return G.double(), G.double() * 1.5  # db is unreduced (engine sums it) and wrong by 1.5×

    x, b = torch.randn(5, 2, generator=_gen()), torch.randn(2, generator=_gen(1))
    report = gradcheck.check_function(Float64Grads, (x, b), names=("x", "b"))
    assert {(w.input_name, w.check) for w in report.warnings} >= {("x", "dtype"), ("b", "shape"), ("b", "dtype")}
    assert report.failing_inputs == {"b"}  # the wrong value is not hidden behind the shape finding


def test_only_the_named_oracle_runs():
    report = gradcheck.check_vjp(torch.mm, mm_vjp, (torch.randn(3, 4, generator=_gen()), torch.randn(4, 2, generator=_gen(1))),
                                 oracles=("finite_differences",))
    assert {c.oracle for c in report.comparisons} == {"finite_differences"} and report.ok


def test_the_replay_of_a_layout_only_bug_reproduces_it():
    def wrong_when_transposed(A, B, G):
        dA, dB = mm_vjp(A, B, G)
        return (dA * 1.5 if not A.is_contiguous() else dA), dB

    A = torch.randn(4, 3, dtype=torch.float64, generator=_gen()).mT  # a transposed view
    B = torch.randn(4, 2, dtype=torch.float64, generator=_gen(1))
    report = gradcheck.check_vjp(torch.mm, wrong_when_transposed, (A, B), names=("A", "B"))
    assert report.failing_inputs == {"A"}
    assert ".as_strided((3, 4), (1, 3))" in report.reproducer
    code = "\n".join(line for line in report.reproducer.splitlines() if "fill in" not in line)
    namespace = {"vjp": wrong_when_transposed}
    exec(code.replace("print(", "replayed = ("), namespace)  # noqa: S102 - running our own generated script
    assert namespace["replayed"].failing_inputs == {"A"}


def test_large_inputs_are_saved_to_a_file_the_replay_loads():
    A, B = torch.randn(20, 20, generator=_gen()), torch.randn(20, 20, generator=_gen(1))
    report = gradcheck.check_vjp(torch.mm, lambda A, B, G: (G @ B.mT * 2, A.mT @ G), (A, B))
    assert "torch.load(" in report.reproducer and "saved['t0']" in report.reproducer
    assert len(report.reproducer) < 4000  # not every element as a literal


def test_tensors_inside_list_arguments_carry_their_errors():
    """torch.stack / torch.cat take lists: a wrong VJP written through them is still caught."""
    A, B = torch.randn(3, 4, generator=_gen()), torch.randn(4, 2, generator=_gen(1))
    assert not gradcheck.check_vjp(torch.mm, lambda A, B, G: (torch.stack([G, G])[0] @ B.mT * 1.5, A.mT @ G), (A, B)).ok
    assert not gradcheck.check_vjp(torch.mm, lambda A, B, G: (torch.cat([G * 1.5]) @ B.mT, A.mT @ G), (A, B)).ok
    assert gradcheck.check_vjp(torch.mm, lambda A, B, G: (torch.cat([G, G], 1)[:, :2] @ B.mT, A.mT @ G), (A, B)).ok


def test_a_gradient_computed_in_numpy_is_not_taken_for_exact():
    A, B = torch.randn(3, 4, generator=_gen()), torch.randn(4, 2, generator=_gen(1))

    def numpy_vjp(A, B, G):
        return torch.tensor(G.numpy() @ B.numpy().T), torch.from_numpy(A.numpy().T @ G.numpy())

    report = gradcheck.check_vjp(torch.mm, numpy_vjp, (A, B))
    assert report.ok, str(report)
    assert any("not visible to the error model for input0, input1" in note for note in report.notes)


def _add_with_db(db_of_G):
    """y = x + b (b broadcast along rows); the backward returns ``db_of_G(G)`` for b, as written."""

    class AddBias(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, b):
            return x + b

        @staticmethod
        def backward(ctx, G):
            return G, db_of_G(G)

    return AddBias


def test_a_gradient_the_input_broadcasts_to_in_the_same_rank_is_summed_by_the_engine():
    # b (1, 3), db (4, 3): equal ranks, b's size-1 dimension expands: a warning under the engine contract
    x, b = torch.randn(4, 3, dtype=torch.float64, generator=_gen()), torch.randn(1, 3, dtype=torch.float64, generator=_gen(1))
    report = gradcheck.check_function(_add_with_db(lambda G: G), (x, b), names=("x", "b"))
    assert report.ok, str(report)
    assert [(w.input_index, w.input_name, w.check, w.got) for w in report.warnings] == [
        (1, "b", "shape", "(4, 3), which the engine sums to (1, 3)")]


def test_a_gradient_that_does_not_broadcast_to_the_input_is_a_shape_failure():
    # b (2, 3): a db of fewer dimensions (3,), or of the same rank with a 2 where 5 is (5, 3), is no sum_to of anything
    x, b = torch.randn(2, 3, dtype=torch.float64, generator=_gen()), torch.randn(2, 3, dtype=torch.float64, generator=_gen(1))
    for db, got in ((lambda G: G[0], "(3,)"), (lambda G: torch.cat([G, G, G[:1]]), "(5, 3)")):
        report = gradcheck.check_function(_add_with_db(db), (x, b), names=("x", "b"))
        assert [(p.input_name, p.check, p.got) for p in report.problems] == [("b", "shape", got)], str(report)
        assert not report.ok and not report.warnings


def test_every_gradient_is_judged_not_only_the_first_bad_one():
    """(The first op on a meta tensor in a process imports torch._dynamo, about 0.5 s, once.)"""
    def f(x, k, y, z, w, v):
        return x * k + y.sum() + z.sum() + w + v

    def vjp(x, k, y, z, w, v, G):
        return G * k, G.to(torch.int64), "oops", torch.ones(3, 2, dtype=torch.float64), G.to("meta"), G

    x, z, w, v = (torch.randn(s, dtype=torch.float64, generator=_gen(i)) for i, s in enumerate(((2,), (2, 2), (2,), (2,))))
    k, y = torch.tensor([2, 3]), torch.randn(3, dtype=torch.float64, generator=_gen(4))
    report = gradcheck.check_vjp(f, vjp, (x, k, y, z, w, v), names=("x", "k", "y", "z", "w", "v"))
    assert [(p.check, p.expected, p.got, p.input_index, p.input_name) for p in report.problems] == [
        ("type", "None (this input, a torch.int64 tensor, is not differentiated)", "Tensor", 1, "k"),
        ("type", "a torch.Tensor or None", "builtins.str", 2, "y"),
        ("shape", "(2, 2) (as the input)", "(3, 2)", 3, "z"),
        ("device", "cpu (as the input)", "meta", 4, "w"),
    ]
    assert report.failing_inputs == {"k", "y", "z", "w"}  # x's and v's gradients are right, and still compared
    assert {c.input_name for c in report.comparisons if c.oracle == "autograd"} == {"x", "v"}


def test_a_missing_gradient_does_not_stop_the_inputs_after_it_being_judged():
    A, B = torch.randn(3, 4, generator=_gen()), torch.randn(4, 2, generator=_gen(1))
    report = gradcheck.check_vjp(torch.mm, lambda A, B, G: (None, (A.mT @ G).mT), (A, B), names=("A", "B"))
    assert ("shape", "(4, 2) (as the input)", "(2, 4)", 1, "B") in [(p.check, p.expected, p.got, p.input_index, p.input_name)
                                                                    for p in report.problems]


@pytest.mark.parametrize("unusable", ["a wrong shape", "not a tensor"])
def test_an_unusable_gradient_is_reported_once_even_if_it_also_varies_between_calls(unusable):
    calls = iter(range(10))

    def vjp(A, B, G):
        k = next(calls)
        dB = (A.mT @ G) * (1 + k * 2.0**-20)  # different on every call
        if unusable == "a wrong shape":
            return G @ B.mT, dB.mT
        return G @ B.mT, ("oops" if k == 0 else dB)  # the traced call's answer decides the structure

    A, B = torch.randn(3, 4, generator=_gen()), torch.randn(4, 2, generator=_gen(1))
    report = gradcheck.check_vjp(torch.mm, vjp, (A, B), names=("A", "B"))
    assert [(p.check, p.input_name) for p in report.problems] == [("shape" if unusable == "a wrong shape" else "type", "B")]


def test_a_gradient_for_a_float_argument_names_its_type():
    report = gradcheck.check_vjp(lambda x, c: x * c, lambda x, c, G: (G * c, 1.5), (torch.ones(2, dtype=torch.float64), 2.0),
                                 names=("x", "c"))
    assert [(p.check, p.expected, p.got, p.input_index) for p in report.problems] == [
        ("type", "None (this input, a float, is not differentiated)", "float", 1)]


def test_how_many_gradients():
    A, B = torch.randn(3, 4, generator=_gen()), torch.randn(4, 2, generator=_gen(1))

    def problems(vjp):
        return [(p.check, p.expected, p.got) for p in gradcheck.check_vjp(torch.mm, vjp, (A, B), names=("A", "B")).problems]

    assert problems(lambda A, B, G: G @ B.mT) == [("count", "a tuple of 2 gradients (one per input)", "a Tensor")]
    assert problems(lambda A, B, G: (G @ B.mT,)) == [("count", "2 gradients (one per input: A, B)", "1")]
    assert problems(lambda A, B, G: (*mm_vjp(A, B, G), None, G)) == [
        ("count", "2 gradients, or trailing Nones after them", "4, with a Tensor at position 3")]
    assert problems(lambda A, B, G: (*mm_vjp(A, B, G), None)) == []
    # one input: a bare tensor is its gradient
    x = torch.randn(3, dtype=torch.float64, generator=_gen())
    assert gradcheck.check_vjp(torch.sin, lambda x, G: torch.cos(x) * G, (x,)).ok


def test_a_gradient_summed_by_the_engine_carries_the_rounding_of_that_sum():
    from gradcheck.contracts import normalized_error
    from gradcheck.tolerance import gamma

    # float32 gradient (4, 3) summed to (3,): each sum has 4 terms, rounded with float32's γ₄ on Σ|g|,
    # on top of the summands' own bounds; 1 + 2⁻³⁰ shows that Σ|g| is taken in float64
    g = torch.tensor([[1.0, -2.0, 2.0**-30]] * 3 + [[1.0, 0.0, 1.0]], dtype=torch.float32)
    error = torch.full((4, 3), 0.125, dtype=torch.float64)
    got = normalized_error(error, g, (3,))
    expected = torch.tensor([0.5 + gamma(4, torch.float32) * 4, 0.5 + gamma(4, torch.float32) * 6,
                             0.5 + gamma(4, torch.float32) * (1 + 3 * 2.0**-30)], dtype=torch.float64)
    assert torch.allclose(got, expected, rtol=1e-14, atol=0)
    magnitude_only = normalized_error(torch.zeros(4, 3, dtype=torch.float64), g, (3,))
    assert float(magnitude_only[2]) == pytest.approx(gamma(4, torch.float32) * (1 + 3 * 2.0**-30), rel=1e-14, abs=0)
    # a shape that is already right is left alone; one term per element (1, 3) → (3,) still rounds once
    assert normalized_error(error, g, (4, 3)) is error
    assert torch.allclose(normalized_error(error[:1], g[:1], (3,)), 0.125 + gamma(1, torch.float32) * g[0].double().abs(), rtol=1e-14)
    # (5,) summed to (1,): five terms
    assert float(normalized_error(torch.zeros(5, dtype=torch.float64), torch.ones(5), (1,))) == pytest.approx(gamma(5, torch.float32) * 5, rel=1e-12, abs=0)


def test_an_integer_gradient_the_engine_sums_and_casts_is_judged_not_a_crash():
    x, b = torch.randn(4, 3, dtype=torch.float64, generator=_gen()), torch.randn(3, dtype=torch.float64, generator=_gen(1))
    report = gradcheck.check_function(_add_with_db(lambda G: G.round().to(torch.int64)), (x, b), names=("x", "b"))
    assert {(w.input_name, w.check) for w in report.warnings} == {("b", "shape"), ("b", "dtype")}
    assert report.failing_inputs == {"b"}  # rounded to integers: the value is wrong


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: torch.cuda.is_available() is False")
def test_a_gradient_on_another_device_is_a_failure_and_its_values_are_still_compared():
    A, B = torch.randn(3, 4, generator=_gen()), torch.randn(4, 2, generator=_gen(1))
    report = gradcheck.check_vjp(torch.mm, lambda A, B, G: ((G @ B.mT).cuda(), (A.mT @ G * 1.5).cuda()), (A, B), names=("A", "B"))
    assert [(p.check, p.got, p.input_name) for p in report.problems] == [("device", "cuda:0", "A"), ("device", "cuda:0", "B")]
    assert {c.input_name for c in report.comparisons if not c.ok} >= {"B"}  # B's wrong value is found on the way
    assert all(c.ok for c in report.comparisons if c.input_name == "A")
