"""``gradcheck.testing.gradient_test``: a hand-written gradient as a pytest test in one line.

Each test writes a throwaway test module in the three-line form and runs pytest on it in this process
(``pytester.inline_run``: torch is already imported here, so a run costs only its hypothesis examples),
then reads the per-case reports: which ids ran, passed, failed or were skipped, and why.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradcheck
from gradcheck import GradcheckError
from gradcheck.strategies import operands
from gradcheck.testing import _strategy, gradient_test

pytest_plugins = ["pytester"]

CUDA = torch.cuda.is_available()
ALL_DTYPES = ("float64", "float32", "float16", "bfloat16")

# The preamble of every throwaway module: a linear layer with its VJP (right and planted wrong) and as a
# Function; operands of fixed small sides, so that no profile's sizes slow the run down.
PREAMBLE = '''
import torch
from hypothesis import strategies as st
from gradcheck.strategies import operands
from gradcheck.testing import gradient_test

shapes = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)).map(
    lambda s: ((s[0], s[1]), (s[2], s[1]), (s[2],)))

def linear_operands(dtype, device):
    return operands(shapes, dtype=dtype, device=device)

def my_linear_vjp(x, W, b, G):
    return G @ W, G.mT @ x, G.sum(0)

def mean_not_sum_vjp(x, W, b, G):  # the planted bug: db averages over the batch instead of summing
    return G @ W, G.mT @ x, G.mean(0)

class MyLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        return x @ W.mT + b

    @staticmethod
    def backward(ctx, G):
        x, W = ctx.saved_tensors
        return G @ W, G.mT @ x, G.sum(0)
'''


def run(pytester: pytest.Pytester, body: str, *args: str) -> dict[str, pytest.TestReport]:
    """Run a throwaway module (the preamble, then ``body``); each case's deciding report, by test id."""
    pytester.makepyfile(test_gradients=PREAMBLE + body)
    recorder = pytester.inline_run("-p", "no:cacheprovider", *args)
    outcomes: dict[str, pytest.TestReport] = {}
    for report in recorder.getreports("pytest_runtest_logreport"):
        if report.when == "call" or report.outcome != "passed":  # a skip is decided at setup
            outcomes[report.nodeid.split("::")[-1]] = report
    return outcomes


def cases(name: str, dtypes: tuple[str, ...], devices: tuple[str, ...] = ("cpu", "cuda")) -> set[str]:
    return {f"{name}[{dtype}-{device}]" for device in devices for dtype in dtypes}


def test_a_correct_vjp_passes_in_every_dtype_and_device(pytester):
    body = 'test_my_linear = gradient_test(torch.nn.functional.linear, my_linear_vjp, linear_operands, names=("x", "W", "b"), max_examples=5)\n'
    outcomes = run(pytester, body)
    assert set(outcomes) == cases("test_my_linear", ALL_DTYPES)
    ran = cases("test_my_linear", ALL_DTYPES, ("cpu", "cuda") if CUDA else ("cpu",))
    assert {name for name, report in outcomes.items() if report.passed} == ran
    for name in set(outcomes) - ran:  # CUDA on a machine without it: skipped, and the report says why
        assert outcomes[name].skipped
        assert "cuda is not available here: torch.cuda.is_available() is False" in str(outcomes[name].longrepr)


