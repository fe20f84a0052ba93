"""What a check found: value comparisons against each oracle, structural problems, and a replay snippet."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ORACLES = ("autograd", "finite_differences")


@dataclass(frozen=True)
class Comparison:
    """The hand-written gradient of one input against one oracle, at its worst element.

    ``ratio`` is the largest ``|error| / bound`` over the elements (or probes); the comparison passes
    when it is at most 1. ``worst`` is the element (or probe) where that ratio is attained, and
    ``actual``, ``expected``, ``abs_error``, ``max_rel_error`` and ``bound`` are that element's own;
    ``max_abs_error`` is the largest over all elements. ``power``: the smallest relative error the
    bound would have caught at the best element; ``no_power``: at no element was the bound smaller
    than the value itself (the check could not tell right from wrong here, at this size and dtype).
    ``inconclusive``: why a disagreement is not held against the VJP (f is not differentiable at or
    near the point). In exact mode the bound is 0 wherever the arithmetic was exact.
    """

    input_index: int | None
    input_name: str
    oracle: str
    exact: bool
    max_abs_error: float
    max_rel_error: float
    worst: str  # the element, e.g. "(1, 0)", or "probe 2" for a random direction
    actual: float | complex  # complex for a complex input's element
    expected: float | complex
    bound: float
    ratio: float
    abs_error: float = 0.0
    power: float = math.inf
    no_power: bool = False
    inconclusive: str | None = None

    @property
    def ok(self) -> bool:
        return self.ratio <= 1.0 or self.inconclusive is not None

    @property
    def where(self) -> str:
        return f"input {self.input_index} ({self.input_name})" if self.input_index is not None else self.input_name

    def describe(self) -> str:
        mode = "exact arithmetic, bit for bit" if self.exact and self.bound == 0 else f"bound {self.bound:.3g}"
        return (
            f"{self.where} vs {self.oracle}: worst at {self.worst}: "
            f"got {self.actual!r}, expected {self.expected!r}; abs error {self.abs_error:.3g}, "
            f"rel error {self.max_rel_error:.3g}, {mode}, error/bound {_ratio_text(self.ratio)} "
            f"(max abs error over all elements {self.max_abs_error:.3g})"
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
    warnings: list[Problem] = field(default_factory=list)  # raw-contract deviations the engine repairs
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
        return {f.input_name for f in self.failures if f.input_name is not None and f.input_index is not None}

    @property
    def overflowed(self) -> bool:
        """Only overflow was found: f or the VJP left the dtype's range at these inputs (not a wrong gradient)."""
        return bool(self.problems) and all(p.check == "overflow" for p in self.problems) and all(c.ok for c in self.comparisons)

    @property
    def inconclusive(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.inconclusive is not None and c.ratio > 1]

    @property
    def powerless(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.no_power]

    def worst_ratio(self, oracle: str) -> float:
        """The largest error/bound against ``oracle`` (0 when it made no comparison)."""
        return max((c.ratio for c in self.comparisons if c.oracle == oracle and c.inconclusive is None), default=0.0)

    def __str__(self) -> str:
        shapes = ", ".join(f"{n} {tuple(s)}" for n, s in zip(self.input_names, self.shapes))
        head = (
            f"{self.function}: {'ok' if self.ok else 'FAILED'} on {self.dtype} {self.device}"
            f"{' (exact mode)' if self.exact else ''}; inputs {shapes}"
        )
        lines = [head]
        lines += [f"  FAIL {f.describe()}" for f in self.failures]
        lines += [f"  warning: {w.describe()} (strict=True makes this a failure)" for w in self.warnings]
        if self.ok:
            for oracle in ORACLES:
                mine = [c for c in self.comparisons if c.oracle == oracle]
                if mine:
                    power = min(c.power for c in mine)
                    lines.append(f"  worst error/bound vs {oracle}: {_ratio_text(self.worst_ratio(oracle))}; "
                                 f"would catch a relative error of {power:.2g}" if math.isfinite(power) else
                                 f"  worst error/bound vs {oracle}: {_ratio_text(self.worst_ratio(oracle))}")
        lines += [f"  inconclusive: {c.where} vs {c.oracle}: {c.inconclusive}" for c in self.inconclusive]
        lines += [f"  no power: {c.where} vs {c.oracle}: the error bound is as large as the value itself "
                  f"at this size and dtype" for c in self.powerless]
        lines += [f"  note: {note}" for note in self.notes]
        if not self.ok and self.reproducer:
            lines += ["  replay:", *("    " + line for line in self.reproducer.splitlines())]
        return "\n".join(lines)


def _ratio_text(ratio: float) -> str:
    return "inf" if math.isinf(ratio) else ("nan" if math.isnan(ratio) else f"{ratio:.3g}")
