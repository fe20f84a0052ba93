"""What a check found: value comparisons against each oracle, structural problems, and a replay snippet."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ORACLES = ("autograd", "finite_differences")


@dataclass(frozen=True)
class Comparison:
    """The hand-written gradient of one input against one oracle, at its worst element.

    ``ratio`` is the largest ``|error| / bound`` over the elements (or probes); the comparison passes
    when it is at most 1. In exact mode the bound is 0 and any difference fails.
    """

    input_index: int
    input_name: str
    oracle: str
    exact: bool
    max_abs_error: float
    max_rel_error: float
    worst: str  # the element, e.g. "(1, 0)", or "probe 2" for a random direction
    actual: float
    expected: float
    bound: float
    ratio: float

    @property
    def ok(self) -> bool:
        return self.ratio <= 1.0

    def describe(self) -> str:
        mode = "exact arithmetic, bit for bit" if self.exact else f"bound {self.bound:.3g}"
        return (
            f"input {self.input_index} ({self.input_name}) vs {self.oracle}: worst at {self.worst}: "
            f"got {self.actual!r}, expected {self.expected!r}; abs error {self.max_abs_error:.3g}, "
            f"rel error {self.max_rel_error:.3g}, {mode}, error/bound {_ratio_text(self.ratio)}"
        )


@dataclass(frozen=True)
class Problem:
    """A defect found before any value is compared: wrong count, shape, dtype, device, type, a raise, …"""

    check: str
    expected: str
    got: str
    input_index: int | None = None
    input_name: str | None = None

    def describe(self) -> str:
        where = f"input {self.input_index} ({self.input_name}): " if self.input_index is not None else ""
        return f"{where}{self.check}: expected {self.expected}, got {self.got}"


@dataclass
class Report:
    function: str
    input_names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtype: str
    device: str
    exact: bool
    comparisons: list[Comparison] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reproducer: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.comparisons)

    @property
    def failures(self) -> list[Comparison | Problem]:
        return [*self.problems, *(c for c in self.comparisons if not c.ok)]

    @property
    def failing_inputs(self) -> set[str]:
        return {f.input_name for f in self.failures if f.input_name is not None}

    def worst_ratio(self, oracle: str) -> float:
        """The largest error/bound against ``oracle`` (0 when it made no comparison)."""
        return max((c.ratio for c in self.comparisons if c.oracle == oracle), default=0.0)

    def __str__(self) -> str:
        shapes = ", ".join(f"{n} {tuple(s)}" for n, s in zip(self.input_names, self.shapes))
        head = (
            f"{self.function}: {'ok' if self.ok else 'FAILED'} on {self.dtype} {self.device}"
            f"{' (exact mode)' if self.exact else ''}; inputs {shapes}"
        )
        lines = [head]
        lines += [f"  FAIL {f.describe()}" for f in self.failures]
        if self.ok:
            for oracle in ORACLES:
                if any(c.oracle == oracle for c in self.comparisons):
                    lines.append(f"  worst error/bound vs {oracle}: {_ratio_text(self.worst_ratio(oracle))}")
        lines += [f"  note: {note}" for note in self.notes]
        if not self.ok and self.reproducer:
            lines += ["  replay:", *("    " + line for line in self.reproducer.splitlines())]
        return "\n".join(lines)


def _ratio_text(ratio: float) -> str:
    return "inf" if math.isinf(ratio) else ("nan" if math.isnan(ratio) else f"{ratio:.3g}")