def test_a_wrong_vjp_fails_with_gradchecks_report(pytester):
    # Batch 3, so that every example with a nonzero cotangent shows the bug; no shrinking (seconds), and
    # derandomized, so that the five examples are the same every run.
    body = ('from hypothesis import Phase, settings\n'
            'def batch_of_three(dtype, device):\n'
            '    return operands(st.just(((3, 2), (1, 2), (1,))), dtype=dtype, device=device)\n'
            'test_my_linear = gradient_test(torch.nn.functional.linear, mean_not_sum_vjp, batch_of_three, names=("x", "W", "b"),\n'
            '                               dtypes=["float64"], devices=["cpu"], max_examples=5,\n'
            '                               hypothesis_settings=settings(database=None, derandomize=True, phases=[Phase.generate]))\n')
    outcomes = run(pytester, body)
    assert set(outcomes) == {"test_my_linear[float64-cpu]"}
    report = outcomes["test_my_linear[float64-cpu]"]
    assert report.failed
    text = report.longreprtext
    assert "GradientMismatch: linear: FAILED on float64 cpu; inputs x (3, 2), W (1, 2), b (1,)" in text
    assert "FAIL input 2 (b) vs autograd" in text  # the wrong gradient named, and only it
    assert "FAIL input 0 (x)" not in text and "FAIL input 1 (W)" not in text
    assert "from test_gradients import mean_not_sum_vjp as vjp" in text  # the replay script


def test_a_function_is_checked_with_operands_as_second_argument(pytester):
    body = ('test_my_function = gradient_test(MyLinear, linear_operands, dtypes=[torch.float64, "float32"], max_examples=5)\n'
            'test_by_keyword = gradient_test(MyLinear, operands=linear_operands, dtypes=["float64"], devices=["cpu"], max_examples=5)\n')
    outcomes = run(pytester, body)
    assert set(outcomes) == cases("test_my_function", ("float64", "float32")) | {"test_by_keyword[float64-cpu]"}
    assert all(outcomes[name].passed for name in cases("test_my_function", ("float64", "float32"), ("cpu",)))
    assert outcomes["test_by_keyword[float64-cpu]"].passed
    assert all(outcomes[name].passed == CUDA for name in cases("test_my_function", ("float64", "float32"), ("cuda",)))


def test_a_plain_strategy_is_one_case(pytester):
    body = 'test_fixed = gradient_test(torch.nn.functional.linear, my_linear_vjp, linear_operands(torch.float32, "cpu"), max_examples=5)\n'
    outcomes = run(pytester, body)
    assert set(outcomes) == {"test_fixed[operands]"}
    assert outcomes["test_fixed[operands]"].passed


def test_max_examples_overrides_the_active_profile(pytester):
    pytester.makeconftest('from hypothesis import settings\n'
                          'settings.register_profile("gradient-test-probe", max_examples=4, database=None)\n')
    body = ('REPORTS = {"profile": [], "override": []}\n'
            'test_profile = gradient_test(torch.nn.functional.linear, my_linear_vjp, linear_operands, dtypes=["float64"], devices=["cpu"],\n'
            '                             on_report=REPORTS["profile"].append)\n'
            'test_override = gradient_test(torch.nn.functional.linear, my_linear_vjp, linear_operands, dtypes=["float64"], devices=["cpu"],\n'
            '                              max_examples=2, on_report=REPORTS["override"].append)\n'
            'def test_zz_counts():\n'
            '    assert {k: len(v) for k, v in REPORTS.items()} == {"profile": 4, "override": 2}\n')
    previous = settings.get_current_profile_name()
    try:
        outcomes = run(pytester, body, "--hypothesis-profile=gradient-test-probe")
    finally:
        settings.load_profile(previous)  # the run loaded its profile in this process
    assert {name: report.outcome for name, report in outcomes.items()} == {
        "test_profile[float64-cpu]": "passed", "test_override[float64-cpu]": "passed", "test_zz_counts": "passed"}


@pytest.mark.skipif(not any(ep.value == "_gradcheck_pytestplugin" for ep in entry_points(group="pytest11")),
                    reason="gradcheck is not installed (pip install -e .): its pytest plugin registers the cuda marker")
def test_cuda_cases_carry_the_registered_cuda_marker(pytester):
    body = 'test_my_linear = gradient_test(torch.nn.functional.linear, my_linear_vjp, linear_operands, dtypes=["float64"])\n'
    pytester.makepyfile(test_gradients=PREAMBLE + body)
    selected = pytester.inline_run("-p", "no:cacheprovider", "--strict-markers", "--collect-only", "-m", "cuda")
    assert [item.name for item in selected.getcalls("pytest_collection_finish")[0].session.items] == ["test_my_linear[float64-cuda]"]


