"""Every malformed backward and every bad operand, through check_vjp, check_function and verify:
a failing report or a GradcheckError that names the input and says expected vs got — never a
traceback from inside the harness."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import Phase, settings
from hypothesis import strategies as st

import gradcheck
from gradcheck.rules import mm_vjp
from gradcheck.sensitivity import as_function

NAMES = ("A", "B")


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(2, 4, generator=g, dtype=torch.float64)


def _second(make: Callable) -> Callable:
    """mm's VJP with the gradient of B replaced by make(A, B, G, correct_dB)."""
    return lambda A, B, G: (mm_vjp(A, B, G)[0], make(A, B, G, mm_vjp(A, B, G)[1]))


def _mutating(A, B, G):
    grads = mm_vjp(A, B, G)
    B.mul_(2.0)
    return grads


def _flaky():
    calls = itertools.count()
    return _second(lambda A, B, G, dB: dB * (1 + 2.0**-30) if next(calls) % 2 else dB)


def _raises(A, B, G):
    raise ValueError("backward exploded")


@dataclass(frozen=True)
class Case:
    name: str
    vjp: Callable | None = None
    inputs: Callable = _inputs
    expect_error: bool = False  # a GradcheckError rather than a failing report
    words: tuple[str, ...] = ("input 1 (B)", "expected")


BACKWARD_CASES = [
    Case("too few gradients", lambda A, B, G: mm_vjp(A, B, G)[:1], words=("count", "expected 2 gradients", "got 1")),
    Case("too many gradients", lambda A, B, G: (*mm_vjp(A, B, G), A),
         words=("count", "expected 2 gradients, or trailing Nones", "got 3", "Tensor at position 2")),
    Case("wrong shape", _second(lambda A, B, G, dB: dB.mT), words=("input 1 (B)", "shape", "expected (2, 4)", "got (4, 2)")),
    Case("broadcastable wrong shape (a missing sum)",  # an ASCII id: mutmut reruns pytest in one process, which escapes a non-ASCII id twice
         _second(lambda A, B, G, dB: dB.unsqueeze(0).expand(3, 2, 4)),
         words=("input 1 (B)", "shape", "expected (2, 4)", "got (3, 2, 4)")),
    Case("wrong dtype", _second(lambda A, B, G, dB: dB.float()), words=("input 1 (B)", "dtype", "expected torch.float64", "got torch.float32")),
    Case("wrong device", _second(lambda A, B, G, dB: dB.to("meta")), words=("input 1 (B)", "device", "expected cpu", "got meta")),
    Case("None for a differentiable input", _second(lambda A, B, G, dB: None), words=("input 1 (B)", "missing", "got None")),
    Case("a numpy array", _second(lambda A, B, G, dB: dB.numpy()), words=("input 1 (B)", "type", "expected a torch.Tensor", "numpy.ndarray")),
    Case("a Python float", _second(lambda A, B, G, dB: 1.5), words=("input 1 (B)", "type", "expected a torch.Tensor", "float")),
    Case("NaN values", _second(lambda A, B, G, dB: torch.full_like(dB, float("nan"))), words=("input 1 (B)", "got nan", "expected")),
    Case("inf values", _second(lambda A, B, G, dB: dB.index_fill(0, torch.tensor([0]), float("inf"))), words=("input 1 (B)", "got inf", "expected")),
    Case("raises", _raises, words=("raised", "expected the vjp to return gradients", "ValueError: backward exploded")),
    Case("mutates its inputs in place", _mutating, words=("input 1 (B)", "mutated", "expected inputs left unchanged")),
    Case("non-deterministic", None, words=("input 1 (B)", "nondeterministic", "expected the same gradient from two calls")),
]

OPERAND_CASES = [
    Case("NaN operand", mm_vjp, lambda: (_inputs()[0], _inputs()[1].index_fill(0, torch.tensor([1]), float("nan"))), True,
         ("input 1 (B)", "expected finite values", "got nan")),
    Case("inf operand", mm_vjp, lambda: (_inputs()[0], _inputs()[1].index_fill(0, torch.tensor([1]), float("inf"))), True,
         ("input 1 (B)", "expected finite values", "got inf")),
    Case("integer operand that f cannot take", mm_vjp, lambda: (_inputs()[0], _inputs()[1].long()), True,
         ("f (", "raised RuntimeError")),
    Case("no floating-point operand at all", mm_vjp, lambda: (_inputs()[0].long(), _inputs()[1] > 0), True,
         ("expected at least one floating-point tensor",)),
    Case("operands on mismatched devices", mm_vjp, lambda: (_inputs()[0], _inputs()[1].to("meta")), True,
         ("expected all on one device", "B on meta")),
    Case("operands of mismatched dtypes", mm_vjp, lambda: (_inputs()[0], _inputs()[1].float()), True,
         ("expected one dtype", "B torch.float32")),
    Case("not a tensor where f needs one", mm_vjp, lambda: (_inputs()[0], [[1.0, 2.0]]), True, ("f (", "raised TypeError")),
]

