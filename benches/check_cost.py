"""Cost of a check on a correct n×n mm VJP with default options, as ratios to the anchor — one
forward + backward (autograd) of the same function on the same inputs, timed in the same process —
beside ``torch.autograd.gradcheck(fast_mode=True)``; and the extra peak memory of a check as a multiple
of the inputs' bytes (in a fresh subprocess: the rise of peak RSS during the check).

    python benches/check_cost.py [--sizes 16,64,256,512,1024] [--dtypes float64,float32] [--repeat N] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings

import torch

import gradcheck
from gradcheck.rules import mm_vjp
from gradcheck.sensitivity import as_function, seeded_operands

DTYPES = {"float64": torch.float64, "float32": torch.float32}

_MEMORY_PROBE = """
import json, sys, torch
import gradcheck
from gradcheck.rules import mm_vjp
from gradcheck.sensitivity import seeded_operands

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

torch.set_num_threads(1)
n, dtype = int(sys.argv[1]), getattr(torch, sys.argv[2])
A, B = seeded_operands([(n, n), (n, n)], dtype, 0)
gradcheck.check_vjp(torch.mm, mm_vjp, seeded_operands([(4, 4), (4, 4)], dtype, 1))  # warm: imports, first-op costs
leaves = [t.clone().requires_grad_() for t in (A, B)]
torch.mm(*leaves).backward(torch.randn(n, n, dtype=dtype))
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
assert gradcheck.check_vjp(torch.mm, mm_vjp, (A, B)).ok
print(json.dumps(status("VmHWM") - before))
"""


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def extra_peak(n: int, dtype: str) -> int:
    """Bytes by which a check raises the process's peak RSS (Linux: /proc/self/clear_refs resets the peak)."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(n), dtype], capture_output=True, text=True, check=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="16,64,256,512,1024")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, best of {args.repeat}; a correct n×n mm VJP, default options; "
          "times relative to one forward+backward (the anchor)")
    header = (f"{'dtype':8} {'n':>5} {'anchor (ms)':>12} {'check_vjp ×':>12} {'torch fast ×':>13} "
              f"{'ours / torch fast':>18} {'extra peak memory (× inputs)':>29}")
    print(header)
    print("-" * len(header))
    for dtype_name in args.dtypes.split(","):
        dtype = DTYPES[dtype_name]
        for n in (int(s) for s in args.sizes.split(",")):
            A, B = seeded_operands([(n, n), (n, n)], dtype, 0)
            G = torch.randn(n, n, dtype=dtype)
            leaves = tuple(t.clone().requires_grad_() for t in (A, B))

            def anchor(leaves: tuple = leaves, G: torch.Tensor = G) -> None:
                torch.autograd.grad(torch.mm(*leaves), leaves, G)

            base = best_of(args.repeat, anchor)
            ours = best_of(args.repeat, lambda A=A, B=B: gradcheck.check_vjp(torch.mm, mm_vjp, (A, B)))
            function = as_function(torch.mm, mm_vjp).apply
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = best_of(args.repeat, lambda function=function, leaves=leaves: torch.autograd.gradcheck(
                    function, leaves, fast_mode=True, raise_exception=False))
            memory = "-"
            if not args.no_memory:
                extra = extra_peak(n, dtype_name)
                inputs = 2 * n * n * A.element_size()
                memory = f"{max(extra, 0) / 2**20:.1f} MiB = {max(extra, 0) / inputs:.1f}×"
            print(f"{dtype_name:8} {n:5d} {base * 1e3:12.2f} {ours / base:12.1f} {theirs / base:13.1f} "
                  f"{ours / theirs:18.2f} {memory:>29}")


if __name__ == "__main__":
    main()