def test_the_result_is_a_test_function_parametrized_over_cases():
    test = gradient_test(torch.nn.functional.linear, lambda x, W, b, G: (G @ W, G.mT @ x, G.sum(0)),
                         lambda dtype, device: operands(st.just(((1, 1), (1, 1), (1,))), dtype=dtype, device=device),
                         dtypes=["float16"], devices=["cpu"], max_examples=1)
    (mark,) = test.pytestmark
    assert mark.name == "parametrize" and [p.id for p in mark.args[1]] == ["float16-cpu"]
    test((torch.float16, "cpu"))  # callable by hand too: one case, passing


def test_import_gradcheck_exports_it():
    assert gradcheck.gradient_test is gradient_test


def test_a_factory_without_device_has_its_tensors_moved():
    strategy = _strategy(lambda dtype: operands(st.just(((2, 1), (3,))), dtype=dtype, device="cpu"), torch.float32, "meta", False)

    @settings(max_examples=2, database=None)
    @given(strategy)
    def drawn(inputs):
        assert [(x.device.type, x.dtype, tuple(x.shape)) for x in inputs] == [("meta", torch.float32, (2, 1)), ("meta", torch.float32, (3,))]

    drawn()


def linear_vjp(x, W, b, G):
    return G @ W, G.mT @ x, G.sum(0)


def linear_ops(dtype, device):
    return operands(st.just(((1, 1), (1, 1), (1,))), dtype=dtype, device=device)


class Identity(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, G):
        return G


@pytest.mark.parametrize("call, message", [
    (lambda: gradient_test(Identity, linear_vjp, linear_ops), "a torch.autograd.Function's backward is the VJP checked"),
    (lambda: gradient_test(torch.nn.functional.linear, linear_ops(torch.float64, "cpu"), linear_ops), "vjp: expected a callable"),
    (lambda: gradient_test(torch.nn.functional.linear, linear_vjp), "operands: expected an operand-strategy factory"),
    (lambda: gradient_test(torch.nn.functional.linear, linear_vjp, 3), "got int"),
    (lambda: gradient_test(torch.nn.functional.linear, linear_vjp, linear_ops, dtypes=["int32"]), "dtypes: expected floating dtypes"),
    (lambda: gradient_test(torch.nn.functional.linear, linear_vjp, linear_ops, dtypes=[]), "expected at least one of each"),
    (lambda: gradient_test(torch.nn.functional.linear, linear_vjp, linear_ops, devices=["gpu0"]), "devices: expected device names"),
    (lambda: gradient_test(torch.nn.functional.linear, linear_vjp, linear_ops, exact=True, dtypes=["float32"]), "exact=True draws"),
    (lambda: gradient_test(torch.nn.functional.linear, linear_vjp, linear_ops(torch.float64, "cpu"), dtypes=["float32"]),
     "a plain strategy fixes its own dtype and device"),
    (lambda: gradient_test(torch.nn.functional.linear, linear_vjp, linear_ops, strict=True), "strict: applies to a torch.autograd.Function"),
    (lambda: gradient_test(torch.nn.functional.linear, linear_vjp, linear_ops, max_examples=0), "max_examples: expected a positive int, got 0"),
])
def test_a_callers_mistake_is_named_when_the_test_is_made(call, message):
    with pytest.raises(GradcheckError, match=message.replace("(", r"\(").replace("*", r"\*")):
        call()


def test_a_factory_returning_no_strategy_is_named():
    test = gradient_test(torch.nn.functional.linear, linear_vjp, lambda dtype, device: [1, 2], dtypes=["float64"], devices=["cpu"])
    with pytest.raises(GradcheckError, match="to return a hypothesis strategy of input tuples, got list"):
        test((torch.float64, "cpu"))
