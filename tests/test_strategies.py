"""The strategies reach the hard cases — empty, size-1 and maximal sides, every broadcasting pattern,
1-D and batched matmul operands, every non-contiguous layout and dtype, negative values — stay within
their sizes, take their default size from the hypothesis profile, and shrink to small shapes and
simple values. Every search is seeded."""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from _gradcheck_pytestplugin import register_profiles
from gradcheck import strategies as S
from gradcheck.devices import available_devices
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


# ---- strategies built while a test runs -----------------------------------------------------------
# (A strategy built at import or collection — a module-level table, a @given argument — was built before
# any test ran; these build theirs in the test body, so that a change to the code that builds a
# strategy shows in a test: mutation testing switches such a change on per test.)

def _samples(strategy, n: int = 150) -> list:
    """``n`` seeded examples of ``strategy`` (no shrinking)."""
    found: list = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example):
        found.append(example)

    collect()
    return found


def _shapes_of(example):
    """The shapes in a shape-strategy example (a tuple of shapes, or one shape)."""
    return list(example) if example and isinstance(example[0], tuple) else [example]


@pytest.mark.parametrize(("name", "make", "principal", "ranks"), [
    ("array_shapes", lambda **k: S.array_shapes(**k).map(lambda s: (s,)), 0, (0, 3)),
    ("reduce_shapes", S.reduce_shapes, 0, (1, 3)),
    ("same_shapes", lambda **k: S.same_shapes(2, **k), 0, (0, 3)),
    ("squared_error_shapes", S.squared_error_shapes, 0, (0, 3)),
    ("mul_shapes", S.mul_shapes, None, (0, 3)),  # A and B broadcast to the target: the larger rank is its
    ("expand_shapes", S.expand_shapes, 1, (1, 3)),  # (b, target)
    ("linear_shapes", S.linear_shapes, 0, (1, 3)),  # x
    ("bmm_shapes", S.bmm_shapes, 0, (3, 3)),
])
def test_shape_strategies_reach_their_ranks_and_keep_every_size(name, make, principal, ranks):
    def rank(example):
        shapes = _shapes_of(example)
        return max(len(s) for s in shapes) if principal is None else len(shapes[principal])

    plain = make(max_side=5)
    assert {rank(e) for e in _samples(plain, n=120)} == set(range(ranks[0], ranks[1] + 1)), name
    assert reaches(plain, lambda e: any(0 in s for s in _shapes_of(e))), name  # min_side defaults to 0
    # min_side 2, max_side 3 bound every side, batch sides included (broadcast dimensions may be 1)
    bounded = _samples(make(min_side=2, max_side=3, max_batch_side=2), n=60)
    assert all(d == 1 or 2 <= d <= 3 for e in bounded for s in _shapes_of(e) for d in s), name
    assert any(d == 2 for e in bounded for s in _shapes_of(e) for d in s), name
    # max_batch_side 1: batch dimensions (before the last two) of at most 1, the sides still up to max_side
    small_batches = _samples(make(max_side=5, max_batch_side=1), n=60)
    assert all(d <= 1 for e in small_batches for s in _shapes_of(e) for d in s[:-2]), name
    assert any(d == 5 for e in small_batches for s in _shapes_of(e) for d in s[-2:]), name


def test_squared_error_shapes_are_two_equal_shapes():
    assert all(len(e) == 2 and e[0] == e[1] for e in _samples(S.squared_error_shapes(max_side=3), n=40))


def test_reduce_shapes_put_last_sides_in_place_of_the_last_dimension():
    examples = _samples(S.reduce_shapes(last_sides=st.just(7), max_side=3), n=80)
    assert {len(s) for (s,) in examples} == {1, 2, 3} and all(s[-1] == 7 and all(d <= 4 for d in s[:-1]) for (s,) in examples)


def test_matrix_vector_and_outer_sides_are_drawn_independently():
    assert reaches(S.bmm_shapes(max_side=4), lambda ab: ab[0][1] != ab[0][2])  # (b, m, k): m and k
    assert reaches(S.mv_shapes(max_side=4), lambda mv: mv[0][0] != mv[0][1])
    assert reaches(S.outer_shapes(max_side=4), lambda ab: ab[0][0] != ab[1][0])
    assert all(a[0] == b[0] and a[2] == b[1] for a, b in _samples(S.bmm_shapes(max_side=4), n=60))


def test_linear_shapes_take_their_batch_dimensions_from_the_argument():
    assert {len(x) for x, _, _ in _samples(S.linear_shapes(0, max_side=3), n=60)} == {1}
    assert {len(x) for x, _, _ in _samples(S.linear_shapes(max_side=3), n=200)} == {1, 2, 3}


def test_linreg_shapes_keep_their_sizes():
    examples = _samples(S.linreg_shapes(min_side=2, max_side=3), n=50)
    assert all(2 <= d <= 3 for e in examples for s in e for d in s)
    assert reaches(S.linreg_shapes(), lambda e: e[0][0] == 4, max_examples=100)
    assert not reaches(S.linreg_shapes(max_side=2), lambda e: e[0][0] > 2, max_examples=50)


