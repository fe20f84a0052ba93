"""Figures of the seed's experiment (PNG), drawn with matplotlib: the optional extra ``gradcheck[plot]``.

Figures are made with ``matplotlib.figure.Figure`` directly, not pyplot: no backend is chosen or
switched for the importing process, and nothing is left open.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

INSTALL_HINT = "pip install 'gradcheck[plot]'"

try:
    from matplotlib.figure import Figure
except ModuleNotFoundError as exc:
    if exc.name is None or exc.name.split(".")[0] != "matplotlib":
        raise
    raise ModuleNotFoundError(f"the figures need matplotlib, which is not installed: {INSTALL_HINT}", name=exc.name) from exc

FIGURES = ("linreg_loss.png", "linreg_fit.png", "linreg_lr_sweep.png")


def _finite(values: list[float]) -> list[float]:
    return [v if math.isfinite(v) else math.nan for v in values]


def loss_curves(result: dict[str, Any], path: Path) -> None:
    runs = result["_runs"]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(_finite(runs["manual"].loss), label="hand-derived gradients", linewidth=2)
    ax.plot(_finite(runs["autograd"].loss), label="autograd", linestyle="--")
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="batch loss ½Σ(ŷ − y)²",
           title=f"Both variants, lr {result['lr']:g} (largest difference {result['max_trajectory_diff']:.3g})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def data_and_fit(result: dict[str, Any], path: Path) -> None:
    run = result["_runs"]["manual"]
    x, y = run.x.flatten(), run.y.flatten()
    grid = torch.linspace(0, 20, 50)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.scatter(x[:400], y[:400], s=6, alpha=0.4, label="data (first 400 points)")
    lines = (("true y = 2x + 1", 2.0, 1.0, "-"), (f"fitted after {result['steps']} steps", result["w"], result["b"], "-"),
             ("least squares on the data seen", result["least_squares"]["w"], result["least_squares"]["b"], ":"))
    for label, w, b, style in lines:
        if w is not None and b is not None and math.isfinite(w) and math.isfinite(b):
            ax.plot(grid, w * grid + b, style, linewidth=2, label=f"{label}: w={w:.3f}, b={b:.3f}")
    ax.set(xlabel="x", ylabel="y", title="The lesson's data and lines")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def lr_sweep(result: dict[str, Any], path: Path) -> None:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for row in result["sweep"]:
        style = "--" if row["diverged"] else "-"
        verdict = "diverged" if row["diverged"] else "converged"
        ax.plot(_finite(row["loss"]), style, label=f"lr {row['lr']:.2e} ({row['factor']}× critical): {verdict}")
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="batch loss",
           title=f"Learning-rate sweep around 2/λmax = {result['critical_lr']:.3g}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_figures(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write the three PNG figures into ``out_dir`` (created if needed); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in FIGURES]
    for draw, path in zip((loss_curves, data_and_fit, lr_sweep), paths):
        draw(result, path)
    return paths
