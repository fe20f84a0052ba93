"""The main job's engine: verify rules × devices × dtypes under hypothesis and summarize each run,
in this process or spread over worker processes."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

import torch
from hypothesis import settings

from gradcheck.check import GradcheckError, GradientMismatch, verify
from gradcheck.report import Report
from gradcheck.rules import Rule


@dataclass
class Row:
    """One rule on one device and dtype: how many examples, the worst error as a fraction of its bound
    against each oracle, the exact-arithmetic verdict (float64 and complex128 rows only) and the overall status."""

    rule: str
    device: str
    dtype: str
    examples: int = 0
    worst_autograd: float = 0.0
    worst_finite_differences: float = 0.0
    exact: str = "—"
    status: str = "ok"
    failure: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Worst:
    def __init__(self) -> None:
        self.examples, self.autograd, self.fd = 0, 0.0, 0.0

    def __call__(self, report: Report) -> None:
        self.examples += 1
        self.autograd = max(self.autograd, report.worst_ratio("autograd"))
        self.fd = max(self.fd, report.worst_ratio("finite_differences"))


# A report for people: fresh examples each run (unless derandomized), nothing written to the working directory.
SURVEY_SETTINGS = settings(database=None, deadline=None, print_blob=True)


def _run(rule: Rule, device: str, dtype: torch.dtype | None, examples: int, exact: bool,
         max_side: int | None, derandomize: bool) -> tuple[_Worst, str | None]:
    worst = _Worst()
    sizes = {} if max_side is None else {"max_side": max_side}  # a rule's own strategy may take no sizes
    try:
        verify(rule.forward, rule.vjp, rule.operands(dtype=dtype, device=device, exact=exact, **sizes),
               exact=exact, max_examples=examples, on_report=worst,
               hypothesis_settings=settings(SURVEY_SETTINGS, derandomize=derandomize), **rule.check_options())
    except GradientMismatch as failure:
        return worst, str(failure.report)
    except GradcheckError as error:
        return worst, f"error: {error}"
    return worst, None


def survey_rule(rule: Rule, device: str, dtype: torch.dtype, examples: int, *,
                max_side: int | None = None, derandomize: bool = False) -> Row:
    """One row; ``max_side=None`` draws the strategies' default sizes (``default_max_side()``)."""
    row = Row(rule.name, device, str(dtype).removeprefix("torch."))
    worst, failure = _run(rule, device, dtype, examples, False, max_side, derandomize)
    row.examples, row.worst_autograd, row.worst_finite_differences = worst.examples, worst.autograd, worst.fd
    if dtype in (torch.float64, torch.complex128):  # integers, Gaussian integers for complex128
        exact_worst, exact_failure = _run(rule, device, dtype, examples, True, max_side, derandomize)
        row.examples += exact_worst.examples
        row.exact = "pass" if exact_failure is None else "FAIL"
        failure = failure or exact_failure
    if failure is not None:
        row.status, row.failure = "FAIL", failure
    return row


class _Completed:
    """Futures in the order they finish, with a length, so that a progress bar knows its total."""

    def __init__(self, futures: Sequence[Future[Row]]) -> None:
        self.futures = futures

    def __len__(self) -> int:
        return len(self.futures)

    def __iter__(self) -> Iterator[Future[Row]]:
        return as_completed(self.futures)


def unsendable(rules: Sequence[Rule]) -> str | None:
    """Why a rule cannot go to a worker process (its functions must pickle: importable by name), or None."""
    for rule in rules:
        try:
            pickle.dumps(rule)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            return (f"rule {rule.name} cannot be sent to a worker process ({exc}); its functions must be "
                    "importable by name, or run it with one job")
    return None


def _worker_threads(jobs: int) -> None:
    # N workers share the cores: torch's intra-op pool would otherwise start one thread per core in each.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))


def survey(
    rules: Sequence[Rule],
    devices: Sequence[str],
    dtypes: Sequence[torch.dtype],
    examples: int,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda jobs: jobs,
    *,
    max_side: int | None = None,
    jobs: int = 1,
    derandomize: bool = False,
) -> list[Row]:
    """One row per (rule, device, dtype), in that order, for the dtypes each rule holds for (``Rule.dtypes``:
    complex ones only where it has a complex formula). ``jobs > 1`` runs the rows in as many worker
    processes (spawned, so that CUDA works in them; each imports torch, a few seconds; rules must pickle,
    as module-level functions do); ``progress`` then sees the rows as they finish, and the rows are those
    a serial run gives. Derandomized, ``python -m gradcheck`` gives the same numbers too for any number of
    jobs (hypothesis's derandomized draws also depend on constants it collects from the loaded project
    modules, which the command and its workers share)."""
    work = [(rule, device, dtype) for rule in rules for device in devices for dtype in dtypes if dtype in rule.dtypes]
    options: dict[str, Any] = dict(max_side=max_side, derandomize=derandomize)
    if jobs <= 1 or len(work) <= 1:
        return [survey_rule(rule, device, dtype, examples, **options) for rule, device, dtype in progress(work)]
    problem = unsendable(rules)
    if problem is not None:
        raise ValueError(problem)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(jobs, len(work)), mp_context=context, initializer=_worker_threads,
                             initargs=(min(jobs, len(work)),)) as pool:
        futures = [pool.submit(survey_rule, rule, device, dtype, examples, **options) for rule, device, dtype in work]
        for _ in progress(_Completed(futures)):
            pass
        return [future.result() for future in futures]
