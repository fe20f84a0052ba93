"""The seed's experiment: faithful to the lesson, both variants agree, and the stability story holds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import gradcheck
from gradcheck import linreg
from gradcheck.cli import main


@pytest.fixture(scope="module")
def result():
    return linreg.analyse(linreg.Lesson())


def _the_lesson_script(seed=1000, lr=1e-4, steps=500, batch=32):
    """The lesson's loop written out as the lesson writes it, independently of gradcheck.linreg."""
    torch.manual_seed(seed)

    def get_fake_data(batch_size=8):
        x = torch.rand(batch_size, 1) * 20
        y = x * 2 + (1 + torch.randn(batch_size, 1) * 3)
        return x, y

    w = torch.rand(1, 1)
    b = torch.zeros(1, 1)
    for ii in range(steps):
        x, y = get_fake_data(batch_size=batch)
        y_pred = x.mm(w) + b.expand_as(y)
        dy_pred = y_pred - y
        dw = x.t().mm(dy_pred)
        db = dy_pred.sum()
        w.sub_(lr * dw)
        b.sub_(lr * db)
        if ii % 50 == 0:
            x = torch.arange(0, 20).view(-1, 1).float()
            y = x.mm(w) + b.expand_as(x)  # the plotted line
            x2, y2 = get_fake_data(batch_size=20)  # the plotted scatter
    return w.item(), b.item()


def test_reproduces_the_lesson_script_exactly(result):
    assert (result["w"], result["b"]) == _the_lesson_script()


def test_hand_derived_and_autograd_trajectories_agree(result):
    assert result["max_trajectory_diff"] <= 1e-5
    assert result["w"] == pytest.approx(result["w_autograd"], rel=1e-6)


def test_same_seed_same_answer_other_seed_other_answer():
    a, b = linreg.train(linreg.Lesson(steps=50)), linreg.train(linreg.Lesson(steps=50))
    c = linreg.train(linreg.Lesson(seed=1001, steps=50))
    assert (a.w[-1], a.b[-1]) == (b.w[-1], b.b[-1]) != (c.w[-1], c.b[-1])


def test_lesson_observation_lr_1e_3_ends_in_nan_and_1e_4_does_not():
    high = linreg.train(linreg.Lesson(lr=1e-3))
    assert math.isnan(high.w[-1]) and math.isnan(high.b[-1])
    low = linreg.train(linreg.Lesson(lr=1e-4))
    assert math.isfinite(low.w[-1]) and abs(low.w[-1] - 2) < 0.1


def test_critical_lr_prediction_brackets_the_observed_divergence(result):
    converged = [row["lr"] for row in result["sweep"] if not row["diverged"]]
    diverged = [row["lr"] for row in result["sweep"] if row["diverged"]]
    assert converged and diverged
    assert max(converged) < result["critical_lr"] < min(diverged)
    assert all(row["diverged"] == row["predicted_diverged"] for row in result["sweep"])
    assert 1e-4 < result["critical_lr"] < 1e-3  # why the lesson saw nan at 1e-3 and not at 1e-4


def test_hand_derived_hessian_matches_torch_func_hessian():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(32, 1, generator=generator, dtype=torch.float64) * 20
    y = 2 * x + 1 + torch.randn(32, 1, generator=generator, dtype=torch.float64)

    def loss(theta):
        return 0.5 * ((x * theta[0] + theta[1] - y) ** 2).sum()

    expected = torch.func.hessian(loss)(torch.tensor([0.3, -0.2], dtype=torch.float64))
    torch.testing.assert_close(linreg.hessian(x), expected, rtol=1e-13, atol=0)


def test_hessian_is_verified_by_the_harness_as_the_vjp_of_the_gradient():
    """H·v is the VJP of θ ↦ ∇L(θ) (H is symmetric): the harness checks it against autograd and FD."""
    x = torch.tensor([[1.0], [3.0], [-2.0], [4.0]], dtype=torch.float64)
    y = torch.tensor([[2.0], [1.0], [0.0], [5.0]], dtype=torch.float64)

    def gradient(theta):
        r = x * theta[0] + theta[1] - y
        return torch.stack([(x * r).sum(), r.sum()])

    report = gradcheck.check_vjp(gradient, lambda theta, v: (linreg.hessian(x) @ v,),
                                 (torch.tensor([1.0, -2.0], dtype=torch.float64),), names=("theta",), exact=True)
    assert report.ok, str(report)


def test_least_squares_matches_numpy_polyfit(result):
    run = result["_runs"]["manual"]
    w, b = np.polyfit(run.x.flatten().double().numpy(), run.y.flatten().double().numpy(), 1)
    assert result["least_squares"]["w"] == pytest.approx(w, rel=1e-9)
    assert result["least_squares"]["b"] == pytest.approx(b, rel=1e-9)


def test_b_lags_because_of_the_slow_mode(result):
    gap_now = abs(result["b"] - result["least_squares"]["b"])
    assert result["hessian_condition"] > 100
    assert 0.3 < result["slow_mode_remaining"] < 1
    assert gap_now > 0.3  # b is still far from least squares after 500 steps


def test_cli_json_schema_and_figures(tmp_path, capsys):
    assert main(["linreg", "--json", "--out", str(tmp_path), "--steps", "100"]) == 0
    document = json.loads(capsys.readouterr().out)
    for key, kind in (("w", float), ("b", float), ("w_autograd", float), ("b_autograd", float),
                      ("max_trajectory_diff", float), ("final_loss", float), ("diverged", bool),
                      ("critical_lr", float), ("hessian_condition", float)):
        assert isinstance(document[key], kind), key
    assert set(document["least_squares"]) == {"w", "b"}
    assert len(document["figures"]) == 3
    for path in document["figures"]:
        with open(path, "rb") as png:
            content = png.read()
        assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 10_000


def test_cli_json_of_a_diverging_run_is_strict_json(capsys):
    assert main(["linreg", "--json", "--lr", "1e-3"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["diverged"] is True and document["w"] is None
