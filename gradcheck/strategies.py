"""Hypothesis strategies for operands: shapes, dtypes, devices, values and memory layouts.

Small strategies that compose: ``tensors`` draws one tensor of a given shape; ``operands`` turns a
strategy of shape tuples into a strategy of tensor tuples; each rule's operand strategy is a shape
strategy passed through ``operands``. Values are bounded per dtype so that no correct computation
overflows, and subnormal inputs are flushed to zero (CUDA flushes them; the error model covers
underflow inside the computation but not denormal *inputs* that a device reads as zero).

Sizes. Every shape and operand strategy takes ``min_side`` / ``max_side`` (and, where an operand has
batch dimensions, ``max_batch_dims`` / ``max_batch_side``). A side is mostly drawn from
``min_side … min_side + 4`` and, one draw in ``LARGE_ODDS`` (3), from the whole range up to
``max_side``, tile edges (7, 8, 9, 15, 16, 17, 31, 32, 33, …) and ``max_side`` itself favoured: most
sides stay cheap, some reach the sizes where blocked kernels and long reductions go wrong, and shrinking
goes back to small shapes — to sides of 1 rather than 0 (an empty dimension is drawn one side in
``EMPTY_ODDS`` (16), as a corner case: an empty operand shows no values). Only the last two dimensions of a shape are sides;
dimensions before them are batch dimensions, drawn up to ``max_batch_side`` (default 4), so that a
shape's size grows as ``max_side²``, not faster.

``max_side=None`` (the default everywhere) means ``default_max_side()``, read when an example is drawn:
``GRADCHECK_MAX_SIDE`` if set, else the size of the active hypothesis profile (``gradcheck-ci``: 64,
``gradcheck-thorough``: 256; ``PROFILE_MAX_SIDE``), else 4.

Values. A tensor's first ``ELEMENTWISE_LIMIT`` (16) storage elements are drawn by hypothesis, and
shrinking reaches numbers people read: each is either a simple value (0, ±1, ±½, ±¼, ±¾ times the
tensor's scale; the shrinker's first choice) or a float in ``[-scale, scale]`` whose magnitude is 0 or at
least ``scale·TINY`` (no 5e-176). The elements past them repeat drawn ones, picked and signed by a
generator seeded from a drawn seed: a large tensor is dense and varied (hypothesis itself draws a few
dozen elements of a large array over a constant fill), its values are still the drawn ones (so they
shrink too), and each storage position keeps its value when a side shrinks, so that shrinking a size
keeps the failure.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcheck.devices import available_devices
from gradcheck.tolerance import FLOATING_DTYPES

Shape = tuple[int, ...]
Operands = tuple[torch.Tensor, ...]

SMALL_SIDE = 4  # most sides are drawn from min_side … min_side + SMALL_SIDE
DEFAULT_MAX_SIDE = 4  # outside gradcheck's ci and thorough profiles
PROFILE_MAX_SIDE: dict[str, int] = {"gradcheck-ci": 64, "gradcheck-thorough": 256}
MAX_SIDE_ENV = "GRADCHECK_MAX_SIDE"
LARGE_ODDS = 3  # one side in three is drawn from the whole range
EMPTY_ODDS = 16  # one side in sixteen is empty (an operand with any empty side checks no values)
DEFAULT_MAX_BATCH_SIDE = 4
TINY = 1e-6  # magnitudes below scale·TINY are flushed to zero
ELEMENTWISE_LIMIT = 16  # storage elements drawn one by one; the rest repeat them at seeded positions

EXACT_RANGE = 4
LAYOUTS = ("contiguous", "transposed", "strided", "expanded")
# Per-tensor magnitudes: tensors of different scales in one example make cancellation-prone sums.
# 1.0 first, so that shrinking reaches it. float16 stops at 2 (and large float16 tensors at smaller
# scales, see _scales_for) so that 0.5·Σ(x·w + b − y)² stays far below 65504.
SCALES: dict[torch.dtype, tuple[float, ...]] = {
    torch.float64: (1.0, 1e-1, 1e1, 1e-3, 1e3),
    torch.float32: (1.0, 1e-1, 1e1, 1e-3, 1e3),
    torch.bfloat16: (1.0, 1e-1, 1e1, 1e-3, 1e3),
    torch.float16: (1.0, 1e-1, 2.0, 1e-2),
}
SCALES |= {torch.complex128: SCALES[torch.float64], torch.complex64: SCALES[torch.float32]}  # per part
SIMPLE_VALUES = (0.0, 1.0, -1.0, 0.5, -0.5, 0.25, -0.25, 0.75, -0.75)  # times the scale


def default_max_side(profile: str | None = None) -> int:
    """The largest side a strategy draws when none is given: ``GRADCHECK_MAX_SIDE`` if set; else the
    size of ``profile`` (default: the hypothesis profile loaded now) in ``PROFILE_MAX_SIDE``; else 4."""
    text = os.environ.get(MAX_SIDE_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(f"{MAX_SIDE_ENV}={text!r}: expected a non-negative integer")
        return value
    name = profile if profile is not None else settings.get_current_profile_name()
    return PROFILE_MAX_SIDE.get(name, DEFAULT_MAX_SIDE)


def _resolve(min_side: int, max_side: int | None) -> int:
    """``max_side``, or the default when None (raised to ``min_side`` if that is larger)."""
    return max_side if max_side is not None else max(default_max_side(), min_side)


def _check_sizes(min_side: int, max_side: int | None, max_batch_side: int = DEFAULT_MAX_BATCH_SIDE) -> None:
    if min_side < 0 or (max_side is not None and max_side < min_side) or max_batch_side < 0:
        raise ValueError(f"sizes: expected 0 ≤ min_side ≤ max_side and max_batch_side ≥ 0, got min_side={min_side}, "
                         f"max_side={max_side}, max_batch_side={max_batch_side}")


def dtypes() -> st.SearchStrategy[torch.dtype]:
    return st.sampled_from(FLOATING_DTYPES)


def devices() -> st.SearchStrategy[str]:
    return st.sampled_from(available_devices())


# Strategies are built once per distinct argument tuple: hypothesis validates each new strategy object
# on its first draw, which costs more than the draw itself.
@functools.cache
def _choice(options: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(options)


@functools.cache
def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


_BOOLEANS = st.booleans()


@functools.cache
def _large_sides(low: int, high: int) -> st.SearchStrategy[int]:
    """``low … high``, or a side either side of a power of two from 8 on (where blocked kernels change tiles)
    or ``high``."""
    edges = {p + d for j in range(3, high.bit_length() + 1) for p in [2**j] for d in (-1, 0, 1)} | {high}
    return st.integers(low, high) | st.sampled_from(sorted(e for e in edges if low <= e <= high))


@functools.cache  # one strategy object per size range: a new one is validated again on its first draw
def sides(min_side: int = 0, max_side: int | None = None) -> st.SearchStrategy[int]:
    """A side: mostly ``min_side … min_side + SMALL_SIDE``, one draw in ``LARGE_ODDS`` anywhere up to
    ``max_side`` (tile edges and ``max_side`` favoured); shrinks towards ``min_side``. The large range
    starts at ``min_side`` too, so that the shrinker can walk a large side down without first having to
    switch ranges (which would reread the side's value in the other range)."""
    _check_sizes(min_side, max_side)

    @st.composite
    def side(draw: st.DrawFn) -> int:
        top = _resolve(min_side, max_side)
        # Empty: a corner case of its own draw, which shrinking leaves (the side is drawn either way, so
        # that both paths make as many choices and the shrinker's shortlex order prefers the nonempty).
        can_be_empty = min_side == 0 and top >= 1
        empty = can_be_empty and draw(_integers(0, EMPTY_ODDS - 1), label="empty side") == EMPTY_ODDS - 1
        low = 1 if can_be_empty else min_side
        small_top = min(top, low + SMALL_SIDE)
        if top > small_top and draw(_integers(0, LARGE_ODDS - 1), label="large side") == LARGE_ODDS - 1:
            value = int(draw(_large_sides(low, top), label="side"))
        else:
            value = int(draw(_integers(low, small_top), label="side"))
        return 0 if empty else value

    return side()


def _one_first(value: int, low: int, high: int) -> int:
    """Swap 0 and 1 when both are in range: hypothesis shrinks (and, generating, leans) towards the bottom
    of a range, and an empty dimension is a corner case to reach, not the simplest example — an empty
    operand shows no values, and in generation it would hide the other sides' sizes."""
    if low == 0 and high >= 1 and value in (0, 1):
        return 1 - value
    return value


@functools.cache
def batch_sides(min_side: int = 0, max_batch_side: int = DEFAULT_MAX_BATCH_SIDE) -> st.SearchStrategy[int]:
    """A batch dimension's size: ``min_side … max(min_side, max_batch_side)``, 1 before 0 (``_one_first``)."""
    top = max(min_side, max_batch_side)
    return st.integers(min_side, top).map(lambda value: _one_first(value, min_side, top))


def array_shapes(
    min_dims: int = 0,
    max_dims: int = 3,
    *,
    min_side: int = 0,
    max_side: int | None = None,
    max_batch_side: int = DEFAULT_MAX_BATCH_SIDE,
) -> st.SearchStrategy[Shape]:
    """A shape of ``min_dims … max_dims`` dimensions: the last two are ``sides``, any before them
    batch dimensions."""
    _check_sizes(min_side, max_side, max_batch_side)
    side, batch_side = sides(min_side, max_side), batch_sides(min_side, max_batch_side)

    @st.composite
    def shape(draw: st.DrawFn) -> Shape:
        ndim = draw(_integers(min_dims, max_dims), label="ndim")
        batch = [draw(batch_side) for _ in range(max(ndim - 2, 0))]
        return (*batch, *(draw(side) for _ in range(min(ndim, 2))))

    return shape()


@functools.cache
def values(dtype: torch.dtype, *, exact: bool = False, scale: float = 1.0) -> st.SearchStrategy[float]:
    """Element values: small integers in exact mode; else a simple value (0, ±1, ±½, … times ``scale``;
    the shrinker's first choice) or a float in ``[-scale, scale]`` that is 0 or at least ``scale·TINY`` in
    magnitude."""
    if exact:
        return st.integers(-EXACT_RANGE, EXACT_RANGE).map(float)
    simple = st.sampled_from(SIMPLE_VALUES).map(lambda v: v * scale)
    floats = st.floats(-scale, scale, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return simple | floats.map(lambda x: 0.0 if abs(x) < scale * TINY else x)


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


def _scales_for(dtype: torch.dtype, numel: int) -> tuple[float, ...]:
    """The dtype's scales; for float16, those with ``scale·√numel ≤ 8``, so that sums of squares over
    large operands stay below 65504 (at least the smallest scale)."""
    scales = SCALES[dtype]
    if dtype != torch.float16:
        return scales
    fitting = tuple(s for s in scales if s * math.sqrt(max(numel, 1)) <= 8)
    return fitting or (min(scales),)


@functools.lru_cache(maxsize=4096)
def _arrays(shape: Shape, dtype: torch.dtype, exact: bool, spread: float) -> st.SearchStrategy[np.ndarray]:
    elements = values(dtype, exact=exact, scale=spread)
    return hnp.arrays(np.float64, shape, elements=elements, fill=elements)


def _spread_out(drawn: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` values: ``drawn`` itself, then its elements again at seeded positions with seeded signs."""
    if size <= drawn.size:
        return drawn
    # One stream, read in order: position t's pick and sign depend on the seed and t, not on the size.
    picks = np.random.default_rng(seed).integers(0, 2 * drawn.size, size - drawn.size)
    rest = drawn[picks // 2] * np.where(picks % 2 == 0, 1.0, -1.0)
    return np.concatenate([drawn, rest])


def _draw_tensor(draw: st.DrawFn, shape: Shape, dtype: torch.dtype, device: str | torch.device, exact: bool,
                 layouts: Sequence[str]) -> torch.Tensor:
    scale = 1.0 if exact else draw(_choice(_scales_for(dtype, math.prod(shape))), label="scale")
    layout = draw(_choice(tuple(name for name in _layouts_for(shape) if name in layouts)), label="layout")
    # Clustered values (c ± a thousandth of c) make sums such as G·Bᵀ cancel, where bounds are tested hardest.
    centers = (0.0, 0.0, 0.0, scale, -scale) + ((1j * scale, -1j * scale) if dtype.is_complex else ())
    center = 0.0 if exact else draw(_choice(centers), label="center")
    spread = scale if center == 0.0 else scale * 1e-3
    storage_shape = _storage_shape(shape, layout)
    size = math.prod(storage_shape)
    drawn = draw(_arrays((min(size, ELEMENTWISE_LIMIT),), dtype, exact, spread), label="values")
    if dtype.is_complex:  # the imaginary parts drawn as the real ones: each part zero, simple or any, either sign
        drawn = drawn + 1j * draw(_arrays((min(size, ELEMENTWISE_LIMIT),), dtype, exact, spread), label="imaginary parts")
    seed = draw(_integers(0, 2**32 - 1), label="positions seed")
    storage = _spread_out(drawn, size, seed).reshape(storage_shape)
    storage = np.asarray(storage + center)
    t = _flush_subnormals(torch.from_numpy(storage).to(dtype=dtype, device=device))  # rounding may make subnormals
    view = _view(t, shape, layout)
    assert view.shape == shape, (view.shape, shape, layout)
    return view


def _flush_subnormals(t: torch.Tensor) -> torch.Tensor:
    parts = torch.view_as_real(t) if t.is_complex() else t  # a complex number's parts one by one
    parts = torch.where(parts.abs() < torch.finfo(t.dtype).tiny, torch.zeros_like(parts), parts)
    return torch.view_as_complex(parts) if t.is_complex() else parts


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
    return _draw_tensor(draw, tuple(shape), dtype, device, exact, tuple(layouts))


ShapeStrategy = st.SearchStrategy[tuple[Shape, ...]]


def operands(
    shapes: ShapeStrategy | Callable[..., ShapeStrategy],
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    exact: bool = False,
    **sizes: Any,
) -> st.SearchStrategy[Operands]:
    """Tensors for a strategy of shape tuples, all of one dtype and device (drawn when not given).

    ``shapes`` is a strategy, or a shape-strategy function such as ``mm_shapes``, called with ``sizes``
    (``min_side=``, ``max_side=``, and ``max_batch_dims=`` / ``max_batch_side=`` where it has them).
    ``exact=True`` draws small integer-valued float64 tensors (Gaussian integers with
    ``dtype=torch.complex128``), on which the matmul family, the squared loss and a step-1 central
    difference are computed without rounding. A complex ``dtype`` draws both parts of every element.
    """
    if exact and dtype not in (None, torch.float64, torch.complex128):
        raise ValueError(f"exact operands are float64 (or complex128); got dtype={dtype}")
    if isinstance(shapes, st.SearchStrategy):
        if sizes:
            raise TypeError(f"operands: sizes ({', '.join(sizes)}) go to a shape-strategy function, not to a strategy")
        shape_strategy = shapes
    else:
        shape_strategy = shapes(**sizes)
    dtype_strategy = st.just(dtype or torch.float64) if exact else (st.just(dtype) if dtype is not None else dtypes())
    device_strategy = st.just(device) if device is not None else devices()

    @st.composite
    def draw_operands(draw: st.DrawFn) -> Operands:
        chosen_dtype = draw(dtype_strategy, label="dtype")
        chosen_device = draw(device_strategy, label="device")
        shape_tuple = draw(shape_strategy, label="shapes")
        return tuple(_draw_tensor(draw, shape, chosen_dtype, chosen_device, exact, LAYOUTS) for shape in shape_tuple)

    return draw_operands()


def cotangents(like: torch.Tensor, *, exact: bool = False) -> st.SearchStrategy[torch.Tensor]:
    """A cotangent for an output ``like``: drawn values, never all ones (that hides a backward that ignores it)."""
    return tensors(tuple(like.shape), dtype=like.dtype, device=like.device, exact=exact, layouts=("contiguous",))


# ---- shape strategies, one per rule ---------------------------------------------------------------
# Each takes min_side / max_side; those with batch dimensions also max_batch_dims / max_batch_side.

@st.composite
def shapes_broadcasting_to(draw: st.DrawFn, target: Shape) -> Shape:
    """A shape that ``expand`` can stretch to ``target``: its trailing dims (half the time all of them), each
    kept or set to 1; shrinks towards ``target`` itself, no broadcasting.
    (``hnp.broadcastable_shapes`` is symmetric — its shapes may broadcast *with* target to something larger.)"""
    drop, dropped = draw(_BOOLEANS), draw(_integers(0, len(target)))
    kept = target[dropped if drop else 0:]
    return tuple(1 if draw(_BOOLEANS) else size for size in kept)


@st.composite
def matmul_shapes(
    draw: st.DrawFn,
    max_batch_dims: int = 2,
    *,
    min_side: int = 0,
    max_side: int | None = None,
    max_batch_side: int = DEFAULT_MAX_BATCH_SIDE,
) -> tuple[Shape, Shape]:
    """Shapes of ``torch.matmul``: 1-D operands and broadcast batch dimensions included."""
    m, n, p = (draw(sides(min_side, max_side)) for _ in range(3))
    batch_side = batch_sides(min_side, max_batch_side)
    batch = tuple(draw(batch_side) for _ in range(draw(_integers(0, max_batch_dims))))
    a = (n,) if draw(_BOOLEANS) else (*draw(shapes_broadcasting_to(batch)), m, n)
    b = (n,) if draw(_BOOLEANS) else (*draw(shapes_broadcasting_to(batch)), n, p)
    return (a, b)


def mm_shapes(*, min_side: int = 0, max_side: int | None = None) -> st.SearchStrategy[tuple[Shape, Shape]]:
    side = sides(min_side, max_side)
    return st.tuples(side, side, side).map(lambda mkp: ((mkp[0], mkp[1]), (mkp[1], mkp[2])))


def bmm_shapes(
    *, min_side: int = 0, max_side: int | None = None, max_batch_side: int = DEFAULT_MAX_BATCH_SIDE
) -> st.SearchStrategy[tuple[Shape, Shape]]:
    side = sides(min_side, max_side)
    return st.tuples(batch_sides(min_side, max_batch_side), side, side, side).map(
        lambda s: ((s[0], s[1], s[2]), (s[0], s[2], s[3])))


def mv_shapes(*, min_side: int = 0, max_side: int | None = None) -> st.SearchStrategy[tuple[Shape, Shape]]:
    side = sides(min_side, max_side)
    return st.tuples(side, side).map(lambda mk: ((mk[0], mk[1]), (mk[1],)))


def dot_shapes(*, min_side: int = 0, max_side: int | None = None) -> st.SearchStrategy[tuple[Shape, Shape]]:
    return sides(min_side, max_side).map(lambda n: ((n,), (n,)))


def outer_shapes(*, min_side: int = 0, max_side: int | None = None) -> st.SearchStrategy[tuple[Shape, Shape]]:
    side = sides(min_side, max_side)
    return st.tuples(side, side).map(lambda mp: ((mp[0],), (mp[1],)))


def linear_shapes(
    max_batch_dims: int = 2,
    *,
    min_side: int = 0,
    max_side: int | None = None,
    max_batch_side: int = DEFAULT_MAX_BATCH_SIDE,
) -> st.SearchStrategy[tuple[Shape, Shape, Shape]]:
    """x: (*batch, in), W: (out, in), b: (out,) with zero to ``max_batch_dims`` batch dimensions."""
    x = array_shapes(1, 1 + max_batch_dims, min_side=min_side, max_side=max_side, max_batch_side=max_batch_side)
    return st.tuples(x, sides(min_side, max_side)).map(lambda s: (s[0], (s[1], s[0][-1]), (s[1],)))


def addmm_shapes(*, min_side: int = 0, max_side: int | None = None) -> st.SearchStrategy[tuple[Shape, Shape, Shape]]:
    """input broadcastable to (n, p); m1: (n, k); m2: (k, p)."""
    side = sides(min_side, max_side)

    @st.composite
    def shapes(draw: st.DrawFn) -> tuple[Shape, Shape, Shape]:
        n, k, p = draw(side), draw(side), draw(side)
        return (draw(shapes_broadcasting_to((n, p))), (n, k), (k, p))

    return shapes()


def expand_shapes(
    *, min_side: int = 0, max_side: int | None = None, max_batch_side: int = DEFAULT_MAX_BATCH_SIDE
) -> st.SearchStrategy[tuple[Shape, Shape]]:
    """b broadcastable to a target shape, and a tensor of the target shape (the seed's ``b.expand_as(y)``)."""
    target = array_shapes(1, 3, min_side=min_side, max_side=max_side, max_batch_side=max_batch_side)
    return target.flatmap(lambda t: shapes_broadcasting_to(t).map(lambda b: (b, t)))


def mul_shapes(
    *, min_side: int = 0, max_side: int | None = None, max_batch_side: int = DEFAULT_MAX_BATCH_SIDE
) -> st.SearchStrategy[tuple[Shape, Shape]]:
    """A and B mutually broadcastable: each a broadcastable-to shape of one drawn target."""
    target = array_shapes(0, 3, min_side=min_side, max_side=max_side, max_batch_side=max_batch_side)
    return target.flatmap(lambda t: st.tuples(shapes_broadcasting_to(t), shapes_broadcasting_to(t)))


def reduce_shapes(
    *,
    last_sides: st.SearchStrategy[int] | None = None,
    min_side: int = 0,
    max_side: int | None = None,
    max_batch_side: int = DEFAULT_MAX_BATCH_SIDE,
) -> st.SearchStrategy[tuple[Shape]]:
    """One shape with one to three dimensions; ``last_sides`` replaces the reduced (last) dimension's."""
    shape = array_shapes(1, 3, min_side=min_side, max_side=max_side, max_batch_side=max_batch_side)
    if last_sides is None:
        return shape.map(lambda s: (s,))
    return st.tuples(shape, last_sides).map(lambda s: ((*s[0][:-1], s[1]),))


def same_shapes(
    count: int, *, min_side: int = 0, max_side: int | None = None, max_batch_side: int = DEFAULT_MAX_BATCH_SIDE
) -> st.SearchStrategy[tuple[Shape, ...]]:
    return array_shapes(0, 3, min_side=min_side, max_side=max_side, max_batch_side=max_batch_side).map(
        lambda s: (s,) * count)


def squared_error_shapes(
    *, min_side: int = 0, max_side: int | None = None, max_batch_side: int = DEFAULT_MAX_BATCH_SIDE
) -> st.SearchStrategy[tuple[Shape, ...]]:  # two equal shapes
    return same_shapes(2, min_side=min_side, max_side=max_side, max_batch_side=max_batch_side)


def linreg_shapes(*, min_side: int = 0, max_side: int | None = None) -> st.SearchStrategy[tuple[Shape, Shape, Shape, Shape]]:
    """x: (n, k), w: (k, m), b: (m,) — or the seed's (1, 1) when m = 1 — and y: (n, m)."""
    side = sides(min_side, max_side)

    @st.composite
    def shapes(draw: st.DrawFn) -> tuple[Shape, Shape, Shape, Shape]:
        n, k, m = draw(side), draw(side), draw(side)
        b = (1, 1) if m == 1 and draw(_BOOLEANS) else (m,)
        return ((n, k), (k, m), b, (n, m))

    return shapes()


def powers_of_two(min_side: int = 1, max_side: int | None = None) -> st.SearchStrategy[int]:
    """Powers of two in ``max(1, min_side) … max_side``: mostly up to 4, one draw in ``LARGE_ODDS`` any."""
    _check_sizes(min_side, max_side)

    @st.composite
    def power(draw: st.DrawFn) -> int:
        top = _resolve(min_side, max_side)
        powers: list[int] = [2**j for j in range(top.bit_length()) if max(min_side, 1) <= 2**j <= top]
        if not powers:
            raise ValueError(f"no power of two in {min_side}…{top}")
        small = [p for p in powers if p <= max(min_side, 1) * SMALL_SIDE]
        if len(powers) > len(small) and draw(_integers(0, LARGE_ODDS - 1), label="large side") == LARGE_ODDS - 1:
            return int(draw(_choice(tuple(powers))))  # int(): _choice is cached, so its strategy is typed Any
        return int(draw(_choice(tuple(small))))

    return power()


# ---- public operand strategies -------------------------------------------------------------------

def _operands_of(shapes: Callable[..., ShapeStrategy]) -> Callable[..., st.SearchStrategy[Operands]]:
    def strategy(
        dtype: torch.dtype | None = None, device: str | torch.device | None = None, exact: bool = False, **sizes: int
    ) -> st.SearchStrategy[Operands]:
        return operands(shapes, dtype=dtype, device=device, exact=exact, **sizes)

    name = shapes.__name__.replace("_shapes", "_operands")
    strategy.__name__ = strategy.__qualname__ = name  # picklable by name (the survey's worker processes)
    strategy.__doc__ = (f"Operand tuples for shapes from ``{shapes.__name__}``; ``sizes`` are its keyword arguments "
                        "(``min_side``, ``max_side``, and the batch limits where it has them).")
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
sum_operands.__name__ = sum_operands.__qualname__ = "sum_operands"
squared_error_operands = _operands_of(squared_error_shapes)
linreg_operands = _operands_of(linreg_shapes)


def mean_operands(
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    exact: bool = False,
    *,
    min_side: int = 0,
    max_side: int | None = None,
    max_batch_side: int = DEFAULT_MAX_BATCH_SIDE,
) -> st.SearchStrategy[Operands]:
    """The reduced dimension is never empty (the mean of nothing is NaN); in exact mode it is a power
    of two, so that ``G/n`` is exact."""
    last = powers_of_two(min_side, max_side) if exact else sides(max(min_side, 1), max_side)
    return operands(reduce_shapes(last_sides=last, min_side=min_side, max_side=max_side, max_batch_side=max_batch_side),
                    dtype=dtype, device=device, exact=exact)
