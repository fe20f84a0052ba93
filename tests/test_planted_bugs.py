"""Every planted bug is caught by ``verify`` with the rule's own strategy, the report names the wrong
input, and hypothesis shrinks the counterexample to something small; the tiled backward, wrong only
past side 16, is caught at the ``gradcheck-ci`` profile's sizes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import Phase, settings

import gradcheck
from _gradcheck_pytestplugin import register_profiles
from gradcheck import strategies as S
from gradcheck.rules import rule_named
from planted_bugs import BUGS, TILE, TILED_BUG

SMALL = 16  # elements over all inputs of a shrunk counterexample


def test_the_zoo_has_twenty_distinct_bug_classes():
    assert len({bug.name for bug in BUGS}) >= 20


# Finding is judged on every bug; shrinking — most of a failing search's cost — on a few bugs of
# different kinds (a transpose, a small relative error).
SHRUNK = (
    "linear: dW = xᵀ·G, transposed",
    "mm: relative error 1e-4 in float32",
)
NO_SHRINKING = settings(phases=(Phase.explicit, Phase.reuse, Phase.generate))


def _caught(bug, hypothesis_settings=None):
    rule = rule_named(bug.rule)
    with pytest.raises(gradcheck.GradientMismatch) as caught:
        gradcheck.verify(rule.forward, bug.vjp, bug.operands(), exact=bug.exact, max_examples=200,
                         hypothesis_settings=hypothesis_settings, **rule.check_options())
    report = caught.value.report
    assert bug.wrong_input in report.failing_inputs, str(report)
    return report


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.id)
def test_planted_bug_is_caught(bug):
    _caught(bug, settings(settings(), phases=NO_SHRINKING.phases))


@pytest.mark.parametrize("bug", [b for b in BUGS if b.name in SHRUNK], ids=lambda b: b.id)
def test_planted_bug_shrinks_to_a_small_example(bug):
    report = _caught(bug)
    assert sum(torch.Size(s).numel() for s in report.shapes) <= SMALL, str(report)


def test_the_shrunk_bugs_are_in_the_zoo():
    assert set(SHRUNK) <= {bug.name for bug in BUGS}


@pytest.fixture
def ci_profile(monkeypatch: pytest.MonkeyPatch):
    """The ``gradcheck-ci`` profile loaded, as ``GRADCHECK_PROFILE=ci`` loads it: 40 derandomized examples,
    and its sizes (``default_max_side()`` reads the loaded profile); the previous profile restored after."""
    monkeypatch.delenv(S.MAX_SIDE_ENV, raising=False)
    register_profiles()
    previous = settings.get_current_profile_name()
    settings.load_profile("gradcheck-ci")
    try:
        yield settings.default
    finally:
        settings.load_profile(previous)


def test_tiled_backward_is_caught_by_the_ci_profile(ci_profile):
    assert ci_profile.max_examples == 40 and ci_profile.derandomize
    assert S.default_max_side() == 64
    rule = rule_named(TILED_BUG.rule)
    with pytest.raises(gradcheck.GradientMismatch) as caught:
        gradcheck.verify(rule.forward, TILED_BUG.vjp, rule.operands(dtype=torch.float64, device="cpu"), **rule.check_options())
    report = caught.value.report
    assert report.failing_inputs and report.failing_inputs <= {"A", "B"}, str(report)
    # Shrunk to one past the tile (more elements than a tile has), and no smaller example exists.
    assert max(max(shape) for shape in report.shapes) == TILE + 1, str(report)
    assert sum(torch.Size(s).numel() for s in report.shapes) > TILE


def test_tiled_backward_is_right_within_one_tile():
    """What makes it a size bug: at sides up to 16 no example finds it."""
    rule = rule_named(TILED_BUG.rule)
    gradcheck.verify(rule.forward, TILED_BUG.vjp, rule.operands(dtype=torch.float64, device="cpu", max_side=TILE),
                     max_examples=40, hypothesis_settings=settings(derandomize=True, database=None), **rule.check_options())