def test_powers_of_two_start_at_one_by_default():
    with pytest.raises(ValueError, match="min_side=5, max_side=3"):
        S.powers_of_two(5, 3)
    assert set(_samples(S.powers_of_two(max_side=8), n=100)) == {1, 2, 4, 8}
    assert set(_samples(S.powers_of_two(3, 16), n=100)) <= {4, 8, 16}


def test_sizes_at_their_limits_are_accepted_and_past_them_refused():
    S.array_shapes(min_side=3, max_side=3, max_batch_side=0)  # min_side = max_side, no batch: fine
    S.array_shapes(min_side=3, max_side=5, max_batch_side=1)  # a batch limit below min_side: fine
    with pytest.raises(ValueError, match="max_batch_side=-1"):
        S.array_shapes(max_batch_side=-1)


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("7", 7), ("-1", None), ("many", None)])
def test_the_size_variable_takes_non_negative_integers(monkeypatch, text, expected):
    monkeypatch.setenv(S.MAX_SIDE_ENV, text)
    if expected is None:
        with pytest.raises(ValueError, match=f"{S.MAX_SIDE_ENV}='{text}': expected a non-negative integer"):
            S.default_max_side()
    else:
        assert S.default_max_side() == expected


def test_batch_sides_draw_one_before_zero():
    for top in (1, 3):
        assert minimal(S.batch_sides(0, top), lambda n: True) == 1
        assert set(_samples(S.batch_sides(0, top), n=100)) == set(range(top + 1))
    assert minimal(S.batch_sides(2, 3), lambda n: True) == 2


@pytest.mark.parametrize(("shape", "layouts"), [
    ((2, 3), ["contiguous", "transposed", "strided", "expanded"]),
    ((2, 3, 1), ["contiguous", "strided", "expanded"]),
    ((1, 3), ["contiguous", "strided"]),
    ((3, 1), ["contiguous", "strided", "expanded"]),
    ((2, 0), ["contiguous", "expanded"]),
    ((1,), ["contiguous", "strided"]),
    ((2,), ["contiguous", "strided", "expanded"]),
    ((0,), ["contiguous"]),
    ((), ["contiguous"]),
])
def test_layouts_a_shape_allows(shape, layouts):
    assert S._layouts_for(shape) == layouts


def test_an_expanded_batch_keeps_its_inner_dimensions():
    assert S._storage_shape((2, 3, 4), "expanded") == (1, 3, 4)
    (t,) = _samples(S.tensors((2, 3, 4), layouts=("expanded",)), n=1)
    assert t.shape == (2, 3, 4) and t.stride(0) == 0


@pytest.mark.parametrize(("numel", "scales"), [(1, (1.0, 1e-1, 2.0, 1e-2)), (16, (1.0, 1e-1, 2.0, 1e-2)),
                                               (18, (1.0, 1e-1, 1e-2)), (100, (1e-1, 1e-2)), (10**6, (1e-2,))])
def test_large_float16_tensors_get_only_the_scales_whose_squares_stay_in_range(numel, scales):
    assert S._scales_for(torch.float16, numel) == scales  # scale·√numel ≤ 8
    assert S._scales_for(torch.float64, numel) == S.SCALES[torch.float64]


def test_spread_out_repeats_every_drawn_value_with_both_signs():
    drawn = np.array([1.0, 2.0, 3.0, 4.0])
    assert S._spread_out(drawn, 4, 0) is drawn and S._spread_out(drawn, 3, 0) is drawn
    rest = S._spread_out(drawn, 4 + 400, 0)[4:]
    assert set(rest.tolist()) == {1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -4.0}
    assert np.array_equal(S._spread_out(drawn, 404, 0), S._spread_out(drawn, 404, 0))  # a function of the seed


def test_flushing_keeps_the_smallest_normal_number():
    tiny = torch.finfo(torch.float32).tiny
    assert S._flush_subnormals(torch.tensor([tiny, tiny / 2, -tiny / 4])).tolist() == [tiny, 0.0, 0.0]


