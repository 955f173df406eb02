"""Pictures of a training run, drawn from its saved history (see notebook 05)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt


def best_record(history: list[dict]) -> dict:
    """The evaluation with the lowest validation loss: the weights in ``best_model_params.pt``."""
    return min(history, key=lambda r: r["val_loss"])


def plot_history(history: list[dict], title: str = "", ax=None):
    """Train and validation loss against optimizer steps (tokens seen on the top axis), the
    learning rate on a second y axis, and the best checkpoint marked. Returns the figure."""
    if not history:
        raise ValueError("The history is empty: train for at least one evaluation first.")
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 4.5))
    fig = ax.figure
    steps = [r["step"] for r in history]
    ax.plot(steps, [r["train_loss"] for r in history], "o-", label="train loss", color="tab:blue")
    ax.plot(steps, [r["val_loss"] for r in history], "s-", label="validation loss", color="tab:orange")
    best = best_record(history)
    ax.scatter([best["step"]], [best["val_loss"]], s=180, facecolors="none", edgecolors="tab:red", linewidths=2,
               zorder=5, label=f"best checkpoint (step {best['step']:,}, val {best['val_loss']:.3f})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.grid(alpha=0.3)

    tokens_per_step = history[-1]["tokens"] / history[-1]["step"] if history[-1]["step"] else 0
    if tokens_per_step:
        top = ax.secondary_xaxis("top", functions=(lambda s: s * tokens_per_step / 1e6, lambda t: t * 1e6 / tokens_per_step))
        top.set_xlabel("tokens seen (millions)")

    lr_ax = ax.twinx()
    lr_ax.plot(steps, [r["lr"] for r in history], ":", color="tab:green", label="learning rate")
    lr_ax.set_ylabel("learning rate", color="tab:green")
    lr_ax.tick_params(axis="y", colors="tab:green")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))

    lines = ax.get_legend_handles_labels()[0] + lr_ax.get_legend_handles_labels()[0]
    ax.legend(lines, [line.get_label() for line in lines], loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def perplexity(loss: float) -> float:
    """exp(loss): the number of equally likely tokens the model is, on average, choosing among."""
    return math.exp(loss)
