"""Sensitivity: the smallest relative error in a gradient that each checker catches, per dtype.

For every dtype, rule (mm, linear, linear_regression) and seed, each input's gradient in turn is
scaled by (1 + ε) on a grid of ε; a checker "catches ε" when it rejects every one of those perturbed
VJPs. Printed beside gradcheck's threshold: torch.autograd.gradcheck's on the same perturbed
functions (wrapped in an autograd.Function, default tolerances), whether each passes the correct,
unperturbed VJPs, and the ratio of the two thresholds.

A second table: the power of a default check on a correct n×n mm (n = 4 … 256), the smallest
relative error caught in every input, in float arithmetic and, for the 16-bit dtypes, in exact mode
(integer operands in {−1, 0, 1}: every partial sum is an integer the dtype holds, so any difference
at all is a bug).

    python benches/sensitivity.py [--seeds N] [--sizes 4,16,64,256]
"""

from __future__ import annotations

import argparse
import math
import warnings

import torch

import gradcheck
from gradcheck.rules import rule_named
from gradcheck.sensitivity import as_function, perturbed_vjp, seeded_operands

EPSILONS = [10 ** (-e / 2) for e in range(26, 0, -1)]  # 1e-13 … 10^-0.5
TARGETS = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}
CASES = {  # rule: operand shapes
    "mm": [(4, 4), (4, 4)],
    "linear": [(4, 4), (3, 4), (3,)],
    "linear_regression": [(8, 3), (3, 1), (1,), (8, 1)],
}


def gradcheck_rejects(rule, vjp, inputs) -> bool:
    return not gradcheck.check_vjp(rule.forward, vjp, inputs, **rule.check_options()).ok


def torch_rejects(rule, vjp, inputs) -> bool:
    leaves = tuple(t.clone().requires_grad_() for t in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return not torch.autograd.gradcheck(as_function(rule.forward, vjp).apply, leaves, raise_exception=False)
        except Exception:  # noqa: BLE001 - an error counts as a rejection
            return True


def threshold(rejects, name, dtype, seeds) -> tuple[float, bool]:
    """(smallest ε on the grid caught in every case, whether the correct VJPs all pass)."""
    rule = rule_named(name)
    examples = [seeded_operands(CASES[name], dtype, seed) for seed in range(seeds)]
    clean = not any(rejects(rule, rule.vjp, inputs) for inputs in examples)
    for epsilon in EPSILONS:
        if all(rejects(rule, perturbed_vjp(rule.vjp, i, epsilon), inputs) for inputs in examples for i in range(len(inputs))):
            return epsilon, clean
    return math.inf, clean


def integer_operands(n: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randint(-1, 2, (n, n), generator=g).to(dtype) for _ in range(2))


def mm_power(n: int, dtype: torch.dtype, seeds: int, exact: bool) -> tuple[float, bool]:
    """Smallest ε caught in both inputs of a default check of n×n mm, and whether correct passes."""
    rule = rule_named("mm")
    examples = [(integer_operands if exact else lambda n_, d, s: seeded_operands([(n_, n_)] * 2, d, s))(n, dtype, seed)
                for seed in range(seeds)]
    clean = all(gradcheck.check_vjp(rule.forward, rule.vjp, x, exact=exact).ok for x in examples)
    for epsilon in EPSILONS:
        if all(not gradcheck.check_vjp(rule.forward, perturbed_vjp(rule.vjp, i, epsilon), x, exact=exact).ok
               for x in examples for i in range(2)):
            return epsilon, clean
    return math.inf, clean


def _cell(epsilon: float, clean: bool) -> str:
    return f"{epsilon:.1e}" if clean else "rejects correct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--sizes", default="4,16,64,256")
    parser.add_argument("--only-power", action="store_true", help="print only the n×n mm power table")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    print("power of a default check on a correct n×n mm: smallest relative error caught in both inputs "
          f"of {min(args.seeds, 2)} seeded examples (target in brackets)")
    print(f"{'dtype':9} {'target':>7}  " + "  ".join(f"{'n=' + str(n):>10}" for n in sizes) + "   exact mode: " +
          "  ".join(f"{'n=' + str(n):>10}" for n in sizes))
    for dtype, target in TARGETS.items():
        cells = [_cell(*mm_power(n, dtype, min(args.seeds, 2), exact=False)) for n in sizes]
        exact_cells = [_cell(*mm_power(n, dtype, min(args.seeds, 2), exact=True)) for n in sizes]
        print(f"{str(dtype).removeprefix('torch.'):9} {target:7.0e}  " + "  ".join(f"{c:>10}" for c in cells) + "                " +
              "  ".join(f"{c:>10}" for c in exact_cells))
    if args.only_power:
        return
    print()
    print(f"smallest relative error caught in every input of {args.seeds} seeded examples; torch {torch.__version__}")
    header = f"{'dtype':9} {'target':>7}  {'rule':18} {'shapes':28} {'gradcheck':>15} {'torch.autograd.gradcheck':>25} {'torch/ours':>10}"
    print(header)
    print("-" * len(header))
    for dtype, target in TARGETS.items():
        for name, shapes in CASES.items():
            ours = threshold(gradcheck_rejects, name, dtype, args.seeds)
            theirs = threshold(torch_rejects, name, dtype, args.seeds)
            ratio = f"{theirs[0] / ours[0]:.3g}" if ours[1] and theirs[1] else "-"
            print(f"{str(dtype).removeprefix('torch.'):9} {target:7.0e}  {name:18} {str(shapes):28} "
                  f"{_cell(*ours):>15} {_cell(*theirs):>25} {ratio:>10}")
    print("'rejects correct': the unperturbed, correct VJP already fails that checker, so its threshold means nothing.")


if __name__ == "__main__":
    main()
