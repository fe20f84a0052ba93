"""The main job's engine: verify rules × devices × dtypes under hypothesis and summarize each run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import torch

from hypothesis import settings

from gradcheck.check import GradcheckError, GradientMismatch, verify
from gradcheck.report import Report
from gradcheck.rules import Rule


@dataclass
class Row:
    """One rule on one device and dtype: how many examples, the worst error as a fraction of its bound
    against each oracle, the exact-arithmetic verdict (float64 rows only) and the overall status."""

    rule: str
    device: str
    dtype: str
    examples: int = 0
    worst_autograd: float = 0.0
    worst_finite_differences: float = 0.0
    exact: str = "—"
    status: str = "ok"
    failure: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class _Worst:
    def __init__(self) -> None:
        self.examples, self.autograd, self.fd = 0, 0.0, 0.0

    def __call__(self, report: Report) -> None:
        self.examples += 1
        self.autograd = max(self.autograd, report.worst_ratio("autograd"))
        self.fd = max(self.fd, report.worst_ratio("finite_differences"))


# A report for people: fresh examples each run, nothing written to the working directory.
SURVEY_SETTINGS = settings(database=None, deadline=None, print_blob=True)


def _run(rule: Rule, device: str, dtype: torch.dtype | None, examples: int, exact: bool) -> tuple[_Worst, str | None]:
    worst = _Worst()
    try:
        verify(rule.forward, rule.vjp, rule.operands(dtype=dtype, device=device, exact=exact), exact=exact,
               max_examples=examples, on_report=worst, hypothesis_settings=SURVEY_SETTINGS, **rule.check_options())
    except GradientMismatch as failure:
        return worst, str(failure.report)
    except GradcheckError as error:
        return worst, f"error: {error}"
    return worst, None


def survey_rule(rule: Rule, device: str, dtype: torch.dtype, examples: int) -> Row:
    row = Row(rule.name, device, str(dtype).removeprefix("torch."))
    worst, failure = _run(rule, device, dtype, examples, exact=False)
    row.examples, row.worst_autograd, row.worst_finite_differences = worst.examples, worst.autograd, worst.fd
    if dtype == torch.float64:
        exact_worst, exact_failure = _run(rule, device, None, examples, exact=True)
        row.examples += exact_worst.examples
        row.exact = "pass" if exact_failure is None else "FAIL"
        failure = failure or exact_failure
    if failure is not None:
        row.status, row.failure = "FAIL", failure
    return row


def survey(
    rules: Sequence[Rule],
    devices: Sequence[str],
    dtypes: Sequence[torch.dtype],
    examples: int,
    progress: Callable[[Iterable], Iterable] = lambda jobs: jobs,
) -> list[Row]:
    jobs = [(rule, device, dtype) for rule in rules for device in devices for dtype in dtypes]
    return [survey_rule(rule, device, dtype, examples) for rule, device, dtype in progress(jobs)]
