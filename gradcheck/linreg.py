"""The seed's experiment: the lesson's linear regression, trained with hand-derived gradients and with
autograd, and an explanation of why lr 1e-3 ends in ``nan nan`` while lr 1e-4 does not.

The lesson's script, as reproduced here (its docstring says y = 2x + 3, its code gives intercept 1)::

    torch.manual_seed(1000)
    def get_fake_data(batch_size=8):
        x = torch.rand(batch_size, 1) * 20
        y = x * 2 + (1 + torch.randn(batch_size, 1) * 3)
        return x, y
    w = torch.rand(1, 1); b = torch.zeros(1, 1); lr = 1e-4
    for ii in range(500):
        x, y = get_fake_data(batch_size=32)
        y_pred = x.mm(w) + b.expand_as(y)
        loss = (0.5 * (y_pred - y) ** 2).sum()
        dy_pred = y_pred - y; dw = x.t().mm(dy_pred); db = dy_pred.sum()
        w.sub_(lr * dw); b.sub_(lr * db)
        if ii % 50 == 0:   # plotting: a fresh batch of 20 for the scatter
            x2, y2 = get_fake_data(batch_size=20)

The plotting draws consume the random stream, so they are reproduced (without plotting) to reach the
same final w and b as the script.

Stability: in (w, b) the loss is quadratic with Hessian H = [[Σx², Σx], [Σx, n]] over the batch.
Gradient descent multiplies the error along each eigenvector of H by (1 − lr·λ) per step, so it
diverges once lr > 2/λmax, and along the slow eigenvector (mostly b) it closes only a fraction
1 − (1 − lr·λmin)^steps of the gap: the condition number λmax/λmin is why b lags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch

SWEEP_FACTORS = (0.25, 0.5, 0.8, 0.9, 1.1, 1.25, 2.0, 4.0)  # multiples of the predicted critical lr


@dataclass(frozen=True)
class Lesson:
    seed: int = 1000
    lr: float = 1e-4
    steps: int = 500
    batch_size: int = 32
    plot_every: int = 50
    plot_batch: int = 20

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a positive finite number, got {self.lr}")


def get_fake_data(batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The lesson's data, from torch's global generator: y = 2x + 1 + 3·noise."""
    x = torch.rand(batch_size, 1) * 20
    y = x * 2 + (1 + torch.randn(batch_size, 1) * 3)
    return x, y


@dataclass
class Trajectory:
    """One training run: parameters and batch loss after every step, and the batches it saw."""

    w: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    batches: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)

    @property
    def x(self) -> torch.Tensor:
        return torch.cat([x for x, _ in self.batches])

    @property
    def y(self) -> torch.Tensor:
        return torch.cat([y for _, y in self.batches])


def _manual_step(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, lr: float) -> torch.Tensor:
    """The lesson's hand-derived backward, line for line."""
    y_pred = x.mm(w) + b.expand_as(y)
    loss = (0.5 * (y_pred - y) ** 2).sum()
    dy_pred = y_pred - y
    dw = x.t().mm(dy_pred)
    db = dy_pred.sum()
    w.sub_(lr * dw)
    b.sub_(lr * db)
    return loss


def _autograd_step(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, lr: float) -> torch.Tensor:
    y_pred = x.mm(w) + b.expand_as(y)
    loss = (0.5 * (y_pred - y) ** 2).sum()
    loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward has no annotations
    assert w.grad is not None and b.grad is not None  # set by backward: w and b require grad here
    with torch.no_grad():
        w.sub_(lr * w.grad)
        b.sub_(lr * b.grad)
    w.grad.zero_()
    b.grad.zero_()
    return loss.detach()


def train(lesson: Lesson, *, autograd: bool = False) -> Trajectory:
    """Run the lesson's loop from its seed; the plotting draws are consumed as the script does."""
    torch.manual_seed(lesson.seed)
    w = torch.rand(1, 1, requires_grad=autograd)
    b = torch.zeros(1, 1, requires_grad=autograd)
    step = _autograd_step if autograd else _manual_step
    run = Trajectory()
    for ii in range(lesson.steps):
        x, y = get_fake_data(lesson.batch_size)
        loss = step(x, y, w, b, lesson.lr)
        run.batches.append((x, y))
        run.w.append(float(w.detach()))
        run.b.append(float(b.detach()))
        run.loss.append(float(loss))
        if ii % lesson.plot_every == 0:
            get_fake_data(lesson.plot_batch)  # the lesson's scatter of a fresh batch
    return run


def hessian(x: torch.Tensor) -> torch.Tensor:
    """Hessian of ½Σ(x·w + b − y)² in (w, b), by hand: ∂²/∂w² = Σx², ∂²/∂w∂b = Σx, ∂²/∂b² = n."""
    x = x.to(torch.float64).flatten()
    return torch.stack([torch.stack([(x * x).sum(), x.sum()]), torch.stack([x.sum(), torch.tensor(float(x.numel()), dtype=torch.float64)])])


def full_loss(x: torch.Tensor, y: torch.Tensor, w: float, b: float) -> float:
    """½Σ(x·w + b − y)² in float64, per sample (mean), so runs of any length compare."""
    r = x.to(torch.float64) * w + b - y.to(torch.float64)
    return float(0.5 * (r * r).mean())


