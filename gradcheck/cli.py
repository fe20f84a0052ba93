"""``python -m gradcheck`` (or ``gradcheck``): the verification report, the formula table, the seed's experiment.

    gradcheck [--rules R,..] [--device D,..] [--dtype T,..] [--examples N] [--max-side N] [--jobs N]
              [--derandomize] [--json PATH]
    gradcheck formulas [--markdown]
    gradcheck linreg [--seed S] [--lr LR] [--steps N] [--batch-size B] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from tqdm import tqdm

from gradcheck.devices import available_devices
from gradcheck.rules import RULES, Rule
from gradcheck.strategies import MAX_SIDE_ENV, default_max_side
from gradcheck.survey import Row, survey, unsendable
from gradcheck.tolerance import COMPLEX_DTYPES, FLOATING_DTYPES

DTYPES = {str(d).removeprefix("torch."): d for d in (*FLOATING_DTYPES, *COMPLEX_DTYPES)}
# complex64 by default (its rounding is the one to bound); complex128, with its Gaussian-integer exact run,
# on request: each complex dtype adds about a sixth to the run's time.
DEFAULT_DTYPES = [*(str(d).removeprefix("torch.") for d in FLOATING_DTYPES), "complex64"]
DEFAULT_EXAMPLES = 50
Number = TypeVar("Number", int, float)


class _Parser(argparse.ArgumentParser):
    """A wrong option gets one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _choices(kind: str, known: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown {kind} {', '.join(unknown) or repr(text)}; expected a comma-separated list of {', '.join(known)}")
        return names

    parse.__name__ = kind
    return parse


def _positive(kind: type[Number], *, zero: bool = False) -> Callable[[str], Number]:
    """An argparse type: a positive (finite) int or float (or zero, when allowed), with a one-line message otherwise."""
    adjective = "non-negative" if zero else "positive"

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {adjective} {kind.__name__}, got {text!r}") from None
        if not ((0 <= value if zero else 0 < value) and value < float("inf")):
            raise argparse.ArgumentTypeError(f"expected a {adjective} finite {kind.__name__}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


# ---- the verification report ----------------------------------------------------------------------

def _ratio(value: float) -> str:
    return f"{value:.3g}" if value == value else "nan"


def format_rows(rows: Sequence[Row]) -> str:
    header = ("rule", "device", "dtype", "examples", "err/bound autograd", "err/bound FD", "exact", "status")
    cells = [header] + [(r.rule, r.device, r.dtype, str(r.examples), _ratio(r.worst_autograd),
                         _ratio(r.worst_finite_differences), r.exact, r.status) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_verification(argv: Sequence[str], rules: Sequence[Rule]) -> int:
    names = [rule.name for rule in rules]
    parser = _Parser(prog="gradcheck", description="Verify every hand-derived rule against autograd, finite "
                     "differences and exact arithmetic on hypothesis-generated inputs.",
                     epilog="Other commands: 'gradcheck formulas', 'gradcheck linreg' (each has --help).")
    parser.add_argument("--rules", type=_choices("rule", names), default=names, help="comma-separated rule names (default: all)")
    parser.add_argument("--device", type=_choices("device", ["cpu", "cuda"]), default=available_devices(),
                        help="comma-separated devices (default: every available one)")
    parser.add_argument("--dtype", type=_choices("dtype", list(DTYPES)), default=None,
                        help=f"comma-separated dtypes of {', '.join(DTYPES)} (default: {', '.join(DEFAULT_DTYPES)}); "
                             "complex ones for the rules with a complex formula")
    parser.add_argument("--examples", type=_positive(int), default=DEFAULT_EXAMPLES,
                        help=f"hypothesis examples per rule, device and dtype (default {DEFAULT_EXAMPLES})")
    parser.add_argument("--max-side", type=_positive(int, zero=True), default=None, metavar="N",
                        help="largest side of a generated operand; most sides stay at 0-4, some reach N "
                             f"(default: ${MAX_SIDE_ENV}, else 4)")
    parser.add_argument("--jobs", type=_positive(int), default=None, metavar="N",
                        help="run the (rule, device, dtype) rows in N worker processes (default: one per core, "
                             "or 1 when a rule's functions cannot be sent to a worker)")
    parser.add_argument("--derandomize", action="store_true",
                        help="the same examples on every run (hypothesis's derandomize), as the ci profile")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    args = parser.parse_args(argv)
    try:  # the command runs under no test profile: $GRADCHECK_MAX_SIDE, else the strategies' own default
        max_side = default_max_side(profile="default") if args.max_side is None else args.max_side
    except ValueError as exc:
        parser.error(str(exc))
    missing = [d for d in args.device if d not in available_devices()]
    if missing:
        parser.error(f"device {', '.join(missing)} is not available here; available: {', '.join(available_devices())}")

    chosen = [rule for rule in rules if rule.name in args.rules]
    dtypes = [DTYPES[name] for name in args.dtype or DEFAULT_DTYPES]
    skipped = [f"{rule.name} on {str(d).removeprefix('torch.')}" for rule in chosen for d in dtypes if d not in rule.dtypes]
    if len(skipped) == len(chosen) * len(dtypes):
        complex_rules = ", ".join(rule.name for rule in rules if rule.complex_formula is not None)
        parser.error(f"no chosen rule holds for dtype {', '.join(args.dtype)}: complex dtypes go with the rules that "
                     f"have a complex formula ({complex_rules})")
    if args.jobs is None:  # as many workers as cores, rows permitting; in-process when rules cannot travel
        args.jobs = 1 if unsendable(chosen) else max(1, min(os.cpu_count() or 1, len(chosen) * len(dtypes) * len(args.device)))
    problem = unsendable(chosen) if args.jobs > 1 else None
    if problem:
        parser.error(f"--jobs {args.jobs}: {problem}")
    started = time.perf_counter()
    rows = survey(chosen, args.device, dtypes, args.examples,
                  progress=lambda jobs: tqdm(jobs, desc="verifying", unit="run", file=sys.stderr),
                  max_side=max_side, jobs=args.jobs, derandomize=args.derandomize)
    seconds = time.perf_counter() - started
    print(format_rows(rows))
    if skipped and args.dtype:  # asked for by name: say which rows a rule's dtypes left out
        print(f"\nnot run (no complex formula): {', '.join(skipped)}")
    failed = [row for row in rows if row.status != "ok"]
    for row in failed:
        print(f"\n{row.rule} on {row.device} {row.dtype}:\n{row.failure}")
    print(f"\n{len(rows) - len(failed)} of {len(rows)} passed, {sum(r.examples for r in rows)} examples, {seconds:.1f} s")
    if args.json:
        document = {"ok": not failed, "seconds": seconds, "torch": torch.__version__, "max_side": max_side,
                    "rows": [r.as_dict() for r in rows]}
        try:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
        except OSError as exc:
            sys.stderr.write(f"gradcheck: error: cannot write --json {args.json}: {exc.strerror}\n")
            return 2
    return 1 if failed else 0


# ---- the formula reference ------------------------------------------------------------------------

def formula_table(rules: Sequence[Rule] = RULES, *, markdown: bool = False) -> str:
    """The reference table, from the rule table itself (README's copy is tested against this)."""
    if markdown:
        lines = ["| rule | formula (reverse mode) | complex (PyTorch's convention) | forward mode (JVP) | shapes |",
                 "|---|---|---|---|---|"]
        lines += [f"| `{r.name}` | {r.formula} | {r.complex_formula or '—'} | {r.jvp_formula} | {r.shapes} |" for r in rules]
        return "\n".join(lines)
    width = max(len(r.name) for r in rules)
    pad = " " * width
    return "\n".join(f"{r.name.ljust(width)}  {r.formula}\n"
                     + (f"{pad}  complex: {r.complex_formula}\n" if r.complex_formula is not None else "")
                     + f"{pad}  jvp: {r.jvp_formula}\n{pad}  shapes: {r.shapes}" for r in rules)


def run_formulas(argv: Sequence[str]) -> int:
    parser = _Parser(prog="gradcheck formulas", description="Print the reference table of hand-derived gradients.")
    parser.add_argument("--markdown", action="store_true", help="as a Markdown table")
    args = parser.parse_args(argv)
    print(formula_table(markdown=args.markdown))
    return 0


# ---- the seed's experiment ------------------------------------------------------------------------

def run_linreg(argv: Sequence[str]) -> int:
    from gradcheck import linreg  # matplotlib and friends only when asked for

    defaults = linreg.Lesson()
    parser = _Parser(prog="gradcheck linreg", description="The lesson's linear regression, hand-derived vs autograd, and why large learning rates diverge.")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--lr", type=_positive(float), default=defaults.lr)
    parser.add_argument("--steps", type=_positive(int), default=defaults.steps)
    parser.add_argument("--batch-size", type=_positive(int), default=defaults.batch_size)
    parser.add_argument("--out", metavar="DIR", help="write the PNG figures into DIR (needs matplotlib: pip install 'gradcheck[plot]')")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.out:
        try:  # before the experiment runs: matplotlib is the optional extra gradcheck[plot]
            from gradcheck.plot import write_figures
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] != "matplotlib":
                raise
            sys.stderr.write("gradcheck linreg: error: --out draws figures with matplotlib, which is not installed; "
                             "get it with: pip install 'gradcheck[plot]'\n")
            return 2
    result = linreg.analyse(linreg.Lesson(seed=args.seed, lr=args.lr, steps=args.steps, batch_size=args.batch_size))
    figures = []
    if args.out:
        try:
            figures = [str(p) for p in write_figures(result, args.out)]
        except OSError as exc:
            sys.stderr.write(f"gradcheck linreg: error: cannot write figures to {args.out}: {exc.strerror}\n")
            return 2
    document = linreg.public(result) | {"figures": figures}
    if args.json:
        print(json.dumps(document, indent=2, allow_nan=False))
        return 0
    fmt: Callable[[float | None], str] = lambda v: "nan" if v is None else f"{v:.6g}"  # noqa: E731
    print(f"seed {args.seed}, lr {args.lr:g}, {args.steps} steps, batch {args.batch_size}")
    print(f"hand-derived: w = {fmt(document['w'])}, b = {fmt(document['b'])}; autograd: w = {fmt(document['w_autograd'])}, "
          f"b = {fmt(document['b_autograd'])}; largest difference at any step {fmt(document['max_trajectory_diff'])}")
    print(f"final batch loss {fmt(document['final_loss'])}; diverged: {document['diverged']}")
    print(linreg.explanation(result))
    for path in figures:
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None, *, rules: Sequence[Rule] = RULES) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "formulas":
        return run_formulas(argv[1:])
    if argv and argv[0] == "linreg":
        return run_linreg(argv[1:])
    if argv and argv[0] == "verify":
        argv = argv[1:]
    return run_verification(argv, rules)
