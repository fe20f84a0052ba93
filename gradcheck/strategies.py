"""Hypothesis strategies for operands: shapes, dtypes, devices, values and memory layouts.

Small strategies that compose: ``tensors`` draws one tensor of a given shape; ``operands`` turns a
strategy of shape tuples into a strategy of tensor tuples; each rule's operand strategy is a shape
strategy passed through ``operands``. Values are bounded per dtype so that no correct computation
overflows, and subnormal inputs are flushed to zero (CUDA flushes them; the error model covers
underflow inside the computation but not denormal *inputs* that a device reads as zero).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcheck.devices import available_devices
from gradcheck.tolerance import FLOATING_DTYPES

Shape = tuple[int, ...]
Operands = tuple[torch.Tensor, ...]

MAX_SIDE = 4
EXACT_RANGE = 4
LAYOUTS = ("contiguous", "transposed", "strided", "expanded")
# Per-tensor magnitudes: tensors of different scales in one example make cancellation-prone sums.
# float16 stops at 2 so that 0.5·Σ(x·w + b − y)² over 4×4 operands stays far below 65504.
SCALES: dict[torch.dtype, tuple[float, ...]] = {
    torch.float64: (1e-3, 1e-1, 1.0, 1e1, 1e3),
    torch.float32: (1e-3, 1e-1, 1.0, 1e1, 1e3),
    torch.bfloat16: (1e-3, 1e-1, 1.0, 1e1, 1e3),
    torch.float16: (1e-2, 1e-1, 1.0, 2.0),
}

MATMUL_SIGNATURE = "(m?,n),(n,p?)->(m?,p?)"


def dtypes() -> st.SearchStrategy[torch.dtype]:
    return st.sampled_from(FLOATING_DTYPES)


def devices() -> st.SearchStrategy[str]:
    return st.sampled_from(available_devices())


def sides(min_side: int = 0, max_side: int = MAX_SIDE) -> st.SearchStrategy[int]:
    return st.integers(min_side, max_side)


def values(dtype: torch.dtype, *, exact: bool = False, scale: float = 1.0) -> st.SearchStrategy[float]:
    """Element values: small integers in exact mode, else finite floats in ``[-scale, scale]``."""
    if exact:
        return st.integers(-EXACT_RANGE, EXACT_RANGE).map(float)
    return st.floats(-scale, scale, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _layouts_for(shape: Shape) -> list[str]:
    usable = ["contiguous"]
    if len(shape) >= 2 and shape[-1] > 1 and shape[-2] > 1:
        usable.append("transposed")
    if len(shape) >= 1 and shape[-1] > 0:
        usable.append("strided")
    if len(shape) >= 1 and shape[0] > 1:
        usable.append("expanded")
    return usable


def _storage_shape(shape: Shape, layout: str) -> Shape:
    if layout == "transposed":
        return (*shape[:-2], shape[-1], shape[-2])
    if layout == "strided":
        return (*shape[:-1], 2 * shape[-1])
    if layout == "expanded":
        return (1, *shape[1:])
    return shape


def _view(storage: torch.Tensor, shape: Shape, layout: str) -> torch.Tensor:
    if layout == "transposed":
        return storage.mT
    if layout == "strided":
        return storage[..., ::2]
    if layout == "expanded":
        return storage.expand(shape)
    return storage


@st.composite
def tensors(
    draw: st.DrawFn,
    shape: Shape,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    exact: bool = False,
    layouts: Sequence[str] = LAYOUTS,
) -> torch.Tensor:
    """One tensor of ``shape``; possibly a non-contiguous view (transposed, every other column, expanded)."""
    scale = 1.0 if exact else draw(st.sampled_from(SCALES[dtype]), label="scale")
    layout = draw(st.sampled_from([name for name in _layouts_for(shape) if name in layouts]), label="layout")
    # Clustered values (c ± a thousandth of c) make sums such as G·Bᵀ cancel, where bounds are tested hardest.
    center = 0.0 if exact else draw(st.sampled_from([0.0, 0.0, 0.0, scale, -scale]), label="center")
    spread = scale if center == 0.0 else scale * 1e-3
    storage = draw(hnp.arrays(np.float64, _storage_shape(shape, layout), elements=values(dtype, exact=exact, scale=spread)))
    storage = np.asarray(storage + center)
    t = torch.from_numpy(storage).to(dtype=dtype, device=device)
    t = torch.where(t.abs() < torch.finfo(dtype).tiny, torch.zeros_like(t), t)  # rounding may make subnormals
    view = _view(t, shape, layout)
    assert view.shape == shape, (view.shape, shape, layout)
    return view


def operands(
    shapes: st.SearchStrategy[tuple[Shape, ...]],
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    exact: bool = False,
) -> st.SearchStrategy[Operands]:
    """Tensors for a strategy of shape tuples, all of one dtype and device (drawn when not given).

    ``exact=True`` draws small integer-valued float64 tensors, on which the matmul family, the squared
    loss and a step-1 central difference are computed without rounding.
    """
    if exact and dtype not in (None, torch.float64):
        raise ValueError(f"exact operands are float64; got dtype={dtype}")
    dtype_strategy = st.just(torch.float64) if exact else (st.just(dtype) if dtype is not None else dtypes())
    device_strategy = st.just(device) if device is not None else devices()

    @st.composite
    def draw_operands(draw: st.DrawFn) -> Operands:
        chosen_dtype = draw(dtype_strategy, label="dtype")
        chosen_device = draw(device_strategy, label="device")
        shape_tuple = draw(shapes, label="shapes")
        return tuple(
            draw(tensors(shape, dtype=chosen_dtype, device=chosen_device, exact=exact), label=f"operand {i}")
            for i, shape in enumerate(shape_tuple)
        )

    return draw_operands()


def cotangents(like: torch.Tensor, *, exact: bool = False) -> st.SearchStrategy[torch.Tensor]:
    """A cotangent for an output ``like``: drawn values, never all ones (that hides a backward that ignores it)."""
    return tensors(tuple(like.shape), dtype=like.dtype, device=like.device, exact=exact, layouts=("contiguous",))


# ---- shape strategies, one per rule ---------------------------------------------------------------

def matmul_shapes(max_batch_dims: int = 2) -> st.SearchStrategy[tuple[Shape, Shape]]:
    """Shapes of ``torch.matmul``: 1-D operands and broadcast batch dimensions included."""
    return hnp.mutually_broadcastable_shapes(
        signature=MATMUL_SIGNATURE, max_dims=max_batch_dims, min_side=0, max_side=MAX_SIDE
    ).map(lambda b: tuple(b.input_shapes))


def mm_shapes() -> st.SearchStrategy[tuple[Shape, Shape]]:
    return st.tuples(sides(), sides(), sides()).map(lambda mkp: ((mkp[0], mkp[1]), (mkp[1], mkp[2])))


def bmm_shapes() -> st.SearchStrategy[tuple[Shape, Shape]]:
    return st.tuples(sides(), sides(), sides(), sides()).map(lambda s: ((s[0], s[1], s[2]), (s[0], s[2], s[3])))


def mv_shapes() -> st.SearchStrategy[tuple[Shape, Shape]]:
    return st.tuples(sides(), sides()).map(lambda mk: ((mk[0], mk[1]), (mk[1],)))


def dot_shapes() -> st.SearchStrategy[tuple[Shape, Shape]]:
    return sides().map(lambda n: ((n,), (n,)))


def outer_shapes() -> st.SearchStrategy[tuple[Shape, Shape]]:
    return st.tuples(sides(), sides()).map(lambda mp: ((mp[0],), (mp[1],)))


def linear_shapes() -> st.SearchStrategy[tuple[Shape, Shape, Shape]]:
    """x: (*batch, in), W: (out, in), b: (out,) with zero to two batch dimensions."""
    batch = hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=MAX_SIDE)
    return st.tuples(batch, sides(), sides()).map(lambda s: ((*s[0], s[1]), (s[2], s[1]), (s[2],)))


@st.composite
def shapes_broadcasting_to(draw: st.DrawFn, target: Shape) -> Shape:
    """A shape that ``expand`` can stretch to ``target``: its trailing dims, each kept or set to 1.
    (``hnp.broadcastable_shapes`` is symmetric — its shapes may broadcast *with* target to something larger.)"""
    ndim = draw(st.integers(0, len(target)))
    kept = target[len(target) - ndim:]
    return tuple(size if draw(st.booleans()) else 1 for size in kept)


@st.composite
def addmm_shapes(draw: st.DrawFn) -> tuple[Shape, Shape, Shape]:
    """input broadcastable to (n, p); m1: (n, k); m2: (k, p)."""
    n, k, p = draw(sides()), draw(sides()), draw(sides())
    bias = draw(shapes_broadcasting_to((n, p)))
    return (bias, (n, k), (k, p))


@st.composite
def expand_shapes(draw: st.DrawFn) -> tuple[Shape, Shape]:
    """b broadcastable to a target shape, and a tensor of the target shape (the seed's ``b.expand_as(y)``)."""
    target = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=MAX_SIDE))
    b = draw(shapes_broadcasting_to(target))
    return (b, target)


