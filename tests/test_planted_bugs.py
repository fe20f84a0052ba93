"""Every planted bug is caught by ``verify`` with the rule's own strategy, the report names the wrong
input, and hypothesis shrinks the counterexample to something small."""

from __future__ import annotations

import pytest
import torch

import gradcheck
from gradcheck.rules import rule_named
from planted_bugs import BUGS

SMALL = 16  # elements over all inputs of a shrunk counterexample


def test_the_zoo_has_twenty_distinct_bug_classes():
    assert len({bug.name for bug in BUGS}) >= 20


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.id)
def test_planted_bug_is_caught(bug):
    rule = rule_named(bug.rule)
    with pytest.raises(gradcheck.GradientMismatch) as caught:
        gradcheck.verify(rule.forward, bug.vjp, bug.operands(),
                         exact=bug.exact, max_examples=200, **rule.check_options())
    report = caught.value.report
    assert bug.wrong_input in report.failing_inputs, str(report)
    assert sum(torch.Size(s).numel() for s in report.shapes) <= SMALL, str(report)
