"""The two ways a check ends badly: the caller's mistake, or a wrong gradient."""

from __future__ import annotations

from gradcheck.report import Report


class GradcheckError(ValueError):
    """The harness was called with something it cannot check; the message names it, expected vs got."""


class GradientMismatch(AssertionError):
    """A hand-written gradient disagrees with an oracle or is malformed; ``.report`` says where and by how much."""

    def __init__(self, report: Report) -> None:
        super().__init__(str(report))
        self.report = report
