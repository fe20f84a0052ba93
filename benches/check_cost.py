"""Cost of a check: check_vjp per example, as a ratio to the anchor — one reverse-mode autograd VJP
of the same function on the same inputs, timed in the same process — beside torch.autograd.gradcheck.

    python benches/check_cost.py [--repeat N]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

import gradcheck
from gradcheck.oracles import autograd_vjp
from gradcheck.rules import rule_named
from gradcheck.sensitivity import as_function, seeded_operands

CASES = {
    "mm": [(4, 4), (4, 4)],
    "mm (64×64, probes)": [(64, 64), (64, 64)],
    "linear": [(8, 4), (3, 4), (3,)],
    "linear_regression": [(32, 1), (1, 1), (1, 1), (32, 1)],
}


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, best of {args.repeat}; times relative to one autograd VJP (the anchor)")
    print(f"{'case':22} {'anchor (µs)':>12} {'check_vjp ×':>12} {'torch gradcheck ×':>18}")
    for label, shapes in CASES.items():
        rule = rule_named(label.split(" ")[0])
        inputs = seeded_operands(shapes, torch.float64, 0)
        G = torch.randn_like(rule.forward(*inputs))
        anchor = best_of(args.repeat, lambda: autograd_vjp(rule.forward, inputs, G))
        ours = best_of(args.repeat, lambda: gradcheck.check_vjp(rule.forward, rule.vjp, inputs, **rule.check_options()))
        leaves = tuple(t.clone().requires_grad_() for t in inputs)
        function = as_function(rule.forward, rule.vjp).apply
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = best_of(args.repeat, lambda: torch.autograd.gradcheck(function, leaves))
        print(f"{label:22} {anchor * 1e6:12.0f} {ours / anchor:12.1f} {theirs / anchor:18.1f}")


if __name__ == "__main__":
    main()
