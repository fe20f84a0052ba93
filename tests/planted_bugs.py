"""A zoo of wrong VJPs, each a mistake people make when deriving gradients by hand.

Each ``Bug`` names the rule it corrupts, the input whose gradient it gets wrong, and when it shows
(some bugs are wrong only when a size is 1, or 0, or an operand is non-contiguous); the tests run
``verify`` with the rule's own strategy and assert the bug is caught and the report names that input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from gradcheck import rules as R
from gradcheck import strategies as S
from gradcheck.rules import unbroadcast
from gradcheck.sensitivity import perturbed_vjp

# The zoo's bugs are wrong at every size: drawn within side 8 (the tiled bug below is the size bug),
# so that finding and shrinking them stays cheap under every profile.
ZOO_MAX_SIDE = 8
# Square operands: where a transpose is missing, other shapes make the backward raise instead.
_n = S.sides(max_side=ZOO_MAX_SIDE)
SQUARE_SHAPES = {
    "mm": _n.map(lambda n: ((n, n), (n, n))),
    "bmm": st.tuples(_n, _n).map(lambda bn: ((bn[0], bn[1], bn[1]), (bn[0], bn[1], bn[1]))),
    "mv": _n.map(lambda n: ((n, n), (n,))),
    "outer": _n.map(lambda n: ((n,), (n,))),
    "linear": st.tuples(_n, _n).map(lambda rn: ((rn[0], rn[1]), (rn[1], rn[1]), (rn[1],))),
}


@dataclass(frozen=True)
class Bug:
    name: str
    rule: str
    wrong_input: str
    vjp: Callable
    dtype: torch.dtype = torch.float64
    exact: bool = False
    square: bool = False

    def operands(self) -> st.SearchStrategy:
        if self.square:
            return S.operands(SQUARE_SHAPES[self.rule], dtype=self.dtype, device="cpu", exact=self.exact)
        return R.rule_named(self.rule).operands(dtype=self.dtype, device="cpu", exact=self.exact, max_side=ZOO_MAX_SIDE)

    @property
    def id(self) -> str:
        return self.name


def replace(rule_vjp: Callable, index: int, wrong: Callable) -> Callable:
    """The rule's VJP with gradient ``index`` replaced by ``wrong(*inputs, G, correct_grads)``."""

    def vjp(*args):
        grads = list(rule_vjp(*args))
        grads[index] = wrong(*args, grads)
        return tuple(grads)

    return vjp


def _rows(x: torch.Tensor) -> int:
    return math.prod(x.shape[:-1])


def _row_major(t: torch.Tensor) -> torch.Tensor:
    """Read t's storage as if it were contiguous: what a stride-ignoring backward does."""
    if 0 in t.stride():
        return t
    strides, step = [], 1
    for size in reversed(t.shape):
        strides.insert(0, step)
        step *= max(size, 1)
    return torch.as_strided(t, t.shape, strides, t.storage_offset())