WELL_FORMED_OPERANDS = {
    "zero-size": lambda: (torch.zeros(3, 0, dtype=torch.float64), torch.zeros(0, 4, dtype=torch.float64)),
    "requires_grad set": lambda: tuple(t.requires_grad_() for t in _inputs()),
    "requires_grad not set": _inputs,
}


NO_SHRINKING = settings(phases=(Phase.explicit, Phase.reuse, Phase.generate), database=None)


def _run(entry: str, vjp, inputs):
    """Run one entry point; return the failing report's text, or the GradcheckError's."""
    try:
        if entry == "check_vjp":
            report = gradcheck.check_vjp(torch.mm, vjp, inputs, names=NAMES)
        elif entry == "check_function":
            report = gradcheck.check_function(as_function(torch.mm, vjp), inputs, names=NAMES, strict=True)
        else:
            with pytest.raises(gradcheck.GradientMismatch) as caught:
                gradcheck.verify(torch.mm, vjp, st.just(inputs), names=NAMES, max_examples=3,
                                 hypothesis_settings=NO_SHRINKING)  # the words are judged, not the shrunk cotangent
            report = caught.value.report
    except gradcheck.GradcheckError as error:
        return "error", str(error)
    assert not report.ok, str(report)
    return "report", str(report)


ENTRIES = ("check_vjp", "check_function", "verify")


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("case", BACKWARD_CASES + OPERAND_CASES, ids=lambda c: c.name)
def test_malformed_case_is_named(entry, case):
    vjp = case.vjp if case.vjp is not None else _flaky()
    kind, text = _run(entry, vjp, case.inputs())
    assert kind == ("error" if case.expect_error else "report"), text
    for word in case.words:
        assert word in text, (word, text)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("operands", WELL_FORMED_OPERANDS, ids=str)
def test_well_formed_operands_pass(entry, operands):
    inputs = WELL_FORMED_OPERANDS[operands]()
    if entry == "check_vjp":
        assert gradcheck.check_vjp(torch.mm, mm_vjp, inputs).ok
    elif entry == "check_function":
        assert gradcheck.check_function(as_function(torch.mm, mm_vjp), inputs).ok
    else:
        assert gradcheck.verify(torch.mm, mm_vjp, st.just(inputs), max_examples=2) is None


def test_mutation_is_reported_and_values_are_still_judged_on_the_originals():
    A, B = _inputs()
    original = B.clone()
    report = gradcheck.check_vjp(torch.mm, _mutating, (A, B), names=NAMES)
    assert [p.check for p in report.problems] == ["mutated"]
    assert all(c.ok for c in report.comparisons)
    assert torch.equal(B, original * 2)  # the user's tensor was changed by their backward, not by us


@pytest.mark.parametrize(("argument", "value", "message"), [
    ("f", "not callable", "f: expected a callable"),
    ("vjp", 3, "vjp: expected a callable"),
    ("inputs", torch.zeros(2), "inputs: expected a tuple of inputs"),
    ("names", ("only one",), "names: expected 2 names"),
    ("cotangent", torch.zeros(5), "cotangent: expected shape (3, 4)"),
    ("oracles", ("autograd", "magic"), "oracles: expected a non-empty sequence of names from"),
    ("oracles", (), "oracles: expected a non-empty sequence"),
    ("contract", "loose", "contract: expected one of"),
    ("cotangent", (torch.zeros(3, 4), torch.zeros(3, 4)), "cotangent: expected 1 \\(one per output of f\\), got 2"),
])
def test_wrong_arguments_get_a_gradcheck_error(argument, value, message):
    arguments = {"f": torch.mm, "vjp": mm_vjp, "inputs": _inputs()}
    options = {}
    (arguments if argument in arguments else options)[argument] = value
    pattern = message if "\\(" in message else message.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(gradcheck.GradcheckError, match=pattern):
        gradcheck.check_vjp(arguments["f"], arguments["vjp"], arguments["inputs"], **options)


def test_exact_mode_refuses_non_integer_inputs():
    with pytest.raises(gradcheck.GradcheckError, match="A: exact mode expects integer values"):
        gradcheck.check_vjp(torch.mm, mm_vjp, _inputs(), names=NAMES, exact=True)


def test_a_forward_that_raises_is_named():
    with pytest.raises(gradcheck.GradcheckError, match="f \\(boom\\) raised RuntimeError: no"):
        def boom(A, B):
            raise RuntimeError("no")

        gradcheck.check_vjp(boom, mm_vjp, _inputs())


def test_check_function_refuses_a_non_function():
    with pytest.raises(gradcheck.GradcheckError, match="expected a torch.autograd.Function subclass"):
        gradcheck.check_function(torch.mm, _inputs())


def test_numpy_is_available_for_the_numpy_case():
    assert isinstance(torch.zeros(1).numpy(), np.ndarray)
