"""gradcheck: proof that a hand-written gradient is right.

Each hand-derived vector-Jacobian product is compared with reverse-mode autograd, central finite
differences and, on integer-valued inputs, exact arithmetic, under floating-point error bounds, on
operands that hypothesis generates and shrinks.
"""

from gradcheck.check import (
    GradcheckError,
    GradientMismatch,
    assert_vjp,
    check_function,
    check_vjp,
    verify,
    verify_function,
)
from gradcheck.forward import assert_jvp, check_function_jvp, check_hvp, check_jvp, verify_jvp
from gradcheck.numpy_layers import check_numpy, verify_numpy
from gradcheck.report import Comparison, Problem, Report
from gradcheck.rules import RULES, Rule, rule_named, unbroadcast
from gradcheck.testing import gradient_test  # imports pytest only when called

__all__ = [
    "RULES",
    "Comparison",
    "GradcheckError",
    "GradientMismatch",
    "Problem",
    "Report",
    "Rule",
    "assert_jvp",
    "assert_vjp",
    "check_function",
    "check_function_jvp",
    "check_hvp",
    "check_jvp",
    "check_numpy",
    "check_vjp",
    "gradient_test",
    "rule_named",
    "unbroadcast",
    "verify",
    "verify_jvp",
    "verify_numpy",
    "verify_function",
]
