"""The reference table: each rule is a forward, its hand-derived vector-Jacobian product and
Jacobian-vector product, and their formulas.

Notation: ``G`` is the upstream gradient (cotangent) of the output, shaped like the output; a rule's
``vjp(*inputs, G)`` returns one gradient per input, shaped exactly like that input. Everything
follows from one identity: for ``C = A·B``, ``⟨G, dC⟩ = ⟨G, dA·B⟩ + ⟨G, A·dB⟩ = ⟨G·Bᵀ, dA⟩ + ⟨Aᵀ·G, dB⟩``,
so ``dA = G·Bᵀ`` and ``dB = Aᵀ·G``. Where an operand was broadcast, its gradient is the sum of the
gradients of all its copies — ``unbroadcast`` — the step the autograd engine would otherwise do
silently for a wrong-shaped gradient.

Forward mode is the same identity read left to right: a rule's ``jvp(*inputs, *tangents)`` returns
the output tangent for one tangent per input, shaped like the output — the differential itself,
``dC = dA·B + A·dB`` (the product rule). A tangent has its primal's shape, so forward mode needs no
``unbroadcast``: broadcasting in the formula does what the forward did.

Complex inputs (the matmul family) follow PyTorch's convention: a cotangent ``G`` stands for the real
loss ``Re⟨G, C⟩ = Re Σ conj(G)·C``, and a gradient ``v`` is what gives ``dL = Re⟨v, dx⟩``. The same
identity, with ``⟨X, Y⟩ = Σ conj(X)·Y``, gives ``⟨G, dA·B⟩ = ⟨G·Bᴴ, dA⟩``: ``dA = G·Bᴴ`` and
``dB = Aᴴ·G``, the conjugate transpose where the real rule has the transpose (``B.mH`` is ``B.mT`` for a
real tensor, and ``conj()`` a no-op, so one function serves both). A product's factors are conjugated;
real coefficients (``addmm``'s α, β) are not. The forward-mode rules need nothing new: ``dC = dA·B +
A·dB`` is holomorphic.

A rule carries no error analysis: the check derives the bound from the computation itself
(``gradcheck.rounding``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st

from gradcheck import strategies as S
from gradcheck.tolerance import COMPLEX_DTYPES, FLOATING_DTYPES

Tensor = torch.Tensor
Grads = tuple[Tensor | None, ...]


@dataclass(frozen=True)
class Rule:
    name: str
    forward: Callable[..., Tensor]
    vjp: Callable[..., Grads]
    formula: str
    shapes: str
    input_names: tuple[str, ...]
    operands: Callable[..., st.SearchStrategy[tuple[Tensor, ...]]]
    jvp: Callable[..., Tensor]
    jvp_formula: str
    complex_formula: str | None = None  # reverse mode on complex inputs (PyTorch's convention); None: real only

    @property
    def dtypes(self) -> tuple[torch.dtype, ...]:
        """The dtypes the rule is verified in: the four real ones, and complex128 and complex64 where it
        has a complex formula."""
        return FLOATING_DTYPES + (COMPLEX_DTYPES if self.complex_formula is not None else ())

    def __call__(self, *inputs: Tensor) -> Tensor:
        return self.forward(*inputs)

    def check_options(self) -> dict[str, Any]:
        """How ``check_vjp`` names this rule's inputs in its reports (nothing about error bounds)."""
        return {"names": self.input_names, "label": self.name}