def least_squares(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    design = torch.cat([x, torch.ones_like(x)], dim=1).to(torch.float64)
    solution = torch.linalg.lstsq(design, y.to(torch.float64)).solution
    return float(solution[0]), float(solution[1])


def diverged(run: Trajectory) -> bool:
    """NaN/inf parameters, or a loss on the data seen that ends higher than it started."""
    w, b = run.w[-1], run.b[-1]
    if not (math.isfinite(w) and math.isfinite(b)):
        return True
    x, y = run.x, run.y
    final = full_loss(x, y, w, b)
    return not math.isfinite(final) or final > full_loss(x, y, run.w[0], run.b[0])


def analyse(lesson: Lesson, *, sweep_factors: tuple[float, ...] = SWEEP_FACTORS) -> dict[str, Any]:
    """Both variants, their largest disagreement, the stability prediction and a sweep that tests it."""
    manual, auto = train(lesson), train(lesson, autograd=True)
    differences = [abs(p - q) for a, c in ((manual.w, auto.w), (manual.b, auto.b), (manual.loss, auto.loss))
                   for p, q in zip(a, c) if math.isfinite(p) and math.isfinite(q)]
    nonfinite_disagree = any(math.isfinite(p) != math.isfinite(q) for p, q in zip(manual.loss, auto.loss))
    x, y = manual.x, manual.y
    batch_hessians = torch.stack([hessian(bx) for bx, _ in manual.batches])
    mean_hessian = batch_hessians.mean(dim=0)
    eigenvalues = torch.linalg.eigvalsh(mean_hessian)
    lam_min, lam_max = float(eigenvalues[0]), float(eigenvalues[1])
    critical = 2 / lam_max
    per_batch_critical = 2 / torch.linalg.eigvalsh(batch_hessians)[:, 1]
    ls_w, ls_b = least_squares(x, y)
    lesson_high = train(replace(lesson, lr=1e-3))
    sweep = []
    for factor in sweep_factors:
        lr = critical * factor
        run = train(replace(lesson, lr=lr))
        sweep.append({"lr": lr, "factor": factor, "diverged": diverged(run), "predicted_diverged": lr > critical,
                      "final_loss": run.loss[-1], "w": run.w[-1], "b": run.b[-1], "loss": run.loss})
    return {
        "seed": lesson.seed, "lr": lesson.lr, "steps": lesson.steps, "batch_size": lesson.batch_size,
        "w": manual.w[-1], "b": manual.b[-1], "w_autograd": auto.w[-1], "b_autograd": auto.b[-1],
        "max_trajectory_diff": math.inf if nonfinite_disagree else max(differences, default=0.0),
        "final_loss": manual.loss[-1], "diverged": diverged(manual),
        "critical_lr": critical,
        "critical_lr_range_over_batches": [float(per_batch_critical.min()), float(per_batch_critical.max())],
        "hessian_mean": mean_hessian.tolist(), "hessian_eigenvalues": [lam_min, lam_max],
        "hessian_condition": lam_max / lam_min,
        "slow_mode_remaining": (1 - lesson.lr * lam_min) ** lesson.steps,
        "least_squares": {"w": ls_w, "b": ls_b},
        "at_lr_1e-3": {"w": lesson_high.w[-1], "b": lesson_high.b[-1], "diverged": diverged(lesson_high)},
        "true_line": {"w": 2.0, "b": 1.0},
        "sweep": sweep,
        "_runs": {"manual": manual, "autograd": auto},
    }


def public(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able part of ``analyse``'s result: no tensors, no per-step curves, and NaN/inf as
    null (strict JSON has no NaN; ``diverged`` says what happened)."""
    out = {k: v for k, v in result.items() if not k.startswith("_")}
    out["sweep"] = [{k: v for k, v in row.items() if k != "loss"} for row in result["sweep"]]
    return {k: _finite_or_null(v) for k, v in out.items()}


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    return value


def _side(lr: float, critical: float) -> str:
    return "above" if lr > critical else "below"


def explanation(result: dict[str, Any]) -> str:
    """The stability story in a few lines, with this run's numbers."""
    lo, hi = result["hessian_eigenvalues"]
    diverged_at = [row["lr"] for row in result["sweep"] if row["diverged"]]
    converged_at = [row["lr"] for row in result["sweep"] if not row["diverged"]]
    return "\n".join([
        f"Hessian of the loss in (w, b), mean over batches of {result['batch_size']}: "
        f"[[Σx², Σx], [Σx, n]] = {[[round(v, 1) for v in row] for row in result['hessian_mean']]}",
        f"eigenvalues {lo:.4g} and {hi:.4g}: condition number {result['hessian_condition']:.4g}",
        f"gradient descent diverges once lr > 2/λmax = {result['critical_lr']:.4g} "
        f"(per batch between {result['critical_lr_range_over_batches'][0]:.3g} and {result['critical_lr_range_over_batches'][1]:.3g}); "
        f"lr 1e-3 is {_side(1e-3, result['critical_lr'])} it (trained: w = {result['at_lr_1e-3']['w']}, "
        f"b = {result['at_lr_1e-3']['b']}), "
        f"lr 1e-4 {_side(1e-4, result['critical_lr'])} it.",
        f"sweep: converged at lr ≤ {max(converged_at, default=math.nan):.3g}, diverged at lr ≥ {min(diverged_at, default=math.nan):.3g}",
        f"after {result['steps']} steps at lr {result['lr']:g} the slow direction (mostly b) keeps "
        f"(1 − lr·λmin)^steps = {result['slow_mode_remaining']:.3f} of its initial error: b = {result['b']:.4g} "
        f"against the least-squares b = {result['least_squares']['b']:.4g} (w = {result['w']:.4g} vs {result['least_squares']['w']:.4g}).",
    ])
