"""Numpy layers (gradcheck/numpy_layers.py): CS231n-style forward/backward pairs written in numpy —
affine, relu, softmax loss, batch norm, an RNN step — pass in float64 and float32 with no options,
planted bugs fail naming the wrong input, and ``oracles=`` is honoured."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradcheck
import gradcheck.check
import gradcheck.numpy_layers as numpy_layers
from gradcheck import GradcheckError, GradientMismatch, check_numpy, verify_numpy

F = torch.nn.functional
DTYPES = (np.float64, np.float32)


# ---- the layers, as a student writes them ------------------------------------------------------------

def affine_forward(x, w, b):
    return x.reshape(x.shape[0], -1).dot(w) + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout.dot(w.T).reshape(x.shape), x.reshape(x.shape[0], -1).T.dot(dout), np.sum(dout, axis=0)


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    return dout * (cache > 0)


def softmax_loss(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    n = x.shape[0]
    loss = -np.sum(log_probs[np.arange(n), y]) / n
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    dx /= n
    return loss, dx


def softmax_backward(dloss, dx):  # the loss returns its own gradient: the "cache" is dx
    return dloss * dx


def batchnorm_forward(x, gamma, beta, bn_param):
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + bn_param.get("eps", 1e-5))
    xhat = (x - mu) / std
    bn_param["running_mean"] = 0.9 * bn_param.get("running_mean", 0) + 0.1 * mu  # a forward that updates its dict
    return gamma * xhat + beta, (xhat, gamma, std)


def batchnorm_backward(dout, cache):
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h**2)
    return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)


# ---- planted bugs --------------------------------------------------------------------------------------

def affine_backward_missing_transpose(dout, cache):  # shape-compatible only for a square w
    x, w, b = cache
    return dout.dot(w).reshape(x.shape), x.reshape(x.shape[0], -1).T.dot(dout), np.sum(dout, axis=0)


def affine_backward_db_not_summed(dout, cache):
    dx, dw, _ = affine_backward(dout, cache)
    return dx, dw, dout


def relu_backward_sign(dout, cache):
    return -dout * (cache > 0)


def relu_backward_in_place(dout, cache):  # the classic: zeroes the upstream gradient itself
    dout[cache <= 0] = 0
    return dout


def softmax_loss_sign(x, y):
    loss, dx = softmax_loss(x, y)
    return loss, -dx


def batchnorm_backward_dropped_term(dout, cache):
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - xhat * (dxhat * xhat).mean(axis=0)) / std  # the mean of dxhat dropped
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def rnn_step_backward_wrong_dtanh(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h)  # 1 − h instead of 1 − h²
    return da.dot(Wx.T), da.dot(Wh.T), x.T.dot(da), prev_h.T.dot(da), da.sum(axis=0)


# ---- torch references (the same forwards) -----------------------------------------------------------------

def affine_reference(x, w, b):
    return x.reshape(x.shape[0], -1) @ w + b


def softmax_reference(x, y):
    return F.cross_entropy(x, torch.as_tensor(y))


def batchnorm_reference(x, gamma, beta, bn_param):
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=bn_param.get("eps", 1e-5))


def rnn_step_reference(x, prev_h, Wx, Wh, b):
    return torch.tanh(x @ Wx + prev_h @ Wh + b)


def inputs_for(layer, dtype, seed, square=False):
    rng = np.random.default_rng(seed)
    n, d, m, h = (int(s) for s in rng.integers(2, 7, 4))
    m = d if square else m

    def r(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    return {
        "affine": lambda: (r(n, d), r(d, m), r(m)),
        "relu": lambda: (r(n, d),),
        "softmax_loss": lambda: (r(n, m), rng.integers(0, m, n)),
        "batchnorm": lambda: (r(n, d), r(d), r(d), {"eps": 1e-5}),
        "rnn_step": lambda: (r(n, d), r(n, h, scale=0.5), r(d, h, scale=0.5), r(h, h, scale=0.5), r(h)),
    }[layer]()


LAYERS = {  # forward, backward, torch reference
    "affine": (affine_forward, affine_backward, affine_reference),
    "relu": (relu_forward, relu_backward, torch.relu),
    "softmax_loss": (softmax_loss, softmax_backward, softmax_reference),
    "batchnorm": (batchnorm_forward, batchnorm_backward, batchnorm_reference),
    "rnn_step": (rnn_step_forward, rnn_step_backward, rnn_step_reference),
}


# ---- correct layers pass -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layer", list(LAYERS))
def test_a_correct_layer_passes_with_no_options(layer, dtype):
    forward, backward, _ = LAYERS[layer]
    for seed in range(3):
        inputs = inputs_for(layer, dtype, seed)
        report = check_numpy(forward, backward, inputs, seed=seed)
        assert report.ok, str(report)
        assert {c.oracle for c in report.comparisons} == {"finite_differences"}
        assert report.dtype == np.dtype(dtype).name
        assert any("rounding measured" in note for note in report.notes), report.notes


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layer", list(LAYERS))
def test_a_correct_layer_passes_against_autograd_on_a_torch_reference(layer, dtype):
    forward, backward, reference = LAYERS[layer]
    report = check_numpy(forward, backward, inputs_for(layer, dtype, 7), reference=reference, seed=7)
    assert report.ok, str(report)
    assert {c.oracle for c in report.comparisons} == {"autograd", "finite_differences"}


def test_names_default_to_the_forwards_parameters_and_non_floating_inputs_get_none():
    report = check_numpy(softmax_loss, softmax_backward, inputs_for("softmax_loss", np.float64, 0))
    assert report.input_names == ("x", "y")
    assert {c.input_name for c in report.comparisons} == {"x"}


# ---- planted bugs fail, naming the input -----------------------------------------------------------------

BUGS = {  # name: (layer, forward, backward, failing inputs or the structural check)
    "affine: missing transpose (square w)": ("affine", affine_forward, affine_backward_missing_transpose, {"x"}),
    "affine: db not summed over the batch": ("affine", affine_forward, affine_backward_db_not_summed, {"b"}),
    "relu: sign": ("relu", relu_forward, relu_backward_sign, {"x"}),
    "relu: modifies dout in place": ("relu", relu_forward, relu_backward_in_place, "mutated"),
    "softmax loss: sign": ("softmax_loss", softmax_loss_sign, softmax_backward, {"x"}),
    "batchnorm: dropped term in dx": ("batchnorm", batchnorm_forward, batchnorm_backward_dropped_term, {"x"}),
    "rnn step: dtanh as 1 - h": ("rnn_step", rnn_step_forward, rnn_step_backward_wrong_dtanh, {"x", "prev_h", "Wx", "Wh", "b"}),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("bug", list(BUGS))
def test_a_planted_bug_fails(bug, dtype):
    layer, forward, backward, expected = BUGS[bug]
    report = check_numpy(forward, backward, inputs_for(layer, dtype, 1, square=True), seed=1)
    assert not report.ok
    if expected == "mutated":
        assert [p.check for p in report.problems] == ["mutated"]
        assert "cotangent" in report.problems[0].expected
    else:
        assert report.failing_inputs == expected, str(report)
    assert "gradcheck.check_numpy(forward, backward, inputs" in report.reproducer
    assert ".numpy()" in report.reproducer


def test_the_missing_transpose_raises_for_a_non_square_w_and_that_is_reported():
    x, w, b = np.ones((3, 4)), np.ones((4, 2)), np.ones(2)
    report = check_numpy(affine_forward, affine_backward_missing_transpose, (x, w, b))
    assert [p.check for p in report.problems] == ["raised"]
    assert "ValueError" in report.problems[0].got


# ---- oracles= ---------------------------------------------------------------------------------------------

def _no_autograd(monkeypatch):
    def touched(*args, **kwargs):
        raise AssertionError("autograd was run")

    monkeypatch.setattr(torch.autograd, "grad", touched)
    monkeypatch.setattr(gradcheck.check, "autograd_reference", touched)
    monkeypatch.setattr(gradcheck.check, "traced_vjp", touched)


def test_finite_differences_alone_never_touch_autograd(monkeypatch):
    _no_autograd(monkeypatch)
    inputs = inputs_for("rnn_step", np.float32, 2)
    for options in ({}, {"oracles": ("finite_differences",)},
                    {"oracles": ("finite_differences",), "reference": rnn_step_reference}):
        report = check_numpy(rnn_step_forward, rnn_step_backward, inputs, **options)
        assert report.ok, str(report)
        assert {c.oracle for c in report.comparisons} == {"finite_differences"}
    assert not check_numpy(rnn_step_forward, rnn_step_backward_wrong_dtanh, inputs).ok


def test_autograd_without_a_reference_is_a_clear_error():
    with pytest.raises(GradcheckError, match=r"oracles: expected reference= .* got none"):
        check_numpy(affine_forward, affine_backward, inputs_for("affine", np.float64, 0), oracles=("autograd",))
    with pytest.raises(GradcheckError, match="oracles: expected a non-empty sequence"):
        check_numpy(affine_forward, affine_backward, inputs_for("affine", np.float64, 0), oracles=("adjoint",))


def test_autograd_alone_with_a_reference():
    report = check_numpy(batchnorm_forward, batchnorm_backward_dropped_term, inputs_for("batchnorm", np.float32, 3),
                         reference=batchnorm_reference, oracles=("autograd",))
    assert {c.oracle for c in report.comparisons} == {"autograd"}
    assert report.failing_inputs == {"x"}


def test_a_reference_computing_another_function_is_a_clear_error():
    def wrong_eps(x, gamma, beta, bn_param):
        return F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-2)

    with pytest.raises(GradcheckError, match=r"reference: expected the numpy forward's output"):
        check_numpy(batchnorm_forward, batchnorm_backward, inputs_for("batchnorm", np.float64, 0), reference=wrong_eps)


# ---- the bound ---------------------------------------------------------------------------------------------

def test_the_algorithms_own_cancellation_is_measured_and_allowed():
    # batch norm on values far from 0 in float32: x − mean cancels most digits, which is this
    # algorithm's rounding (not a bug): measured by its float64 run, allowed, and bugs still caught
    x, gamma, beta, bn_param = inputs_for("batchnorm", np.float32, 4)
    x = x + np.float32(300)
    report = check_numpy(batchnorm_forward, batchnorm_backward, (x, gamma, beta, bn_param), reference=batchnorm_reference)
    assert report.ok, str(report)
    assert any("backward's rounding measured" in note and "float64" in note for note in report.notes)
    wrong = check_numpy(batchnorm_forward, batchnorm_backward_dropped_term, (x, gamma, beta, bn_param))
    assert wrong.failing_inputs == {"x"}


def test_relu_at_its_kink_and_beside_it_is_not_a_false_alarm():
    x = np.random.default_rng(3).standard_normal((5, 4)) * 1e-9  # every element within a step of 0
    x[0, :2] = 0.0
    for dtype in DTYPES:
        report = check_numpy(relu_forward, relu_backward, (x.astype(dtype),))
        assert report.ok, str(report)
        assert report.comparisons[0].inconclusive is not None  # the probes crossed the kink: skipped, said so


def test_relu_kinks_are_seen_through_numpys_own_comparisons():
    # the decision is recorded on the ndarray subclass whatever way the kink is written
    def relu_by_mask(x):
        out = x.copy()
        out[x < 0] = 0
        return out, x

    x = np.random.default_rng(4).standard_normal((5, 4)) * 1e-9
    assert check_numpy(relu_by_mask, relu_backward, (x,)).ok
    assert check_numpy(lambda x: (np.abs(x), x), lambda d, x: d * np.sign(x), (x,)).ok


def test_exact_mode_on_integer_inputs_is_bit_for_bit():
    rng = np.random.default_rng(0)
    x, w, b = (rng.integers(-3, 4, s).astype(np.float64) for s in ((4, 5), (5, 3), (3,)))
    report = check_numpy(affine_forward, affine_backward, (x, w, b), exact=True, reference=affine_reference)
    assert report.ok and report.exact, str(report)
    assert all(c.bound == 0 for c in report.comparisons if c.oracle == "autograd")

    def db_off_by_one(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx, dw, db + np.eye(1, len(db))[0]

    assert check_numpy(affine_forward, db_off_by_one, (x, w, b), exact=True).failing_inputs == {"b"}


def test_without_long_double_float64_rounding_is_estimated_from_float32(monkeypatch):
    monkeypatch.setattr(numpy_layers, "LONGDOUBLE_EXTENDED", False)
    for layer in ("softmax_loss", "batchnorm", "rnn_step"):
        forward, backward, reference = LAYERS[layer]
        report = check_numpy(forward, backward, inputs_for(layer, np.float64, 5), reference=reference)
        assert report.ok, str(report)
        assert any("estimated, not measured" in note for note in report.notes)
    assert not check_numpy(rnn_step_forward, rnn_step_backward_wrong_dtanh, inputs_for("rnn_step", np.float64, 5)).ok


@pytest.mark.skipif(not numpy_layers.LONGDOUBLE_EXTENDED, reason="needs a long double wider than float64 to measure against")
@pytest.mark.parametrize("layer", ["affine", "softmax_loss", "batchnorm", "rnn_step"])
def test_the_float64_estimate_covers_the_loss_measured_against_long_double(layer):
    forward, backward, _ = LAYERS[layer]
    for seed in range(4):
        inputs = inputs_for(layer, np.float64, seed)
        pair = numpy_layers.NumpyPair(forward, backward, True, tuple(isinstance(a, np.ndarray) and a.dtype == np.float64
                                                                     for a in inputs))
        out = np.asarray(pair.outputs(forward(*inputs))[0])
        dout = [np.random.default_rng(seed).standard_normal(out.shape)]
        for what, douts in (("the forward", []), ("the backward", dout)):
            results, long = (pair._rerun(inputs, douts, what, p) for p in (np.float64, np.longdouble))
            lower = pair._rerun(inputs, douts, what, np.float32, through=np.float32)
            upper = pair._rerun(inputs, douts, what, np.float64, through=np.float32)
            for r, exactish, lo, up in zip(results, long, lower, upper):
                if r is None:
                    continue
                lost = np.abs(np.asarray(r).astype(np.longdouble) - exactish).astype(np.float64)
                assert (lost <= numpy_layers._estimated(np.asarray(r), lo, up).numpy()).all(), (what, seed)


def test_a_backward_that_computes_in_float32_whatever_its_inputs_is_said_so():
    def affine_backward_in_float32(dout, cache):  # its float64 run gives float32: nothing measured
        return tuple(g.astype(np.float32) for g in affine_backward(dout, cache))

    report = check_numpy(affine_forward, affine_backward_in_float32, inputs_for("affine", np.float32, 0))
    assert any("does not compute in the precision of its inputs" in note for note in report.notes), report.notes


# ---- caller mistakes ----------------------------------------------------------------------------------------

def test_caller_mistakes_are_clear_errors():
    def relu_without_cache(x):
        return np.maximum(x, 0)

    x = np.ones((2, 3))
    with pytest.raises(GradcheckError, match=r"forward \(relu_without_cache\): expected \(out, cache\)"):
        check_numpy(relu_without_cache, relu_backward, (x,))
    with pytest.raises(GradcheckError, match=r"input 0 \(x\): expected float16, float32 or float64, got complex128"):
        check_numpy(relu_forward, relu_backward, (x.astype(np.complex128),))
    with pytest.raises(GradcheckError, match=r"forward \(affine_forward\) raised ValueError"):
        check_numpy(affine_forward, affine_backward, (x, np.ones((4, 2)), np.ones(2)))
    with pytest.raises(GradcheckError, match="inputs: expected a tuple"):
        check_numpy(relu_forward, relu_backward, x)
    with pytest.raises(GradcheckError, match="expected a floating numpy array as output 0"):
        check_numpy(lambda x: ("out", x), relu_backward, (x,))


def test_a_forward_without_a_cache_and_a_vjp_style_backward():
    x, w, b = inputs_for("affine", np.float64, 0)
    assert check_numpy(lambda x, w, b: x @ w + b, lambda x, w, b, G: (G @ w.T, x.T @ G, G.sum(0)), (x, w, b), cache=False).ok


# ---- verify_numpy ---------------------------------------------------------------------------------------------

@st.composite
def affine_arrays(draw):
    n, d, m = (draw(st.integers(1, 3)) for _ in range(3))
    elements = st.sampled_from([1.0, -1.0, 0.5, 2.0])
    return tuple(draw(hnp.arrays(np.float32, shape, elements=elements)) for shape in ((n, d), (d, m), (m,)))


def test_verify_numpy_passes_a_correct_layer_and_fails_a_bug_with_a_numpy_replay():
    assert verify_numpy(affine_forward, affine_backward, affine_arrays(), max_examples=5) is None

    def affine_backward_db_mean(dout, cache):  # right for a batch of 1 only
        dx, dw, _ = affine_backward(dout, cache)
        return dx, dw, dout.mean(axis=0)

    no_shrinking = settings(database=None, phases=[Phase.generate])  # verify's shrinking is tested in test_check
    with pytest.raises(GradientMismatch) as caught:
        verify_numpy(affine_forward, affine_backward_db_mean, affine_arrays(), max_examples=20,
                     hypothesis_settings=no_shrinking)
    report = caught.value.report
    assert report.failing_inputs == {"b"} and report.shapes[0][0] >= 2
    assert "gradcheck.check_numpy(forward, backward, inputs" in report.reproducer
