"""PyTorch's Function contract and the shapes of calls people make: several outputs, non-tensor
arguments, a VJP that differentiates inside, the engine's repairs, and replays that replay."""

from __future__ import annotations

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
    report = gradcheck.check_vjp(f, lambda x, c, G: (G * c, G.sum()), (torch.randn(3, dtype=torch.float64), 2.0), names=("x", "c"))
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

    assert gradcheck.check_function(Records, (torch.randn(3), torch.tensor([1, 2, 0]))).ok
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