def mul_shapes() -> st.SearchStrategy[tuple[Shape, Shape]]:
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=MAX_SIDE).map(
        lambda b: tuple(b.input_shapes)
    )


def reduce_shapes(*, last_sides: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[tuple[Shape]]:
    """One shape with at least one dimension; ``last_sides`` restricts the reduced (last) dimension."""
    last = last_sides if last_sides is not None else sides()
    lead = hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=MAX_SIDE)
    return st.tuples(lead, last).map(lambda s: ((*s[0], s[1]),))


def same_shapes(count: int) -> st.SearchStrategy[tuple[Shape, ...]]:
    return hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=MAX_SIDE).map(lambda s: (s,) * count)


@st.composite
def linreg_shapes(draw: st.DrawFn) -> tuple[Shape, Shape, Shape, Shape]:
    """x: (n, k), w: (k, m), b: (m,) — or the seed's (1, 1) when m = 1 — and y: (n, m)."""
    n, k, m = draw(sides()), draw(sides()), draw(sides())
    b = (1, 1) if m == 1 and draw(st.booleans()) else (m,)
    return ((n, k), (k, m), b, (n, m))


# ---- public operand strategies -------------------------------------------------------------------

def _operands_of(shapes: Callable[[], st.SearchStrategy[tuple[Shape, ...]]]):
    def strategy(
        dtype: torch.dtype | None = None, device: str | torch.device | None = None, exact: bool = False
    ) -> st.SearchStrategy[Operands]:
        return operands(shapes(), dtype=dtype, device=device, exact=exact)

    strategy.__name__ = shapes.__name__.replace("_shapes", "_operands")
    strategy.__doc__ = f"Operand tuples for shapes from ``{shapes.__name__}``."
    return strategy


matmul_operands = _operands_of(matmul_shapes)
mm_operands = _operands_of(mm_shapes)
bmm_operands = _operands_of(bmm_shapes)
mv_operands = _operands_of(mv_shapes)
dot_operands = _operands_of(dot_shapes)
outer_operands = _operands_of(outer_shapes)
linear_operands = _operands_of(linear_shapes)
addmm_operands = _operands_of(addmm_shapes)
expand_operands = _operands_of(expand_shapes)
mul_operands = _operands_of(mul_shapes)
sum_operands = _operands_of(reduce_shapes)
linreg_operands = _operands_of(linreg_shapes)


def mean_operands(
    dtype: torch.dtype | None = None, device: str | torch.device | None = None, exact: bool = False
) -> st.SearchStrategy[Operands]:
    """The reduced dimension is never empty (the mean of nothing is NaN); in exact mode it is a power
    of two, so that ``G/n`` is exact."""
    last = st.sampled_from([1, 2, 4]) if exact else sides(1)
    return operands(reduce_shapes(last_sides=last), dtype=dtype, device=device, exact=exact)


def squared_error_shapes() -> st.SearchStrategy[tuple[Shape, Shape]]:
    return same_shapes(2)


squared_error_operands = _operands_of(squared_error_shapes)