BUGS: tuple[Bug, ...] = (
    Bug("mm: missing transpose, dA = G·B", "mm", "A", replace(R.mm_vjp, 0, lambda A, B, G, g: G @ B), square=True),
    Bug("mm: operand order, dA = Bᵀ·G", "mm", "A", replace(R.mm_vjp, 0, lambda A, B, G, g: B.mT @ G), square=True),
    Bug("bmm: transposed result, dB = (Aᵀ·G)ᵀ", "bmm", "B", replace(R.bmm_vjp, 1, lambda A, B, G, g: (A.mT @ G).mT), square=True),
    Bug("mv: dM = v·Gᵀ, the outer product transposed", "mv", "M", replace(R.mv_vjp, 0, lambda M, v, G, g: torch.outer(v, G)), square=True),
    Bug("outer: db = G·a, missing transpose", "outer", "b", replace(R.outer_vjp, 1, lambda a, b, G, g: G @ a), square=True),
    Bug("linear: bias gradient without its Σ over the batch", "linear", "b", replace(R.linear_vjp, 2, lambda x, W, b, G, g: G)),
    Bug("linear: dW = xᵀ·G, transposed", "linear", "W",
        replace(R.linear_vjp, 1, lambda x, W, b, G, g: x.reshape(_rows(x), W.shape[1]).mT @ G.reshape(_rows(x), W.shape[0])), square=True),
    Bug("linear: db squeezed, wrong only when out = 1", "linear", "b", replace(R.linear_vjp, 2, lambda x, W, b, G, g: g[2].squeeze())),
    Bug("linear: db = G.sum(dim=batch dims), sums everything when there are none", "linear", "b",
        replace(R.linear_vjp, 2, lambda x, W, b, G, g: G.sum(dim=tuple(range(G.ndim - 1))))),
    Bug("addmm: β and α swapped in d input", "addmm", "input",
        replace(R.addmm_vjp, 0, lambda i, A, B, G, g: unbroadcast(R.ADDMM_ALPHA * G, i.shape))),
    Bug("addmm: α forgotten in dA", "addmm", "A", replace(R.addmm_vjp, 1, lambda i, A, B, G, g: G @ B.mT)),
    Bug("linear_regression: db summed over the wrong axis", "linear_regression", "b",
        replace(R.linear_regression_vjp, 2, lambda x, w, b, y, G, g: (x @ w + b - y).mul(G).sum(dim=1))),
    Bug("expand: early return of a scalar zero for empty input", "expand", "b",
        replace(R.expand_vjp, 0, lambda b, like, G, g: G.new_zeros(()) if G.numel() == 0 else g[0])),
    Bug("mul: dA = G⊙A, the operand confused with its partner", "mul", "A",
        replace(R.mul_vjp, 0, lambda A, B, G, g: unbroadcast(G * A, A.shape))),
    Bug("mean: missing 1/n", "mean", "A", replace(R.mean_vjp, 0, lambda A, G, g: G.unsqueeze(-1).expand_as(A))),
    Bug("sum: cotangent ignored, dA = 1", "sum", "A", replace(R.sum_vjp, 0, lambda A, G, g: torch.ones_like(A))),
    Bug("dot: cotangent ignored, da = b", "dot", "a", replace(R.dot_vjp, 0, lambda a, b, G, g: b.clone())),
    Bug("squared_error: factor 2 from forgetting the ½", "squared_error", "y_pred",
        replace(R.squared_error_vjp, 0, lambda yp, y, G, g: 2 * g[0])),
    Bug("linear_regression: dy with the wrong sign", "linear_regression", "y",
        replace(R.linear_regression_vjp, 3, lambda x, w, b, y, G, g: -g[3])),
    Bug("linear_regression: spurious weight-decay term in dw", "linear_regression", "w",
        replace(R.linear_regression_vjp, 1, lambda x, w, b, y, G, g: g[1] + w * G)),
    Bug("matmul: broadcast batch dimensions not summed in dB", "matmul", "B",
        replace(R.matmul_vjp, 1, lambda A, B, G, g: (A.unsqueeze(0) if A.ndim == 1 else A).mT
                @ (G.unsqueeze(-2) if A.ndim == 1 else G) if B.ndim > 1 else g[1])),
    Bug("mm: backward ignores strides (wrong only for non-contiguous B)", "mm", "A",
        replace(R.mm_vjp, 0, lambda A, B, G, g: G @ _row_major(B).mT)),
    Bug("mm: gradient returned in float64 for lower-precision input", "mm", "B",
        replace(R.mm_vjp, 1, lambda A, B, G, g: g[1].double()), dtype=torch.float32),
    Bug("mm: relative error 1e-6 in float64", "mm", "A", perturbed_vjp(R.mm_vjp, 0, 1e-6)),
    Bug("mm: relative error 1e-9 in float64", "mm", "A", perturbed_vjp(R.mm_vjp, 0, 1e-9)),
    Bug("mm: relative error 1e-4 in float32", "mm", "B", perturbed_vjp(R.mm_vjp, 1, 1e-4), dtype=torch.float32),
    Bug("mm: relative error 1e-2 in float16", "mm", "A", perturbed_vjp(R.mm_vjp, 0, 1e-2), dtype=torch.float16),
    Bug("mm: relative error 5e-2 in bfloat16", "mm", "B", perturbed_vjp(R.mm_vjp, 1, 5e-2), dtype=torch.bfloat16),
    Bug("mm: one ulp off, visible only to exact arithmetic", "mm", "A",
        replace(R.mm_vjp, 0, lambda A, B, G, g: torch.nextafter(g[0], torch.full_like(g[0], torch.inf))), exact=True),
)


# ---- a bug that lives past the small sizes -------------------------------------------------------

TILE = 16


def _tile(t: torch.Tensor, dim: int, number: int, width: int) -> torch.Tensor:
    """Tile ``number`` of ``t`` along ``dim`` — with the slip: it starts at the tile's number, where its first
    index (``number * TILE``) belongs. Tile 0 is right, so everything is right up to side 16."""
    return t.narrow(dim, number, width)


def _tiled_matmul(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """X·Y as a blocked kernel computes it: tiles of ``TILE`` over the output's columns and over the
    reduction, Y's tiles cut by ``_tile``."""
    out = X.new_zeros(X.shape[0], Y.shape[1])
    for col_number, col in enumerate(range(0, Y.shape[1], TILE)):
        col_width = min(TILE, Y.shape[1] - col)
        for red_number, red in enumerate(range(0, X.shape[1], TILE)):
            red_width = min(TILE, X.shape[1] - red)
            Y_tile = _tile(_tile(Y, 0, red_number, red_width), 1, col_number, col_width)
            out[:, col:col + col_width] += X[:, red:red + red_width] @ Y_tile
    return out


def tiled_mm_vjp(A: torch.Tensor, B: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mm's rule through the tiled kernel: dA = G·Bᵀ, dB = Aᵀ·G; wrong as soon as any of m, k, p passes 16."""
    return _tiled_matmul(G, B.mT), _tiled_matmul(A.mT, G)


# Not in BUGS: the zoo runs at the default (small) sizes, where this bug cannot show; its test runs it
# under the gradcheck-ci profile, whose sizes reach 64.
TILED_BUG = Bug("mm: tiled backward offsets the second tile by its number, wrong only past side 16", "mm", "A",
                tiled_mm_vjp)
