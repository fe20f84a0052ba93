"""The strategies reach the hard cases — empty, size-1 and maximal sides, every broadcasting pattern,
1-D and batched matmul operands, every non-contiguous layout and dtype, negative values — stay within
their sizes, take their default size from the hypothesis profile, and shrink to small shapes and
simple values. Every search is seeded."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from _gradcheck_pytestplugin import register_profiles
from gradcheck import strategies as S
from gradcheck.rules import RULES, rule_named
from gradcheck.tolerance import FLOATING_DTYPES

RULE_IDS = [rule.name for rule in RULES]
M = 24  # a maximum side for reachability: past a tile of 16, cheap to draw


def SEEDED(max_examples: int) -> settings:
    """Settings for a property test: the same examples every run, whatever the profile."""
    return settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def reaches(strategy, predicate, max_examples: int = 400) -> bool:
    """Whether hypothesis draws an example satisfying ``predicate`` from ``strategy`` (seeded, no shrinking)."""
    search = settings(database=None, max_examples=max_examples, phases=[Phase.generate], deadline=None)
    try:
        find(strategy, predicate, settings=search, random=random.Random(0))
    except NoSuchExample:
        return False
    return True


def minimal(strategy, predicate):
    """The example hypothesis shrinks to (seeded)."""
    return find(strategy, predicate, settings=settings(database=None, max_examples=400, deadline=None),
                random=random.Random(0))


def f64(rule_name: str, **sizes):
    return rule_named(rule_name).operands(dtype=torch.float64, device="cpu", **sizes)


# Each rule's operands are its shape strategy passed through ``operands``; sizes and broadcasting are
# properties of the shapes, which are much cheaper to draw than tensors.
SHAPES = {
    "mm": S.mm_shapes, "matmul": S.matmul_shapes, "bmm": S.bmm_shapes, "mv": S.mv_shapes, "dot": S.dot_shapes,
    "outer": S.outer_shapes, "linear": S.linear_shapes, "addmm": S.addmm_shapes, "expand": S.expand_shapes,
    "mul": S.mul_shapes, "sum": S.reduce_shapes, "squared_error": S.squared_error_shapes,
    "linear_regression": S.linreg_shapes,
    "mean": lambda max_side: S.reduce_shapes(last_sides=S.sides(1, max_side), max_side=max_side),
}


def test_every_rule_has_its_shape_strategy():
    assert set(SHAPES) == {rule.name for rule in RULES}


@pytest.fixture
def no_size_variable(monkeypatch):
    monkeypatch.delenv(S.MAX_SIDE_ENV, raising=False)


# ---- sizes ----------------------------------------------------------------------------------------

def test_reaches_can_say_no():
    assert not reaches(S.mm_shapes(max_side=4), lambda ab: ab[0][0] > 4, max_examples=100)


@SEEDED(max_examples=60)
@given(st.data())
def test_every_rule_stays_within_its_sizes(data):
    rule = data.draw(st.sampled_from(RULES), label="rule")
    max_side = data.draw(st.integers(1, 40), label="max_side")
    for t in data.draw(f64(rule.name, max_side=max_side), label="operands"):
        assert all(side <= max_side for side in t.shape[-2:]), (rule.name, t.shape)
        assert all(side <= S.DEFAULT_MAX_BATCH_SIDE for side in t.shape[:-2]), (rule.name, t.shape)


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_every_rule_reaches_sides_zero_one_and_the_maximum(rule):
    strategy = SHAPES[rule.name](max_side=M)
    for size in (0, 1, M):
        assert reaches(strategy, lambda shapes, size=size: any(size in shape for shape in shapes)), (rule.name, size)


def test_each_mm_side_reaches_zero_one_and_the_maximum():
    strategy = S.mm_shapes(max_side=M)
    sides = {"m": lambda ab: ab[0][0], "k": lambda ab: ab[0][1], "p": lambda ab: ab[1][1]}
    for name, side in sides.items():
        for size in (0, 1, M):
            assert reaches(strategy, lambda ab, side=side, size=size: side(ab) == size), (name, size)


def test_min_side_keeps_dimensions_nonempty():
    assert not reaches(S.matmul_shapes(min_side=1, max_side=M), lambda ab: any(0 in shape for shape in ab), max_examples=100)


def test_shrinking_goes_to_the_smallest_shape_past_a_tile():
    assert minimal(S.mm_shapes(max_side=64), lambda ab: ab[0][1] > 16) == ((1, 17), (17, 1))


def test_sides_shrink_to_one_and_still_reach_zero():
    assert minimal(S.sides(max_side=64), lambda n: True) == 1
    assert minimal(S.sides(max_side=64), lambda n: n < 1) == 0


def test_bad_sizes_are_refused():
    for make in (lambda: S.sides(5, 3), lambda: S.mm_operands(max_side=-1), lambda: S.array_shapes(min_side=-1)):
        with pytest.raises(ValueError, match="min_side"):
            make()
    with pytest.raises(TypeError, match="shape-strategy function"):
        S.operands(S.mm_shapes(), max_side=8)


def test_operands_pass_sizes_to_a_shape_function():
    assert reaches(S.operands(S.mm_shapes, dtype=torch.float64, device="cpu", max_side=M), lambda ab: ab[0].shape[0] > 4)
    assert not reaches(S.operands(S.mm_shapes, dtype=torch.float64, device="cpu", max_side=2), lambda ab: ab[0].shape[0] > 2,
                       max_examples=50)


# ---- the profile's default size -------------------------------------------------------------------

def test_profiles_choose_the_default_maximum(no_size_variable):
    assert S.default_max_side("gradcheck-dev") == S.default_max_side("default") == 4
    assert S.default_max_side("gradcheck-ci") == 64
    assert S.default_max_side("gradcheck-thorough") == 256


def test_the_variable_overrides_every_profile(monkeypatch):
    monkeypatch.setenv(S.MAX_SIDE_ENV, "100")
    assert S.default_max_side("gradcheck-ci") == S.default_max_side("gradcheck-dev") == 100
    monkeypatch.setenv(S.MAX_SIDE_ENV, "big")
    with pytest.raises(ValueError, match=S.MAX_SIDE_ENV):
        S.default_max_side()


def test_the_loaded_profile_sizes_strategies_built_before_it(no_size_variable):
    """``max_side=None`` is read when an example is drawn, from the profile loaded then."""
    register_profiles()
    previous = settings.get_current_profile_name()
    strategy = S.mm_shapes()
    try:
        settings.load_profile("gradcheck-dev")
        assert not reaches(strategy, lambda ab: ab[0][0] > 4, max_examples=200)
        settings.load_profile("gradcheck-ci")
        assert reaches(strategy, lambda ab: max(*ab[0], *ab[1]) == 64)
        settings.load_profile("gradcheck-thorough")
        assert reaches(strategy, lambda ab: max(*ab[0], *ab[1]) == 256)
    finally:
        settings.load_profile(previous)


# ---- broadcasting, layouts, dtypes ----------------------------------------------------------------

def _stretched(shape, target) -> bool:
    """``shape`` broadcasts to a strictly larger ``target``."""
    return tuple(shape) != tuple(target) and math.prod(target) > max(math.prod(shape), 1)


def test_mul_shapes_broadcast_both_ways():
    both = lambda ab: all(len(shape) and _stretched(shape, torch.broadcast_shapes(*ab)) for shape in ab)
    assert reaches(S.mul_shapes(max_side=M), both)
    assert reaches(S.mul_shapes(max_side=M), lambda ab: len(ab[0]) < len(ab[1]) == 3)


def test_matmul_shapes_include_1d_and_batched_operands():
    strategy = S.matmul_shapes(max_side=M)
    assert reaches(strategy, lambda ab: len(ab[0]) == 1 and len(ab[1]) >= 3)
    assert reaches(strategy, lambda ab: len(ab[1]) == 1 and len(ab[0]) >= 3)
    assert reaches(strategy, lambda ab: len(ab[0]) >= 3 and len(ab[1]) >= 3 and ab[0][:-2] != ab[1][:-2])
    assert reaches(strategy, lambda ab: len(ab[0]) == 2 and len(ab[1]) >= 3)


def test_addmm_bias_takes_every_broadcastable_shape():
    strategy = S.addmm_shapes(max_side=M)
    for bias in ("()", "(p,)", "(1, p)", "(n, 1)", "(n, p)"):
        def matches(shapes, bias=bias):
            i, (n, _), (_, p) = shapes
            return n > 1 and p > 1 and i == eval(bias, {"n": n, "p": p})  # noqa: S307
        assert reaches(strategy, matches), bias


def test_expand_and_linear_have_leading_and_inner_broadcasts():
    assert reaches(S.expand_shapes(max_side=M), lambda bl: len(bl[0]) < len(bl[1]) and math.prod(bl[0]) > 1)
    assert reaches(S.expand_shapes(max_side=M), lambda bl: len(bl[0]) == len(bl[1]) == 3 and _stretched(*bl) and bl[0][-1] > 1)
    assert reaches(S.linear_shapes(max_side=M), lambda xwb: len(xwb[0]) == 3 and math.prod(xwb[0]) > 0)


LAYOUTS = {
    "expanded": lambda t: 0 in t.stride() and t.numel() > 1,
    "transposed": lambda t: t.ndim >= 2 and t.numel() > 1 and t.stride()[-1] != 1 and t.stride()[-2] == 1,
    "strided": lambda t: t.ndim >= 1 and t.numel() > 1 and t.shape[-1] > 1 and t.stride()[-1] == 2,
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_non_contiguous_layouts_occur(layout):
    is_layout = LAYOUTS[layout]
    for dtype in FLOATING_DTYPES:
        assert reaches(S.tensors((3, 2), dtype=dtype), lambda t: is_layout(t) and not t.is_contiguous()), dtype
    assert reaches(S.tensors((3, 20, 20)), is_layout)  # and above the element-wise limit


def test_every_dtype_is_drawn():
    for dtype in FLOATING_DTYPES:
        assert reaches(S.dot_operands(device="cpu", max_side=2), lambda ab, dtype=dtype: ab[0].dtype == dtype), dtype


@SEEDED(max_examples=40)
@given(S.linreg_operands(device="cpu", max_side=M))
def test_operands_share_a_dtype_and_stay_finite_and_normal(ops):
    assert len({t.dtype for t in ops}) == 1
    for t in ops:
        assert torch.isfinite(t).all()
        tiny = torch.finfo(t.dtype).tiny
        assert ((t == 0) | (t.abs() >= tiny)).all()


@SEEDED(max_examples=30)
@given(S.linreg_operands(dtype=torch.float16, device="cpu", max_side=64))
def test_large_float16_operands_keep_the_loss_in_range(ops):
    assert torch.isfinite(rule_named("linear_regression")(*ops))


# ---- values ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATING_DTYPES, ids=str)
def test_negative_values_occur_and_shrink_to_minus_one(dtype):
    t = minimal(S.tensors((3,), dtype=dtype), lambda t: bool((t < 0).any()))
    assert t.min() == -1 and set(t.tolist()) <= {0.0, -1.0}, t


def test_values_shrink_to_simple_numbers():
    t = minimal(S.tensors((2, 2)), lambda t: bool((t.abs() > 0.3).sum() >= 2))
    assert set(t.flatten().tolist()) <= set(S.SIMPLE_VALUES), t
    assert not reaches(S.values(torch.float64), lambda x: 0 < abs(x) < S.TINY, max_examples=200)


def test_large_tensors_are_dense_and_varied():
    """Past the 16 drawn elements, values repeat drawn ones at seeded positions with seeded signs."""
    def varied(t):
        values, counts = t.unique(return_counts=True)
        return values.numel() >= 12 and counts.max() < t.numel() // 2
    assert reaches(S.tensors((64, 64)), varied, max_examples=50)


def test_values_keep_their_positions_when_a_side_shrinks():
    """Storage position t holds the same value at any size: shrinking a side keeps what made a bug show."""
    @SEEDED(max_examples=20)
    @given(st.data())
    def check(data):
        seed = data.draw(st.integers(0, 2**32 - 1))
        drawn = np.arange(1.0, 17.0)
        assert np.array_equal(S._spread_out(drawn, 40, seed), S._spread_out(drawn, 100, seed)[:40])
    check()


@SEEDED(max_examples=40)
@given(S.mean_operands(device="cpu", exact=True, max_side=M))
def test_exact_operands_are_small_integers_and_means_divide_exactly(ops):
    (A,) = ops
    assert A.dtype == torch.float64 and torch.equal(A, A.round()) and (A.numel() == 0 or A.abs().max() <= S.EXACT_RANGE)
    n = A.shape[-1]
    assert n >= 1 and n & (n - 1) == 0


def test_exact_means_reach_a_long_power_of_two():
    assert reaches(S.mean_operands(device="cpu", exact=True, max_side=M), lambda ops: ops[0].shape[-1] == 16)


@SEEDED(max_examples=30)
@given(st.data())
def test_cotangents_match_their_output(data):
    out = torch.zeros(data.draw(st.sampled_from([(), (3,), (2, 0), (40, 40)])), dtype=data.draw(st.sampled_from(FLOATING_DTYPES)))
    G = data.draw(S.cotangents(out))
    assert G.shape == out.shape and G.dtype == out.dtype and G.is_contiguous()


def test_exact_operands_refuse_a_narrow_dtype():
    with pytest.raises(ValueError, match="float64"):
        S.mm_operands(dtype=torch.float32, exact=True)
