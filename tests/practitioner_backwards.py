"""Correct hand-written backwards, written the way practitioners write them, plus planted bugs.

Each ``Backward`` is one layer or loss: a plain forward, the hand-derived VJP, the same math as a
``torch.autograd.Function`` (saving outputs for its backward where a practitioner would), an input
maker, and at least two wrong VJPs, each a realistic slip. The correct code is written as people
write it — textbook formulas, reused saved outputs, arithmetic in the input's own dtype — so a
checker must not flag it in float64, float32, float16 or bfloat16 at any side up to 64; every bug
is off by far more than rounding (relative error >= 10%) at every side in ``BUG_SIDES``, for seeds
0-9 (``self_check`` asserts this).

Some bugs are invisible at side 1 by nature (a forgotten 1/N when N = 1, a sum over the wrong axis
of a 1×1 tensor, a 1/√d scale when d = 1), hence ``BUG_SIDES`` starts at 3. At side 3 a rare seed
(about 1 in 100) can shrink a bug to a few percent — nine random numbers line up by chance — and
bugs whose wrong term shrinks like 1/√n (layer norm's missing mean or projection term) sit near 15%
at side 64.

Hard but correct cases, on purpose: layer norm over 2 features (side 1) and a residual far smaller
than its terms (the seed loss) cancel catastrophically, and a saturated tanh rounds h' to 1 in
bfloat16, so 16-bit answers can be far from float64 in relative terms while every rounding is
ordinary. ``relu_inputs`` puts exact zeros (relu's kink) in x; ``zeros=False`` keeps them out.

``self_check()`` verifies the zoo with torch alone: correct VJPs and Function backwards against
``torch.autograd.grad`` in float64, the bugs against the same reference, and that in the 16- and
32-bit dtypes the VJPs keep the input's dtype and shape and stay finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
Grads = tuple  # one gradient (or None) per input

EPS = 1e-5
MAX_SIDE = 64
SIDES = (1, 3, 8, 64)
BUG_SIDES = (3, 8, 64)
DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Backward:
    name: str
    forward: Callable[..., Tensor]  # plain torch forward, args like make_inputs returns
    vjp: Callable[..., Grads]  # vjp(*inputs, G) -> one gradient per input, None for non-differentiable
    function: type[torch.autograd.Function]  # same math; Function.apply(*inputs)
    make_inputs: Callable[[torch.dtype, int, int], tuple]  # (dtype, side, seed) -> inputs
    bugs: dict[str, Callable[..., Grads]]  # planted wrong VJPs, name -> vjp

    @property
    def id(self) -> str:
        return self.name


# ---- drawing inputs ---------------------------------------------------------------------------------

SEED_OFFSET = 0x5EED_0000  # keeps input streams apart from a checker's cotangent drawn with a small seed


def _generator(seed: int) -> torch.Generator:
    """Seeded, but never ``manual_seed(seed)`` itself: a cotangent drawn with the same small seed would
    repeat the inputs' numbers (G == x), and correlated G hides bugs such as a mask taken from G."""
    return torch.Generator().manual_seed(SEED_OFFSET + seed)


def _randn(gen: torch.Generator, shape: tuple[int, ...], dtype: torch.dtype, scale: float = 1.0) -> Tensor:
    """Normal values drawn in float64 (the same numbers in every dtype), then cast."""
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


def _side(side: int) -> int:
    if not 1 <= side <= MAX_SIDE:
        raise ValueError(f"side: expected 1..{MAX_SIDE}, got {side}")
    return side