def _within_scale_or_clustered(t) -> bool:
    """Values within one of the dtype's scales of 0, or within a thousandth of a scale of ±scale (±i·scale)."""
    v = t.detach().to(torch.complex128).flatten()
    for s in S.SCALES[t.dtype]:
        if bool((v.real.abs() <= s).all() and (v.imag.abs() <= s).all()):
            return True
        centers = (s, -s, 1j * s, -1j * s) if t.is_complex() else (s, -s)
        if any(bool(((v - c).abs() <= 1e-3 * s * 1.5).all()) for c in centers):
            return True
    return False


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
def test_tensors_are_centred_on_zero_or_clustered_at_plus_or_minus_their_scale(dtype):
    strategy = S.tensors((8,), dtype=dtype, layouts=("contiguous",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. no complex value cast to a real dtype on the way
        examples = _samples(strategy, n=150)
    assert all(_within_scale_or_clustered(t) for t in examples)
    for c in ((1, -1, 1j, -1j) if dtype.is_complex else (1, -1)):
        assert any(bool(((t - c * s).abs() <= 1e-3 * s * 1.5).all()) and (t - c * s).abs().max() > 0
                   for t in examples for s in S.SCALES[dtype] if s != 1.0), c


def test_tensors_replay_the_same_values_for_the_same_choices():
    strategy = S.tensors((6, 5), layouts=("contiguous",))  # 30 elements: 16 drawn, the rest spread out by a drawn seed
    first, again = _samples(strategy, n=5), _samples(strategy, n=5)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_operand_strategies_built_from_shapes_are_named_after_them_and_pass_their_options():
    made = S._operands_of(S.mm_shapes)
    assert made.__name__ == made.__qualname__ == "mm_operands" and "``mm_shapes``" in made.__doc__
    assert made.__doc__.endswith("keyword arguments (``min_side``, ``max_side``, and the batch limits where it has them).")
    ops = _samples(made(dtype=torch.float32, device="cpu", max_side=2), n=40)
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" and max(t.shape, default=0) <= 2 for ab in ops for t in ab)
    assert all(torch.equal(t, t.round()) for ab in _samples(made(exact=True, max_side=3), n=30) for t in ab)
    defaults = made(max_side=3)
    assert reaches(defaults, lambda ab: not torch.equal(ab[0], ab[0].round()))  # not exact by default
    assert reaches(defaults, lambda ab: ab[0].dtype != torch.float64)  # the dtype drawn when not given


def test_operands_default_to_inexact_drawn_dtypes_and_exact_ones_to_float64():
    assert reaches(S.operands(S.mm_shapes, max_side=3), lambda ab: ab[0].dtype == torch.bfloat16 and not torch.equal(ab[0], ab[0].round()))
    assert all(t.dtype == torch.float64 for ab in _samples(S.operands(S.mm_shapes, exact=True, max_side=3), n=40) for t in ab)
    with pytest.raises(TypeError, match=r"^operands: sizes \(min_side, max_side\) go to a shape-strategy function, not to a strategy$"):
        S.operands(S.mm_shapes(), min_side=1, max_side=8)


def test_mean_operands_never_reduce_an_empty_dimension_and_keep_their_sizes():
    plain = S.mean_operands(device="cpu", max_side=3)
    examples = _samples(plain, n=100)
    assert all(a.shape[-1] >= 1 and max(a.shape[-2:]) <= 3 for (a,) in examples)
    assert any(0 in a.shape for (a,) in examples) and {1, 3} <= {a.shape[-1] for (a,) in examples}
    assert reaches(plain, lambda ops: not torch.equal(ops[0], ops[0].round()))  # not exact by default
    assert all(min(a.shape) >= 2 for (a,) in _samples(S.mean_operands(device="cpu", min_side=2, max_side=3), n=40))
    assert all(a.dtype == torch.float32 for (a,) in _samples(S.mean_operands(torch.float32, "cpu", max_side=3), n=20))
    exact = _samples(S.mean_operands(device="cpu", exact=True, max_side=8), n=100)
    assert {a.shape[-1] for (a,) in exact} == {1, 2, 4, 8} and all(a.dtype == torch.float64 for (a,) in exact)
    assert all(a.shape[-1] <= 2 for (a,) in _samples(S.mean_operands(device="cpu", exact=True, max_side=2), n=30))
    assert all(d <= 1 for (a,) in _samples(S.mean_operands(device="cpu", max_side=3, max_batch_side=1), n=60) for d in a.shape[:-2])


def test_devices_and_cotangents():
    assert set(_samples(S.devices(), n=10)) == set(available_devices())
    like = torch.zeros(3, 2, dtype=torch.float32)
    assert reaches(S.cotangents(like), lambda g: not torch.equal(g, g.round()))  # not exact by default
    assert all(g.shape == (3, 2) and g.dtype == torch.float32 and g.is_contiguous() for g in _samples(S.cotangents(like), n=20))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: torch.cuda.is_available() is False")
def test_operands_stay_on_the_device_asked_for_and_draw_one_otherwise():
    assert all(t.device.type == "cpu" for ab in _samples(S.operands(S.mm_shapes, device="cpu", max_side=2), n=20) for t in ab)
    assert all(t.device.type == "cuda" for ab in _samples(S._operands_of(S.mm_shapes)(device="cuda", max_side=2), n=10) for t in ab)
    assert all(a.device.type == "cuda" for (a,) in _samples(S.mean_operands(device="cuda", max_side=2), n=10))
    assert reaches(S.operands(S.mm_shapes, max_side=2), lambda ab: ab[0].device.type == "cuda")
    like = torch.zeros(2, device="cuda")
    assert all(g.device.type == "cuda" for g in _samples(S.cotangents(like), n=5))