def unbroadcast(grad: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
    """Sum ``grad`` back to ``shape``: over the leading dimensions broadcasting added, and over every
    dimension where ``shape`` has size 1. (``sum(dim=())`` would sum everything, hence the guards.)"""
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(dim=tuple(range(extra)))
    stretched = tuple(i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(dim=stretched, keepdim=True)
    return grad


# ---- matrix products ------------------------------------------------------------------------------
# Each JVP is the product rule: a product is bilinear, so its differential is the sum of the products
# with one factor replaced by its tangent.

def mm_vjp(A: Tensor, B: Tensor, G: Tensor) -> Grads:
    """C = A·B: dA = G·Bᵀ, dB = Aᵀ·G (complex: G·Bᴴ, Aᴴ·G)."""
    return G @ B.mH, A.mH @ G


def mm_jvp(A: Tensor, B: Tensor, dA: Tensor, dB: Tensor) -> Tensor:
    """C = A·B: dC = dA·B + A·dB."""
    return dA @ B + A @ dB


def bmm_vjp(A: Tensor, B: Tensor, G: Tensor) -> Grads:
    """Per batch element, as mm: dA[i] = G[i]·B[i]ᵀ, dB[i] = A[i]ᵀ·G[i] (complex: ᴴ for ᵀ)."""
    return G @ B.mH, A.mH @ G


def bmm_jvp(A: Tensor, B: Tensor, dA: Tensor, dB: Tensor) -> Tensor:
    """Per batch element, as mm: dC[i] = dA[i]·B[i] + A[i]·dB[i]."""
    return torch.bmm(dA, B) + torch.bmm(A, dB)


def matmul_vjp(A: Tensor, B: Tensor, G: Tensor) -> Grads:
    """torch.matmul: a 1-D A is a row (1, n), a 1-D B a column (n, 1); G gets the removed axes back.
    Batch dimensions broadcast, so each gradient is summed back over its operand's broadcast copies.
    Complex: the conjugate transposes, as mm."""
    a = A.unsqueeze(0) if A.ndim == 1 else A
    b = B.unsqueeze(-1) if B.ndim == 1 else B
    g = G.unsqueeze(-1) if B.ndim == 1 else G
    g = g.unsqueeze(-2) if A.ndim == 1 else g
    dA = unbroadcast(g @ b.mH, a.shape).reshape(A.shape)
    dB = unbroadcast(a.mH @ g, b.shape).reshape(B.shape)
    return dA, dB


def matmul_jvp(A: Tensor, B: Tensor, dA: Tensor, dB: Tensor) -> Tensor:
    """dC = dA·B + A·dB, each product promoted and broadcast exactly as the forward's (a tangent has
    its primal's shape), so no reduction is needed in forward mode."""
    return torch.matmul(dA, B) + torch.matmul(A, dB)


def mv_vjp(M: Tensor, v: Tensor, G: Tensor) -> Grads:
    """y = M·v: dM = G·vᵀ (an outer product), dv = Mᵀ·G (complex: G·vᴴ, Mᴴ·G)."""
    return torch.outer(G, v.conj()), M.mH @ G


def mv_jvp(M: Tensor, v: Tensor, dM: Tensor, dv: Tensor) -> Tensor:
    """y = M·v: dy = dM·v + M·dv."""
    return torch.mv(dM, v) + torch.mv(M, dv)


def dot_vjp(a: Tensor, b: Tensor, G: Tensor) -> Grads:
    """s = aᵀb (a scalar; torch.dot conjugates neither factor): da = G·b, db = G·a (complex: G·b̄, G·ā)."""
    return G * b.conj(), G * a.conj()


def dot_jvp(a: Tensor, b: Tensor, da: Tensor, db: Tensor) -> Tensor:
    """s = aᵀb: ds = daᵀ·b + aᵀ·db."""
    return torch.dot(da, b) + torch.dot(a, db)


def outer_vjp(a: Tensor, b: Tensor, G: Tensor) -> Grads:
    """C = a·bᵀ: da = G·b, db = Gᵀ·a (complex: G·b̄, Gᵀ·ā)."""
    return G @ b.conj(), G.mT @ a.conj()


def outer_jvp(a: Tensor, b: Tensor, da: Tensor, db: Tensor) -> Tensor:
    """C = a·bᵀ: dC = da·bᵀ + a·dbᵀ."""
    return torch.outer(da, b) + torch.outer(a, db)


def linear_vjp(x: Tensor, W: Tensor, b: Tensor, G: Tensor) -> Grads:
    """y = x·Wᵀ + b over any leading batch dimensions: dx = G·W, dW = Gᵀ·x and db = Σ G, both summed
    over every batch row (the bias was broadcast to each row). Complex: dx = G·W̄, dW = Gᵀ·x̄ (the
    forward transposes W without conjugating it, so the gradient conjugates the other factor only)."""
    rows = math.prod(x.shape[:-1])
    rows_g, rows_x = G.reshape(rows, W.shape[0]), x.reshape(rows, W.shape[1])
    return G @ W.conj(), rows_g.mT @ rows_x.conj(), rows_g.sum(dim=0)


def linear_jvp(x: Tensor, W: Tensor, b: Tensor, dx: Tensor, dW: Tensor, db: Tensor) -> Tensor:
    """y = x·Wᵀ + b: dy = dx·Wᵀ + x·dWᵀ + db, the bias tangent broadcast to every row as b is."""
    return dx @ W.mT + x @ dW.mT + db


ADDMM_BETA, ADDMM_ALPHA = 0.5, -1.5


def addmm(inp: Tensor, m1: Tensor, m2: Tensor) -> Tensor:
    return torch.addmm(inp, m1, m2, beta=ADDMM_BETA, alpha=ADDMM_ALPHA)


def addmm_vjp(inp: Tensor, m1: Tensor, m2: Tensor, G: Tensor) -> Grads:
    """out = β·input + α·m1·m2: d input = Σ_broadcast β·G, dm1 = α·G·m2ᵀ, dm2 = α·m1ᵀ·G (complex: ᴴ for
    ᵀ; α and β are real, else they would be conjugated too)."""
    return unbroadcast(ADDMM_BETA * G, inp.shape), ADDMM_ALPHA * (G @ m2.mH), ADDMM_ALPHA * (m1.mH @ G)


def addmm_jvp(inp: Tensor, m1: Tensor, m2: Tensor, dinp: Tensor, dm1: Tensor, dm2: Tensor) -> Tensor:
    """out = β·input + α·m1·m2: d out = β·d input (broadcast as input is) + α·(dm1·m2 + m1·dm2)."""
    return ADDMM_BETA * dinp + ADDMM_ALPHA * (dm1 @ m2 + m1 @ dm2)


# ---- broadcasting, elementwise and reductions -----------------------------------------------------

def expand(b: Tensor, like: Tensor) -> Tensor:
    return b.expand_as(like)


def expand_vjp(b: Tensor, like: Tensor, G: Tensor) -> Grads:
    """The seed's b.expand_as(y): every copy of b received part of G, so db = Σ G over the expanded
    dimensions. ``like`` only lends its shape: no gradient."""
    return unbroadcast(G, b.shape), None


def expand_jvp(b: Tensor, like: Tensor, db: Tensor, dlike: Tensor) -> Tensor:
    """Y = b.expand_as(like) is linear in b: dY = db.expand_as(like); like's tangent does not enter."""
    return db.expand_as(like)


def mul_vjp(A: Tensor, B: Tensor, G: Tensor) -> Grads:
    """C = A ⊙ B (broadcasting): dA = Σ_broadcast G ⊙ B, dB = Σ_broadcast G ⊙ A."""
    return unbroadcast(G * B, A.shape), unbroadcast(G * A, B.shape)


def mul_jvp(A: Tensor, B: Tensor, dA: Tensor, dB: Tensor) -> Tensor:
    """C = A ⊙ B: dC = dA ⊙ B + A ⊙ dB, broadcast as the forward (no reduction in forward mode)."""
    return dA * B + A * dB


def sum_last(A: Tensor) -> Tensor:
    return A.sum(dim=-1)


def sum_vjp(A: Tensor, G: Tensor) -> Grads:
    """s = Σ_j A[..., j]: each summand gets G unchanged, dA = G broadcast along the summed axis."""
    return (G.unsqueeze(-1).expand_as(A),)


def sum_jvp(A: Tensor, dA: Tensor) -> Tensor:
    """s = Σ_j A[..., j] is linear: ds = Σ_j dA[..., j]."""
    return dA.sum(dim=-1)


def mean_last(A: Tensor) -> Tensor:
    return A.mean(dim=-1)


def mean_vjp(A: Tensor, G: Tensor) -> Grads:
    """s = (1/n)·Σ_j A[..., j]: dA = G/n broadcast along the averaged axis."""
    return ((G / A.shape[-1]).unsqueeze(-1).expand_as(A),)


def mean_jvp(A: Tensor, dA: Tensor) -> Tensor:
    """s = (1/n)·Σ_j A[..., j] is linear: ds = (1/n)·Σ_j dA[..., j]."""
    return dA.mean(dim=-1)


# ---- losses and the seed's linear regression ------------------------------------------------------

def squared_error(y_pred: Tensor, y: Tensor) -> Tensor:
    return 0.5 * ((y_pred - y) ** 2).sum()


def squared_error_vjp(y_pred: Tensor, y: Tensor, G: Tensor) -> Grads:
    """L = ½·Σ(ŷ − y)²: ∂L/∂ŷ = ŷ − y (the ½ cancels the 2), ∂L/∂y = −(ŷ − y); times the scalar G."""
    residual = (y_pred - y) * G
    return residual, -residual


def squared_error_jvp(y_pred: Tensor, y: Tensor, dy_pred: Tensor, dy: Tensor) -> Tensor:
    """L = ½·Σ(ŷ − y)²: dL = Σ (ŷ − y) ⊙ (dŷ − dy) (the ½ cancels the 2 of the square)."""
    return ((y_pred - y) * (dy_pred - dy)).sum()


def linear_regression(x: Tensor, w: Tensor, b: Tensor, y: Tensor) -> Tensor:
    y_pred = x @ w + b.expand(x.shape[0], w.shape[1])
    return 0.5 * ((y_pred - y) ** 2).sum()


def linear_regression_vjp(x: Tensor, w: Tensor, b: Tensor, y: Tensor, G: Tensor) -> Grads:
    """The seed's backward, by the chain rule through y_pred = x·w + b and L = ½Σ(y_pred − y)²:
    dy_pred = (y_pred − y)·G; then mm's rule gives dw = xᵀ·dy_pred and dx = dy_pred·wᵀ; the expanded
    bias gives db = Σ dy_pred over the batch; and dy = −dy_pred."""
    dy_pred = (x @ w + b - y) * G
    return dy_pred @ w.mT, x.mT @ dy_pred, unbroadcast(dy_pred, b.shape), -dy_pred


def linear_regression_jvp(x: Tensor, w: Tensor, b: Tensor, y: Tensor, dx: Tensor, dw: Tensor, db: Tensor,
                          dy: Tensor) -> Tensor:
    """With r = x·w + b − y: dr = dx·w + x·dw + db − dy (mm's product rule, the bias broadcast), and
    L = ½·Σ r² gives dL = Σ r ⊙ dr."""
    residual = x @ w + b - y
    return (residual * (dx @ w + x @ dw + db - dy)).sum()


def linear_regression_loss(x: Tensor, y: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """The seed's loss ½·Σ(x·w + b − y)² in the seed's argument order (x, y, w, b)."""
    return linear_regression(x, w, b, y)


def hessian_vector_product(x: Tensor, y: Tensor, w: Tensor, b: Tensor, v_w: Tensor, v_b: Tensor) -> tuple[Tensor, Tensor]:
    """The seed's second-order rule. L = ½·Σ r², r = x·w + b − y, is quadratic in (w, b): its gradient
    (dw = xᵀ·r, db = Σ r) is linear, so H·v is the gradient's change along v, with dr = x·v_w + v_b:
    H·v = (xᵀ·dr, Σ dr). For the seed's x (n, 1) and scalar w, b this is H = [[Σx², Σx], [Σx, n]]:
    (Σx²·v_w + Σx·v_b, Σx·v_w + n·v_b). y does not enter: the Hessian of a quadratic is constant."""
    dr = x @ v_w + v_b
    return x.mT @ dr, unbroadcast(dr, b.shape)


RULES: tuple[Rule, ...] = (
    Rule("mm", torch.mm, mm_vjp, "C = A·B;  dA = G·Bᵀ,  dB = Aᵀ·G", "A (m,k), B (k,p), G (m,p)",
         ("A", "B"), S.mm_operands,
         jvp=mm_jvp, jvp_formula="dC = dA·B + A·dB", complex_formula="dA = G·Bᴴ,  dB = Aᴴ·G"),
    Rule("matmul", torch.matmul, matmul_vjp,
         "C = A·B (batched, 1-D promoted);  dA = Σ_bcast G·Bᵀ,  dB = Σ_bcast Aᵀ·G",
         "A (…,m,n) or (n,), B (…,n,p) or (n,), G (…,m,p) less the 1-D axes", ("A", "B"), S.matmul_operands,
         jvp=matmul_jvp, jvp_formula="dC = dA·B + A·dB (promoted and broadcast as the forward)",
         complex_formula="dA = Σ_bcast G·Bᴴ,  dB = Σ_bcast Aᴴ·G"),
    Rule("bmm", torch.bmm, bmm_vjp, "C[i] = A[i]·B[i];  dA[i] = G[i]·B[i]ᵀ,  dB[i] = A[i]ᵀ·G[i]",
         "A (b,m,k), B (b,k,p), G (b,m,p)", ("A", "B"), S.bmm_operands,
         jvp=bmm_jvp, jvp_formula="dC[i] = dA[i]·B[i] + A[i]·dB[i]", complex_formula="dA[i] = G[i]·B[i]ᴴ,  dB[i] = A[i]ᴴ·G[i]"),
    Rule("mv", torch.mv, mv_vjp, "y = M·v;  dM = G·vᵀ,  dv = Mᵀ·G", "M (m,k), v (k,), G (m,)",
         ("M", "v"), S.mv_operands,
         jvp=mv_jvp, jvp_formula="dy = dM·v + M·dv", complex_formula="dM = G·vᴴ,  dv = Mᴴ·G"),
    Rule("dot", torch.dot, dot_vjp, "s = aᵀ·b;  da = G·b,  db = G·a", "a (n,), b (n,), G ()",
         ("a", "b"), S.dot_operands,
         jvp=dot_jvp, jvp_formula="ds = daᵀ·b + aᵀ·db", complex_formula="da = G·b̄,  db = G·ā"),
    Rule("outer", torch.outer, outer_vjp, "C = a·bᵀ;  da = G·b,  db = Gᵀ·a", "a (m,), b (p,), G (m,p)",
         ("a", "b"), S.outer_operands,
         jvp=outer_jvp, jvp_formula="dC = da·bᵀ + a·dbᵀ", complex_formula="da = G·b̄,  db = Gᵀ·ā"),
    Rule("linear", torch.nn.functional.linear, linear_vjp, "y = x·Wᵀ + b;  dx = G·W,  dW = Gᵀ·x,  db = Σ_rows G",
         "x (…,in), W (out,in), b (out,), G (…,out)", ("x", "W", "b"), S.linear_operands,
         jvp=linear_jvp, jvp_formula="dy = dx·Wᵀ + x·dWᵀ + db", complex_formula="dx = G·W̄,  dW = Gᵀ·x̄,  db = Σ_rows G"),
    Rule("addmm", addmm, addmm_vjp,
         f"C = β·I + α·A·B (β={ADDMM_BETA}, α={ADDMM_ALPHA});  dI = Σ_bcast β·G,  dA = α·G·Bᵀ,  dB = α·Aᵀ·G",
         "I broadcastable to (n,p), A (n,k), B (k,p), G (n,p)", ("input", "A", "B"), S.addmm_operands,
         jvp=addmm_jvp, jvp_formula="dC = β·dI + α·(dA·B + A·dB)",
         complex_formula="dI = Σ_bcast β·G,  dA = α·G·Bᴴ,  dB = α·Aᴴ·G  (α, β real)"),
    Rule("expand", expand, expand_vjp, "Y = b.expand_as(like);  db = Σ_expanded G", "b broadcastable to like, G shaped as like",
         ("b", "like"), S.expand_operands,
         jvp=expand_jvp, jvp_formula="dY = db.expand_as(like)  (like lends only its shape)"),
    Rule("mul", torch.mul, mul_vjp, "C = A⊙B (broadcast);  dA = Σ_bcast G⊙B,  dB = Σ_bcast G⊙A",
         "A, B mutually broadcastable, G the broadcast shape", ("A", "B"), S.mul_operands,
         jvp=mul_jvp, jvp_formula="dC = dA⊙B + A⊙dB"),
    Rule("sum", sum_last, sum_vjp, "s = Σ_j A[…,j];  dA = G broadcast along j", "A (…,n), G (…)",
         ("A",), S.sum_operands,
         jvp=sum_jvp, jvp_formula="ds = Σ_j dA[…,j]"),
    Rule("mean", mean_last, mean_vjp, "s = (1/n)·Σ_j A[…,j];  dA = G/n broadcast along j", "A (…,n), n ≥ 1, G (…)",
         ("A",), S.mean_operands,
         jvp=mean_jvp, jvp_formula="ds = (1/n)·Σ_j dA[…,j]"),
    Rule("squared_error", squared_error, squared_error_vjp, "L = ½·Σ(ŷ − y)²;  dŷ = (ŷ − y)·G,  dy = −(ŷ − y)·G",
         "ŷ, y same shape, G ()", ("y_pred", "y"), S.squared_error_operands,
         jvp=squared_error_jvp, jvp_formula="dL = Σ (ŷ − y)⊙(dŷ − dy)"),
    Rule("linear_regression", linear_regression, linear_regression_vjp,
         "L = ½·Σ(x·w + b − y)²;  dy_pred = y_pred − y,  dw = xᵀ·dy_pred,  db = Σ dy_pred,  dx = dy_pred·wᵀ,  dy = −dy_pred",
         "x (n,k), w (k,m), b (m,) or (1,1), y (n,m), G ()", ("x", "w", "b", "y"), S.linreg_operands,
         jvp=linear_regression_jvp,
         jvp_formula="dL = Σ r⊙(dx·w + x·dw + db − dy), r = x·w + b − y;  second order: H·(v_w, v_b) = (xᵀ·dr, Σ dr), "
                     "dr = x·v_w + v_b; for x (n,1): H = [[Σx², Σx], [Σx, n]]"),
)


def rule_named(name: str) -> Rule:
    for rule in RULES:
        if rule.name == name:
            return rule
    raise KeyError(f"no rule named {name!r}; rules: {', '.join(r.name for r in RULES)}")