def _half(side: int) -> int:
    """A second, different size for non-square shapes: 1, 2, 4, 32 for sides 1, 3, 8, 64."""
    return max(1, (side + 1) // 2)


def _square_inputs(dtype: torch.dtype, side: int, seed: int) -> tuple[Tensor]:
    n = _side(side)
    return (_randn(_generator(seed), (n, n), dtype),)


# ---- 1. softmax over the last dim --------------------------------------------------------------------

def _softmax_inputs(dtype: torch.dtype, side: int, seed: int) -> tuple[Tensor]:
    """Square logits of scale 2 (square, so a dropped keepdim broadcasts instead of raising)."""
    n = _side(side)
    return (_randn(_generator(seed), (n, n), dtype, scale=2.0),)


def softmax_forward(x: Tensor) -> Tensor:
    """y = exp(x - max) / Σ exp(x - max) along the last dim (the max keeps exp from overflowing)."""
    e = torch.exp(x - x.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def _softmax_backward(y: Tensor, G: Tensor) -> Tensor:
    """∂y_i/∂x_j = y_i(δ_ij − y_j), so dx = y ⊙ (G − ⟨G, y⟩) with the row sum kept as a column."""
    return y * (G - (G * y).sum(-1, keepdim=True))


def softmax_vjp(x: Tensor, G: Tensor) -> Grads:
    return (_softmax_backward(softmax_forward(x), G),)


class SoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = softmax_forward(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, G: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return _softmax_backward(y, G)


def _softmax_bug_wrong_axis(x: Tensor, G: Tensor) -> Grads:
    y = softmax_forward(x)
    return (y * (G - (G * y).sum(0, keepdim=True)),)


def _softmax_bug_forgot_keepdim(x: Tensor, G: Tensor) -> Grads:
    y = softmax_forward(x)  # (n,) row sums broadcast along the rows on a square input: silently wrong
    return (y * (G - (G * y).sum(-1)),)


def _softmax_bug_missing_y_factor(x: Tensor, G: Tensor) -> Grads:
    y = softmax_forward(x)
    return (G - (G * y).sum(-1, keepdim=True),)


def _softmax_bug_uses_input(x: Tensor, G: Tensor) -> Grads:
    return (x * (G - (G * x).sum(-1, keepdim=True)),)


SOFTMAX = Backward(
    name="softmax",
    forward=softmax_forward,
    vjp=softmax_vjp,
    function=SoftmaxFunction,
    make_inputs=_softmax_inputs,
    bugs={
        "sum_over_wrong_axis": _softmax_bug_wrong_axis,
        "forgot_keepdim": _softmax_bug_forgot_keepdim,
        "missing_y_factor": _softmax_bug_missing_y_factor,
        "uses_input_instead_of_output": _softmax_bug_uses_input,
    },
)


# ---- 2. log_softmax + cross-entropy, mean over the batch, integer targets ----------------------------

def _log_softmax(x: Tensor) -> Tensor:
    shifted = x - x.amax(-1, keepdim=True)
    return shifted - torch.log(torch.exp(shifted).sum(-1, keepdim=True))


def cross_entropy_forward(x: Tensor, t: Tensor) -> Tensor:
    """L = −(1/N) Σ_n log softmax(x_n)[t_n]; x (N, C) logits, t (N,) int64 classes; a 0-dim loss."""
    return -_log_softmax(x).gather(1, t.unsqueeze(1)).mean()


def _cross_entropy_backward(p: Tensor, t: Tensor, G: Tensor) -> Tensor:
    """∂L/∂x = (softmax(x) − onehot(t)) / N, times the scalar G."""
    onehot = F.one_hot(t, p.shape[1]).to(p.dtype)
    return (p - onehot) * G / p.shape[0]


def cross_entropy_vjp(x: Tensor, t: Tensor, G: Tensor) -> Grads:
    return _cross_entropy_backward(softmax_forward(x), t, G), None


class CrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor) -> Tensor:
        logp = _log_softmax(x)
        ctx.save_for_backward(logp, t)
        return -logp.gather(1, t.unsqueeze(1)).mean()

    @staticmethod
    def backward(ctx, G: Tensor) -> tuple[Tensor, None]:
        logp, t = ctx.saved_tensors
        return _cross_entropy_backward(torch.exp(logp), t, G), None


def _cross_entropy_inputs(dtype: torch.dtype, side: int, seed: int) -> tuple[Tensor, Tensor]:
    n, c = _side(side), _half(side) + 1  # C >= 2 classes
    gen = _generator(seed)
    x = _randn(gen, (n, c), dtype, scale=2.0)
    t = torch.randint(c, (n,), generator=gen, dtype=torch.int64)
    return x, t


def _ce_bug_forgot_mean(x: Tensor, t: Tensor, G: Tensor) -> Grads:
    return (softmax_forward(x) - F.one_hot(t, x.shape[1]).to(x.dtype)) * G, None


def _ce_bug_forgot_onehot(x: Tensor, t: Tensor, G: Tensor) -> Grads:
    return softmax_forward(x) * G / x.shape[0], None


def _ce_bug_softmax_over_batch(x: Tensor, t: Tensor, G: Tensor) -> Grads:
    p = torch.softmax(x, dim=0)
    return (p - F.one_hot(t, x.shape[1]).to(x.dtype)) * G / x.shape[0], None


def _ce_bug_sign(x: Tensor, t: Tensor, G: Tensor) -> Grads:
    return (F.one_hot(t, x.shape[1]).to(x.dtype) - softmax_forward(x)) * G / x.shape[0], None


CROSS_ENTROPY = Backward(
    name="cross_entropy",
    forward=cross_entropy_forward,
    vjp=cross_entropy_vjp,
    function=CrossEntropyFunction,
    make_inputs=_cross_entropy_inputs,
    bugs={
        "forgot_1_over_N": _ce_bug_forgot_mean,
        "forgot_onehot": _ce_bug_forgot_onehot,
        "softmax_over_batch_axis": _ce_bug_softmax_over_batch,
        "sign_flipped": _ce_bug_sign,
    },
)


# ---- 3./4. normalization: layer norm (last dim) and batch norm (dim 0, training mode) ----------------

def _normalize(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """x̂ = (x − μ) / √(σ² + ε) with the biased variance; returns (x̂, 1/√(σ² + ε))."""
    centered = x - x.mean(dim, keepdim=True)
    rstd = 1.0 / torch.sqrt((centered * centered).mean(dim, keepdim=True) + EPS)
    return centered * rstd, rstd


def _normalize_backward(xhat: Tensor, rstd: Tensor, w: Tensor, G: Tensor, dim: int, param_dim: int) -> Grads:
    """Textbook: with ĝ = G·w and n the normalized count,
    dx = (rstd/n)·(n·ĝ − Σĝ − x̂·Σ(ĝ·x̂)), dw = Σ_batch G·x̂, db = Σ_batch G."""
    n = xhat.shape[dim]
    dxhat = G * w
    dx = rstd / n * (n * dxhat - dxhat.sum(dim, keepdim=True) - xhat * (dxhat * xhat).sum(dim, keepdim=True))
    return dx, (G * xhat).sum(param_dim), G.sum(param_dim)


def _norm_inputs(dtype: torch.dtype, side: int, seed: int, *, features: int) -> tuple[Tensor, Tensor, Tensor]:
    n = _side(side)
    gen = _generator(seed)
    x = _randn(gen, (n, features), dtype, scale=2.0) + 0.5  # off-centre, not unit scale: normalization does work
    w = _randn(gen, (features,), dtype)
    b = _randn(gen, (features,), dtype)
    return x, w, b


def layer_norm_forward(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    xhat, _ = _normalize(x, -1)
    return xhat * w + b


def layer_norm_vjp(x: Tensor, w: Tensor, b: Tensor, G: Tensor) -> Grads:
    xhat, rstd = _normalize(x, -1)
    return _normalize_backward(xhat, rstd, w, G, dim=-1, param_dim=0)


class LayerNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        xhat, rstd = _normalize(x, -1)
        ctx.save_for_backward(xhat, rstd, w)
        return xhat * w + b

    @staticmethod
    def backward(ctx, G: Tensor) -> Grads:
        xhat, rstd, w = ctx.saved_tensors
        return _normalize_backward(xhat, rstd, w, G, dim=-1, param_dim=0)


def _layer_norm_inputs(dtype: torch.dtype, side: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    return _norm_inputs(dtype, side, seed, features=_half(side) + 1)  # d >= 2 features


def _ln_bug_missing_mean_term(x: Tensor, w: Tensor, b: Tensor, G: Tensor) -> Grads:
    xhat, rstd = _normalize(x, -1)
    n, dxhat = x.shape[-1], G * w
    dx = rstd / n * (n * dxhat - xhat * (dxhat * xhat).sum(-1, keepdim=True))
    return dx, (G * xhat).sum(0), G.sum(0)


def _ln_bug_missing_projection(x: Tensor, w: Tensor, b: Tensor, G: Tensor) -> Grads:
    xhat, rstd = _normalize(x, -1)
    n, dxhat = x.shape[-1], G * w
    dx = rstd / n * (n * dxhat - dxhat.sum(-1, keepdim=True))
    return dx, (G * xhat).sum(0), G.sum(0)


def _ln_bug_db_mean(x: Tensor, w: Tensor, b: Tensor, G: Tensor) -> Grads:
    dx, dw, _ = layer_norm_vjp(x, w, b, G)
    return dx, dw, G.mean(0)


def _ln_bug_dw_uses_x(x: Tensor, w: Tensor, b: Tensor, G: Tensor) -> Grads:
    dx, _, db = layer_norm_vjp(x, w, b, G)
    return dx, (G * x).sum(0), db


LAYER_NORM = Backward(
    name="layer_norm",
    forward=layer_norm_forward,
    vjp=layer_norm_vjp,
    function=LayerNormFunction,
    make_inputs=_layer_norm_inputs,
    bugs={
        "missing_mean_term": _ln_bug_missing_mean_term,
        "missing_xhat_projection": _ln_bug_missing_projection,
        "db_mean_over_batch": _ln_bug_db_mean,
        "dw_uses_x_not_xhat": _ln_bug_dw_uses_x,
    },
)


def batch_norm_forward(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    xhat, _ = _normalize(x, 0)
    return xhat * w + b


def batch_norm_vjp(x: Tensor, w: Tensor, b: Tensor, G: Tensor) -> Grads:
    xhat, rstd = _normalize(x, 0)
    return _normalize_backward(xhat, rstd, w, G, dim=0, param_dim=0)


class BatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        xhat, rstd = _normalize(x, 0)
        ctx.save_for_backward(xhat, rstd, w)
        return xhat * w + b

    @staticmethod
    def backward(ctx, G: Tensor) -> Grads:
        xhat, rstd, w = ctx.saved_tensors
        return _normalize_backward(xhat, rstd, w, G, dim=0, param_dim=0)


def _batch_norm_inputs(dtype: torch.dtype, side: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    return _norm_inputs(dtype, side, seed, features=side)  # square (N, C): wrong-axis sums broadcast silently


def _bn_bug_wrong_axis(x: Tensor, w: Tensor, b: Tensor, G: Tensor) -> Grads:
    xhat, rstd = _normalize(x, 0)
    n, dxhat = x.shape[0], G * w
    dx = rstd / n * (n * dxhat - dxhat.sum(-1, keepdim=True) - xhat * (dxhat * xhat).sum(-1, keepdim=True))
    return dx, (G * xhat).sum(0), G.sum(0)


def _bn_bug_forgot_1_over_N(x: Tensor, w: Tensor, b: Tensor, G: Tensor) -> Grads:
    xhat, rstd = _normalize(x, 0)
    n, dxhat = x.shape[0], G * w
    dx = rstd * (n * dxhat - dxhat.sum(0, keepdim=True) - xhat * (dxhat * xhat).sum(0, keepdim=True))
    return dx, (G * xhat).sum(0), G.sum(0)


def _bn_bug_dx_forgot_weight(x: Tensor, w: Tensor, b: Tensor, G: Tensor) -> Grads:
    xhat, rstd = _normalize(x, 0)
    dx = _normalize_backward(xhat, rstd, torch.ones_like(w), G, dim=0, param_dim=0)[0]  # G where G·w belongs
    return dx, (G * xhat).sum(0), G.sum(0)


def _bn_bug_dw_forgot_xhat(x: Tensor, w: Tensor, b: Tensor, G: Tensor) -> Grads:
    dx, _, db = batch_norm_vjp(x, w, b, G)
    return dx, G.sum(0), db


BATCH_NORM = Backward(
    name="batch_norm",
    forward=batch_norm_forward,
    vjp=batch_norm_vjp,
    function=BatchNormFunction,
    make_inputs=_batch_norm_inputs,
    bugs={
        "sums_over_feature_axis": _bn_bug_wrong_axis,
        "forgot_1_over_N": _bn_bug_forgot_1_over_N,
        "dx_forgot_weight": _bn_bug_dx_forgot_weight,
        "dw_forgot_xhat": _bn_bug_dw_forgot_xhat,
    },
)


# ---- 5. GELU, tanh approximation -----------------------------------------------------------------------

_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def gelu_tanh_forward(x: Tensor) -> Tensor:
    """y = ½x(1 + tanh(k(x + c·x³))), k = √(2/π), c = 0.044715."""
    return 0.5 * x * (1.0 + torch.tanh(_GELU_K * (x + _GELU_C * x**3)))


def _gelu_tanh_grad(x: Tensor) -> Tensor:
    """Product and chain rule: dy/dx = ½(1 + t) + ½x(1 − t²)·k(1 + 3c·x²), t = tanh(k(x + c·x³))."""
    t = torch.tanh(_GELU_K * (x + _GELU_C * x**3))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _GELU_K * (1.0 + 3.0 * _GELU_C * x * x)


def gelu_tanh_vjp(x: Tensor, G: Tensor) -> Grads:
    return (G * _gelu_tanh_grad(x),)


class GeluTanhFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return gelu_tanh_forward(x)

    @staticmethod
    def backward(ctx, G: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return G * _gelu_tanh_grad(x)


def _gelu_tanh_bug_forgot_product_rule(x: Tensor, G: Tensor) -> Grads:
    t = torch.tanh(_GELU_K * (x + _GELU_C * x**3))
    return (G * 0.5 * (1.0 + t),)


def _gelu_tanh_bug_first_term_lost_1(x: Tensor, G: Tensor) -> Grads:
    t = torch.tanh(_GELU_K * (x + _GELU_C * x**3))  # ½t where ½(1 + t) belongs
    return (G * (0.5 * t + 0.5 * x * (1.0 - t * t) * _GELU_K * (1.0 + 3.0 * _GELU_C * x * x)),)


def _gelu_tanh_bug_dropped_half(x: Tensor, G: Tensor) -> Grads:
    t = torch.tanh(_GELU_K * (x + _GELU_C * x**3))
    return (G * (0.5 * (1.0 + t) + x * (1.0 - t * t) * _GELU_K * (1.0 + 3.0 * _GELU_C * x * x)),)


GELU_TANH = Backward(
    name="gelu_tanh",
    forward=gelu_tanh_forward,
    vjp=gelu_tanh_vjp,
    function=GeluTanhFunction,
    make_inputs=_square_inputs,
    bugs={
        "forgot_product_rule": _gelu_tanh_bug_forgot_product_rule,
        "first_term_lost_its_1": _gelu_tanh_bug_first_term_lost_1,
        "dropped_half_on_second_term": _gelu_tanh_bug_dropped_half,
    },
)


# ---- 6. GELU, erf form ---------------------------------------------------------------------------------

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu_erf_forward(x: Tensor) -> Tensor:
    """y = x·Φ(x) = ½x(1 + erf(x/√2))."""
    return 0.5 * x * (1.0 + torch.erf(x / _SQRT2))


def _gelu_erf_grad(x: Tensor) -> Tensor:
    """dy/dx = Φ(x) + x·φ(x), φ(x) = exp(−x²/2)/√(2π)."""
    return 0.5 * (1.0 + torch.erf(x / _SQRT2)) + x * torch.exp(-0.5 * x * x) * _INV_SQRT_2PI


def gelu_erf_vjp(x: Tensor, G: Tensor) -> Grads:
    return (G * _gelu_erf_grad(x),)


class GeluErfFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return gelu_erf_forward(x)

    @staticmethod
    def backward(ctx, G: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return G * _gelu_erf_grad(x)


def _gelu_erf_bug_forgot_product_rule(x: Tensor, G: Tensor) -> Grads:
    return (G * 0.5 * (1.0 + torch.erf(x / _SQRT2)),)


def _gelu_erf_bug_pdf_unnormalized(x: Tensor, G: Tensor) -> Grads:
    return (G * (0.5 * (1.0 + torch.erf(x / _SQRT2)) + x * torch.exp(-0.5 * x * x)),)


def _gelu_erf_bug_product_rule_sign(x: Tensor, G: Tensor) -> Grads:
    return (G * (0.5 * (1.0 + torch.erf(x / _SQRT2)) - x * torch.exp(-0.5 * x * x) * _INV_SQRT_2PI),)


GELU_ERF = Backward(
    name="gelu_erf",
    forward=gelu_erf_forward,
    vjp=gelu_erf_vjp,
    function=GeluErfFunction,
    make_inputs=_square_inputs,
    bugs={
        "forgot_product_rule": _gelu_erf_bug_forgot_product_rule,
        "pdf_missing_1_over_sqrt_2pi": _gelu_erf_bug_pdf_unnormalized,
        "product_rule_sign_flipped": _gelu_erf_bug_product_rule_sign,
    },
)


# ---- 7. sigmoid ----------------------------------------------------------------------------------------

def sigmoid_forward(x: Tensor) -> Tensor:
    """s = 1 / (1 + e^(−x)), written out by hand."""
    return 1.0 / (1.0 + torch.exp(-x))


def sigmoid_vjp(x: Tensor, G: Tensor) -> Grads:
    """ds/dx = s(1 − s), with s recomputed exactly as the forward does."""
    s = sigmoid_forward(x)
    return (G * s * (1.0 - s),)


class SigmoidFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        s = sigmoid_forward(x)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, G: Tensor) -> Tensor:
        (s,) = ctx.saved_tensors
        return G * s * (1.0 - s)


def _sigmoid_bug_uses_input(x: Tensor, G: Tensor) -> Grads:
    return (G * x * (1.0 - x),)


def _sigmoid_bug_missing_one_minus(x: Tensor, G: Tensor) -> Grads:
    return (G * sigmoid_forward(x),)


def _sigmoid_bug_sign(x: Tensor, G: Tensor) -> Grads:
    s = sigmoid_forward(x)
    return (G * s * (s - 1.0),)


SIGMOID = Backward(
    name="sigmoid",
    forward=sigmoid_forward,
    vjp=sigmoid_vjp,
    function=SigmoidFunction,
    make_inputs=_square_inputs,
    bugs={
        "uses_input_instead_of_output": _sigmoid_bug_uses_input,
        "missing_1_minus_s": _sigmoid_bug_missing_one_minus,
        "sign_flipped": _sigmoid_bug_sign,
    },
)


# ---- 8. tanh RNN step ----------------------------------------------------------------------------------

def rnn_step_forward(x: Tensor, h: Tensor, Wx: Tensor, Wh: Tensor, b: Tensor) -> Tensor:
    """h' = tanh(x·Wx + h·Wh + b); x (B, I), h (B, H), Wx (I, H), Wh (H, H), b (H,)."""
    return torch.tanh(x @ Wx + h @ Wh + b)


def _rnn_step_backward(x: Tensor, h: Tensor, Wx: Tensor, Wh: Tensor, hn: Tensor, G: Tensor) -> Grads:
    """dz = G ⊙ (1 − h'²); dx = dz·Wxᵀ, dh = dz·Whᵀ, dWx = xᵀ·dz, dWh = hᵀ·dz, db = Σ_batch dz."""
    dz = G * (1.0 - hn**2)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, h.T @ dz, dz.sum(0)


def rnn_step_vjp(x: Tensor, h: Tensor, Wx: Tensor, Wh: Tensor, b: Tensor, G: Tensor) -> Grads:
    return _rnn_step_backward(x, h, Wx, Wh, rnn_step_forward(x, h, Wx, Wh, b), G)


class RNNStepFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, h: Tensor, Wx: Tensor, Wh: Tensor, b: Tensor) -> Tensor:
        hn = torch.tanh(x @ Wx + h @ Wh + b)
        ctx.save_for_backward(x, h, Wx, Wh, hn)
        return hn

    @staticmethod
    def backward(ctx, G: Tensor) -> Grads:
        return _rnn_step_backward(*ctx.saved_tensors, G)


def _rnn_step_inputs(dtype: torch.dtype, side: int, seed: int) -> tuple[Tensor, ...]:
    batch, hidden, features = _side(side), side, _half(side)
    gen = _generator(seed)
    x = _randn(gen, (batch, features), dtype)
    h = _randn(gen, (batch, hidden), dtype, scale=0.5)
    Wx = _randn(gen, (features, hidden), dtype, scale=1.0 / math.sqrt(features))  # 1/√fan_in init
    Wh = _randn(gen, (hidden, hidden), dtype, scale=1.0 / math.sqrt(hidden))
    b = _randn(gen, (hidden,), dtype, scale=0.1)
    return x, h, Wx, Wh, b


def _rnn_bug_dWh_transposed(x, h, Wx, Wh, b, G) -> Grads:
    dx, dh, dWx, _, db = rnn_step_vjp(x, h, Wx, Wh, b, G)
    dz = G * (1.0 - rnn_step_forward(x, h, Wx, Wh, b) ** 2)
    return dx, dh, dWx, dz.T @ h, db


def _rnn_bug_dh_missing_transpose(x, h, Wx, Wh, b, G) -> Grads:
    dx, _, dWx, dWh, db = rnn_step_vjp(x, h, Wx, Wh, b, G)
    dz = G * (1.0 - rnn_step_forward(x, h, Wx, Wh, b) ** 2)
    return dx, dz @ Wh, dWx, dWh, db


def _rnn_bug_tanh_derivative_not_squared(x, h, Wx, Wh, b, G) -> Grads:
    hn = rnn_step_forward(x, h, Wx, Wh, b)
    dz = G * (1.0 - hn)  # 1 − h' where 1 − h'² belongs
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, h.T @ dz, dz.sum(0)


def _rnn_bug_db_mean_over_batch(x, h, Wx, Wh, b, G) -> Grads:
    dx, dh, dWx, dWh, db = rnn_step_vjp(x, h, Wx, Wh, b, G)
    return dx, dh, dWx, dWh, db / x.shape[0]


RNN_STEP = Backward(
    name="rnn_step",
    forward=rnn_step_forward,
    vjp=rnn_step_vjp,
    function=RNNStepFunction,
    make_inputs=_rnn_step_inputs,
    bugs={
        "dWh_transposed": _rnn_bug_dWh_transposed,
        "dh_missing_transpose": _rnn_bug_dh_missing_transpose,
        "tanh_derivative_1_minus_h": _rnn_bug_tanh_derivative_not_squared,
        "db_mean_over_batch": _rnn_bug_db_mean_over_batch,
    },
)


# ---- 9. relu -------------------------------------------------------------------------------------------

def relu_forward(x: Tensor) -> Tensor:
    return torch.relu(x)


def relu_vjp(x: Tensor, G: Tensor) -> Grads:
    """dx = G where x > 0, else 0 (0 at x = 0 too, as torch.relu's autograd does)."""
    return (G * (x > 0),)


class ReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.relu(x)

    @staticmethod
    def backward(ctx, G: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return G * (x > 0)


def relu_inputs(dtype: torch.dtype, side: int, seed: int, *, zeros: bool = True) -> tuple[Tensor]:
    """A square x with at least one positive element (the last); with ``zeros`` (the default) about
    a quarter of the others, and always the first when side > 1, are exactly 0, where relu has its
    kink; the rest keep away from 0 (|x| >= 0.05). ``zeros=False``: no element is 0."""
    n = _side(side)
    gen = _generator(seed)
    x = torch.randn((n, n), generator=gen, dtype=torch.float64)
    x = torch.where(x.abs() < 0.05, torch.copysign(torch.full_like(x, 0.05), x), x)
    x[-1, -1] = x[-1, -1].abs()
    if zeros:
        at_zero = torch.rand((n, n), generator=gen, dtype=torch.float64) < 0.25
        at_zero[0, 0] = True
        at_zero[-1, -1] = False
        x = torch.where(at_zero, torch.zeros_like(x), x)
    return (x.to(dtype),)


def _relu_bug_mask_inverted(x: Tensor, G: Tensor) -> Grads:
    return (G * (x < 0),)


def _relu_bug_mask_from_G(x: Tensor, G: Tensor) -> Grads:
    return (G * (G > 0),)


def _relu_bug_ignores_G(x: Tensor, G: Tensor) -> Grads:
    return ((x > 0).to(x.dtype),)


RELU = Backward(
    name="relu",
    forward=relu_forward,
    vjp=relu_vjp,
    function=ReLUFunction,
    make_inputs=relu_inputs,
    bugs={
        "mask_inverted": _relu_bug_mask_inverted,
        "mask_taken_from_G": _relu_bug_mask_from_G,
        "ignores_G": _relu_bug_ignores_G,
    },
)


# ---- 10. attention -------------------------------------------------------------------------------------

def attention_forward(Q: Tensor, K: Tensor, V: Tensor) -> Tensor:
    """O = softmax(Q·Kᵀ/√d)·V; Q (n, d), K (m, d), V (m, dv)."""
    return softmax_forward(Q @ K.T / math.sqrt(Q.shape[-1])) @ V


def _attention_backward(Q: Tensor, K: Tensor, V: Tensor, P: Tensor, G: Tensor) -> Grads:
    """dV = Pᵀ·G; dP = G·Vᵀ; dS = softmax backward of dP; dQ = dS·K/√d, dK = dSᵀ·Q/√d."""
    scale = 1.0 / math.sqrt(Q.shape[-1])
    dS = _softmax_backward(P, G @ V.T)
    return dS @ K * scale, dS.T @ Q * scale, P.T @ G


def attention_vjp(Q: Tensor, K: Tensor, V: Tensor, G: Tensor) -> Grads:
    P = softmax_forward(Q @ K.T / math.sqrt(Q.shape[-1]))
    return _attention_backward(Q, K, V, P, G)


class AttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, Q: Tensor, K: Tensor, V: Tensor) -> Tensor:
        P = softmax_forward(Q @ K.T / math.sqrt(Q.shape[-1]))
        ctx.save_for_backward(Q, K, V, P)
        return P @ V

    @staticmethod
    def backward(ctx, G: Tensor) -> Grads:
        return _attention_backward(*ctx.saved_tensors, G)


def _attention_inputs(dtype: torch.dtype, side: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    n, d = _side(side), _half(side)  # n queries = n keys, so a missing transpose keeps the shape
    gen = _generator(seed)
    return _randn(gen, (n, d), dtype), _randn(gen, (n, d), dtype), _randn(gen, (n, d + 1), dtype)


def _attention_bug_dK_missing_transpose(Q, K, V, G) -> Grads:
    scale = 1.0 / math.sqrt(Q.shape[-1])
    P = softmax_forward(Q @ K.T * scale)
    dS = _softmax_backward(P, G @ V.T)
    return dS @ K * scale, dS @ Q * scale, P.T @ G


def _attention_bug_dQ_forgot_scale(Q, K, V, G) -> Grads:
    dQ, dK, dV = attention_vjp(Q, K, V, G)
    return dQ * math.sqrt(Q.shape[-1]), dK, dV


def _attention_bug_softmax_jacobian_missing_P(Q, K, V, G) -> Grads:
    scale = 1.0 / math.sqrt(Q.shape[-1])
    P = softmax_forward(Q @ K.T * scale)
    dP = G @ V.T
    dS = dP - (dP * P).sum(-1, keepdim=True)
    return dS @ K * scale, dS.T @ Q * scale, P.T @ G


ATTENTION = Backward(
    name="attention",
    forward=attention_forward,
    vjp=attention_vjp,
    function=AttentionFunction,
    make_inputs=_attention_inputs,
    bugs={
        "dK_missing_transpose": _attention_bug_dK_missing_transpose,
        "dQ_forgot_1_over_sqrt_d": _attention_bug_dQ_forgot_scale,
        "softmax_jacobian_missing_P": _attention_bug_softmax_jacobian_missing_P,
    },
)


# ---- 11. linear with bias ------------------------------------------------------------------------------

def linear_forward(x: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """y = x·Wᵀ + b; x (N, in), W (out, in), b (out,)."""
    return x @ W.T + b


def _linear_backward(x: Tensor, W: Tensor, G: Tensor) -> Grads:
    """dx = G·W, dW = Gᵀ·x, db = Σ_batch G."""
    return G @ W, G.T @ x, G.sum(0)


def linear_vjp(x: Tensor, W: Tensor, b: Tensor, G: Tensor) -> Grads:
    return _linear_backward(x, W, G)


class LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, W: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(x, W)
        return x @ W.T + b

    @staticmethod
    def backward(ctx, G: Tensor) -> Grads:
        x, W = ctx.saved_tensors
        return _linear_backward(x, W, G)


def _linear_inputs(dtype: torch.dtype, side: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    n, fan_in, fan_out = _side(side), _half(side), side  # N = out: a bias summed over the wrong axis keeps its shape
    gen = _generator(seed)
    x = _randn(gen, (n, fan_in), dtype)
    W = _randn(gen, (fan_out, fan_in), dtype, scale=1.0 / math.sqrt(fan_in))
    b = _randn(gen, (fan_out,), dtype, scale=0.1)
    return x, W, b


def _linear_bug_db_wrong_axis(x, W, b, G) -> Grads:
    return G @ W, G.T @ x, G.sum(1)


def _linear_bug_db_mean(x, W, b, G) -> Grads:
    return G @ W, G.T @ x, G.mean(0)


def _linear_bug_dW_spurious_mean(x, W, b, G) -> Grads:
    return G @ W, G.T @ x / x.shape[0], G.sum(0)


LINEAR = Backward(
    name="linear",
    forward=linear_forward,
    vjp=linear_vjp,
    function=LinearFunction,
    make_inputs=_linear_inputs,
    bugs={
        "db_summed_over_wrong_axis": _linear_bug_db_wrong_axis,
        "db_mean_instead_of_sum": _linear_bug_db_mean,
        "dW_spurious_1_over_N": _linear_bug_dW_spurious_mean,
    },
)


# ---- 12. the seed's loss: least squares on a line -------------------------------------------------------

def seed_loss_forward(x: Tensor, w: Tensor, b: Tensor, y: Tensor) -> Tensor:
    """L = ½ Σ (x·w + b − y)²; x, y (n, 1), w, b (1, 1); a 0-dim loss."""
    y_pred = x @ w + b.expand_as(y)
    return 0.5 * ((y_pred - y) ** 2).sum()


def _seed_loss_backward(x: Tensor, w: Tensor, r: Tensor, G: Tensor) -> Grads:
    """With r = y_pred − y: dx = r·wᵀ, dw = xᵀ·r, db = Σ r (kept (1, 1)), dy = −r; all times G."""
    return G * (r @ w.T), G * (x.T @ r), G * r.sum().reshape(1, 1), -G * r


def seed_loss_vjp(x: Tensor, w: Tensor, b: Tensor, y: Tensor, G: Tensor) -> Grads:
    r = x @ w + b.expand_as(y) - y
    return _seed_loss_backward(x, w, r, G)


class SeedLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor, y: Tensor) -> Tensor:
        r = x @ w + b.expand_as(y) - y
        ctx.save_for_backward(x, w, r)
        return 0.5 * (r**2).sum()

    @staticmethod
    def backward(ctx, G: Tensor) -> Grads:
        return _seed_loss_backward(*ctx.saved_tensors, G)


def _seed_loss_inputs(dtype: torch.dtype, side: int, seed: int) -> tuple[Tensor, ...]:
    """Noisy points on y = 3x + 2, and a model (w, b) not yet fitted."""
    n = _side(side)
    gen = _generator(seed)
    x = _randn(gen, (n, 1), torch.float64)
    y = 3.0 * x + 2.0 + _randn(gen, (n, 1), torch.float64, scale=0.5)
    w = _randn(gen, (1, 1), torch.float64)
    b = _randn(gen, (1, 1), torch.float64)
    return tuple(t.to(dtype) for t in (x, w, b, y))


def _seed_bug_dy_sign(x, w, b, y, G) -> Grads:
    dx, dw, db, dy = seed_loss_vjp(x, w, b, y, G)
    return dx, dw, db, -dy


def _seed_bug_dx_pasted_from_dw(x, w, b, y, G) -> Grads:
    r = x @ w + b.expand_as(y) - y
    _, dw, db, dy = _seed_loss_backward(x, w, r, G)
    return G * (r * x), dw, db, dy


def _seed_bug_dw_mean(x, w, b, y, G) -> Grads:
    dx, dw, db, dy = seed_loss_vjp(x, w, b, y, G)
    return dx, dw / x.shape[0], db, dy


def _seed_bug_db_mean(x, w, b, y, G) -> Grads:
    dx, dw, db, dy = seed_loss_vjp(x, w, b, y, G)
    return dx, dw, db / x.shape[0], dy


SEED_LOSS = Backward(
    name="seed_loss",
    forward=seed_loss_forward,
    vjp=seed_loss_vjp,
    function=SeedLossFunction,
    make_inputs=_seed_loss_inputs,
    bugs={
        "dy_sign_flipped": _seed_bug_dy_sign,
        "dx_uses_x_instead_of_w": _seed_bug_dx_pasted_from_dw,
        "dw_spurious_1_over_n": _seed_bug_dw_mean,
        "db_mean_instead_of_sum": _seed_bug_db_mean,
    },
)


BACKWARDS: tuple[Backward, ...] = (
    SOFTMAX, CROSS_ENTROPY, LAYER_NORM, BATCH_NORM, GELU_TANH, GELU_ERF,
    SIGMOID, RNN_STEP, RELU, ATTENTION, LINEAR, SEED_LOSS,
)


def backward_named(name: str) -> Backward:
    for entry in BACKWARDS:
        if entry.name == name:
            return entry
    raise KeyError(f"no backward named {name!r}; have {[b.name for b in BACKWARDS]}")


# ---- self-check with torch alone ------------------------------------------------------------------------

def _cotangent(out: Tensor, seed: int) -> Tensor:
    return _randn(_generator(10_000 + seed), tuple(out.shape), out.dtype)


def _autograd_reference(forward: Callable[..., Tensor], inputs: tuple, G: Tensor) -> list[Tensor | None]:
    """torch.autograd.grad of ``forward`` at ``inputs`` (None for non-float inputs)."""
    leaves = [t.detach().clone().requires_grad_(t.dtype.is_floating_point) for t in inputs]
    with torch.enable_grad():
        out = forward(*leaves)
    wanted = [t for t in leaves if t.requires_grad]
    grads = iter(torch.autograd.grad(out, wanted, G))
    return [next(grads) if t.requires_grad else None for t in leaves]


def _function_grads(function: type[torch.autograd.Function], inputs: tuple, G: Tensor) -> tuple[Tensor, list]:
    leaves = [t.detach().clone().requires_grad_(t.dtype.is_floating_point) for t in inputs]
    with torch.enable_grad():
        out = function.apply(*leaves)
    wanted = [t for t in leaves if t.requires_grad]
    grads = iter(torch.autograd.grad(out, wanted, G))
    return out.detach(), [next(grads) if t.requires_grad else None for t in leaves]


def _relative_error(got: Tensor | None, want: Tensor | None) -> float:
    """‖got − want‖ / ‖want‖ in float64 (inf when shapes differ or a gradient is missing)."""
    if want is None:
        return 0.0 if got is None else math.inf
    if got is None or tuple(got.shape) != tuple(want.shape):
        return math.inf
    want64 = want.detach().to(torch.float64)
    norm = float(want64.norm())
    diff = float((got.detach().to(torch.float64) - want64).norm())
    return diff / norm if norm > 0 else (0.0 if diff == 0 else math.inf)


def _check_correct(entry: Backward, side: int, seed: int) -> None:
    inputs = entry.make_inputs(torch.float64, side, seed)
    out = entry.forward(*inputs)
    G = _cotangent(out, seed)
    ref = _autograd_reference(entry.forward, inputs, G)
    with torch.no_grad():
        hand = entry.vjp(*inputs, G)
    assert len(hand) == len(inputs), f"{entry.name}: vjp returned {len(hand)} gradients for {len(inputs)} inputs"
    f_out, f_grads = _function_grads(entry.function, inputs, G)
    torch.testing.assert_close(f_out, out, rtol=1e-13, atol=1e-14, msg=lambda m: f"{entry.name} Function forward: {m}")
    for i, (h, fg, r, x) in enumerate(zip(hand, f_grads, ref, inputs)):
        if r is None:
            assert h is None and fg is None, f"{entry.name}: input {i} is not differentiable, expected None"
            continue
        assert h.shape == x.shape and h.dtype == x.dtype, f"{entry.name}: vjp grad {i} shape/dtype {h.shape} {h.dtype}"
        scale = float(r.abs().max()) if r.numel() else 1.0
        for what, got in (("vjp", h), ("Function", fg)):
            torch.testing.assert_close(
                got, r, rtol=1e-10, atol=1e-12 * max(scale, 1.0),
                msg=lambda m, what=what, i=i: f"{entry.name} {what} grad {i} side {side} seed {seed}: {m}",
            )


def _check_low_precision(entry: Backward, dtype: torch.dtype, side: int, seed: int) -> float:
    """The practitioner code in ``dtype``: right dtypes and shapes, finite; returns its relative
    distance from float64's answer (information only: where the correct formula cancels — layer norm
    over 2 features, tanh saturating to 1, a residual far smaller than its terms — 16-bit answers are
    legitimately far off in relative terms)."""
    inputs = entry.make_inputs(dtype, side, seed)
    out = entry.forward(*inputs)
    assert out.dtype == dtype and torch.isfinite(out).all(), f"{entry.name} {dtype}: forward not finite"
    G = _cotangent(out, seed)
    inputs64 = tuple(t.to(torch.float64) if t.dtype.is_floating_point else t for t in inputs)
    ref = _autograd_reference(entry.forward, inputs64, G.to(torch.float64))
    worst = 0.0
    for grads in (entry.vjp(*inputs, G), _function_grads(entry.function, inputs, G)[1]):
        for i, (g, r, x) in enumerate(zip(grads, ref, inputs)):
            if r is None:
                continue
            assert g.dtype == x.dtype and g.shape == x.shape, f"{entry.name} {dtype}: grad {i} is {g.dtype} {g.shape}"
            assert torch.isfinite(g).all(), f"{entry.name} {dtype} side {side}: grad {i} not finite"
            worst = max(worst, _relative_error(g, r))
    return worst


def _bug_error(entry: Backward, bug: Callable[..., Grads], side: int, seed: int) -> float:
    """How far a bug is from autograd: the largest relative error over the inputs' gradients."""
    inputs = entry.make_inputs(torch.float64, side, seed)
    G = _cotangent(entry.forward(*inputs), seed)
    ref = _autograd_reference(entry.forward, inputs, G)
    try:
        with torch.no_grad():
            grads = bug(*inputs, G)
    except RuntimeError:  # a slip that cannot even run at this shape is caught trivially
        return math.inf
    return max(_relative_error(g, r) for g, r in zip(grads, ref))


def self_check(seeds: tuple[int, ...] = tuple(range(10)), verbose: bool = True) -> dict[str, float]:
    """Verify the zoo with torch alone; raises AssertionError on any failure.

    Correct VJPs and Function backwards match torch.autograd.grad in float64 at every side in SIDES
    (rtol 1e-10); in float32, float16 and bfloat16 they keep the input's dtype and shape and stay
    finite (their distance from float64 is printed, not asserted); every planted bug is off by >= 10%
    (relative norm, worst input) at every side in BUG_SIDES. Returns the smallest bug error per bug,
    keyed "entry/bug".
    """
    smallest: dict[str, float] = {}
    for entry in BACKWARDS:
        assert len(entry.bugs) >= 2, f"{entry.name}: expected >= 2 planted bugs"
        for side in SIDES:
            for seed in seeds:
                _check_correct(entry, side, seed)
        distance = {
            name: [max(_check_low_precision(entry, dtype, side, seed) for seed in seeds) for side in SIDES]
            for dtype in DTYPES[1:] for name in [str(dtype).removeprefix("torch.")]
        }
        for bug_name, bug in entry.bugs.items():
            error = min(_bug_error(entry, bug, side, seed) for side in BUG_SIDES for seed in seeds)
            smallest[f"{entry.name}/{bug_name}"] = error
            assert error >= 0.1, f"{entry.name}/{bug_name}: only {error:.3g} relative error from autograd"
        if verbose:
            bugs = ", ".join(f"{n} {smallest[f'{entry.name}/{n}']:.2g}" for n in entry.bugs)
            print(f"ok {entry.name}: correct at sides {SIDES} x seeds {seeds}; bugs (min rel error): {bugs}")
            far = "; ".join(f"{n} {' '.join(f'{d:.1g}' for d in ds)}" for n, ds in distance.items())
            print(f"   distance from float64 by side {SIDES}: {far}")
    return smallest


if __name__ == "__main__":
    self_check()
