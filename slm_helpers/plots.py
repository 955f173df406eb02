"""Pictures of a training run, drawn from its saved history (see notebook 05)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt

from slm_helpers.errors import SlmError

HISTORY_KEYS = ("step", "tokens", "lr", "train_loss", "val_loss")


def check_history(history, needs: tuple[str, ...] = HISTORY_KEYS, who: str = "plot_history") -> list[dict]:
    """``history`` if it is a run's list of evaluation records, each with the keys ``needs``."""
    if not isinstance(history, list):
        hint = (": load_history(path) reads a run's history" if isinstance(history, (str, Path))
                else ": give the whole list" if isinstance(history, dict) else "")
        raise SlmError(f"history must be a list of evaluation records (train(...).history or load_history(folder)), "
                       f"not {type(history).__name__}{hint}")
    if not history:
        raise SlmError("the history is empty: train for at least one evaluation first")
    for i, record in enumerate(history):
        missing = [key for key in needs if not isinstance(record, dict) or key not in record]
        if missing:
            raise SlmError(f"record {i} of the history lacks {', '.join(missing)}: {who} draws records as train() "
                           "writes them")
    return history


def best_record(history: list[dict]) -> dict:
    """The evaluation with the lowest validation loss: the weights in ``best_model_params.pt``."""
    return min(check_history(history, ("val_loss",), "best_record"), key=lambda r: r["val_loss"])


def plot_history(history: list[dict], title: str = "", lr_per_step: list[float] | None = None,
                 vocab_size: int | None = None, yardsticks: dict | None = None):
    """Train and validation loss against optimizer steps (tokens seen on the top axis; bits
    per byte on the right axis when the history has them), the best checkpoint marked, and
    below it the learning rate (at every optimizer step if ``lr_per_step`` is given, e.g.
    ``learning_rates(config)``; else at the evaluations). ``vocab_size`` draws ln V, the loss
    of uniform guessing where training starts; ``yardsticks`` (from
    :func:`slm_helpers.evaluate.yardsticks`) draws the unigram and bigram tables' losses.
    Validation is dashed with open markers, so both show where they overlap."""
    check_history(history)
    fig, (ax, lr_ax) = plt.subplots(2, 1, figsize=(9, 5.6), sharex=True, height_ratios=(3.2, 1))
    steps = [r["step"] for r in history]
    ax.plot(steps, [r["train_loss"] for r in history], "o-", label="train loss", color="tab:blue")
    ax.plot(steps, [r["val_loss"] for r in history], "s--", label="validation loss", color="tab:orange",
            markerfacecolor="none", markersize=8)
    best = best_record(history)
    ax.scatter([best["step"]], [best["val_loss"]], s=180, facecolors="none", edgecolors="tab:red", linewidths=2,
               zorder=5, label=f"best checkpoint (step {best['step']:,}, val {best['val_loss']:.3f})")
    lines = []
    if vocab_size:
        lines.append((math.log(vocab_size), f"uniform guess, ln V = ln {vocab_size:,}", "gray"))
    tables = [(name, value) for name, value in (yardsticks or {}).items() if "uniform" not in name]
    for (name, value), colour in zip(tables, ("tab:purple", "tab:brown")):
        lines.append((value["nats"], name, colour))
    for value, label, colour in lines:
        ax.axhline(value, color=colour, linestyle=":", linewidth=1.2)
        ax.annotate(f"{label}: {value:.2f}", (steps[0], value), textcoords="offset points", xytext=(4, 3),
                    ha="left", va="bottom", fontsize=9, color=colour)
    highest = max([r["train_loss"] for r in history] + [r["val_loss"] for r in history] + [v for v, _, _ in lines])
    ax.set_ylim(top=highest * 1.1)  # room for the labels above the lines
    ax.set_ylabel("loss (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    if all("val_bpb" in r and r["val_loss"] for r in history):  # the same curve, in bits per byte of text
        ratio = history[-1]["val_bpb"] / history[-1]["val_loss"]
        right = ax.secondary_yaxis("right", functions=(lambda n: n * ratio, lambda b: b / ratio))
        right.set_ylabel("validation bits per byte")
    tokens_per_step = history[-1]["tokens"] / history[-1]["step"] if history[-1]["step"] else 0
    if tokens_per_step:
        top = ax.secondary_xaxis("top", functions=(lambda s: s * tokens_per_step / 1e6,
                                                   lambda t: t * 1e6 / tokens_per_step))
        top.set_xlabel("tokens seen (millions)")
    if lr_per_step is not None:
        lr_ax.plot(range(len(lr_per_step)), lr_per_step, "-", color="tab:green", label="every step")
    else:
        lr_ax.plot(steps, [r["lr"] for r in history], "o:", color="tab:green", label="at the evaluations")
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("optimizer step")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    lr_ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, pad=6 if not tokens_per_step else 26)
    fig.tight_layout()
    return fig


def perplexity(loss: float) -> float:
    """exp(loss): the number of equally likely tokens the model is, on average, choosing among."""
    try:
        return math.exp(loss)
    except OverflowError:
        raise SlmError(f"a loss of {loss:g} nats per token has a perplexity beyond any float (exp({loss:g})): "
                       "perplexity takes a per-token cross-entropy, e.g. 5.49") from None


def show_tokens(tokenizer, text: str, width: float = 11.0, fontsize: int = 12):
    """``text`` drawn as its tokens: each token a coloured box, in the order the model reads
    them, wrapped like a paragraph (spaces shown as ``·``, since most tokens begin with one).
    Returns the figure (notebook 01)."""
    ids = tokenizer.encode_ordinary(text)
    colours = plt.get_cmap("Pastel1").colors
    return _token_boxes([_piece(tokenizer, i) for i in ids], [colours[i % len(colours)] for i in range(len(ids))],
                        f"{len(ids)} tokens for {len(text)} characters (· is a space)", width, fontsize)


def show_loss_mask(tokenizer, inputs, targets, width: float = 11.0, fontsize: int = 12):
    """One row of a fine-tuning batch drawn as its input tokens: green where the next token
    is a target the loss counts, grey where it is not (the request, the padding). Notebook 08."""
    inputs, targets = [int(i) for i in inputs], [int(t) for t in targets]
    shown = len(inputs) - next((k for k, t in enumerate(reversed(targets)) if t != -1), len(targets)) + 1
    shown = min(shown, len(inputs))  # the padding after the story's end is left out, but for one token
    colours = ["#b7e4c7" if t != -1 else "#d9d9d9" for t in targets[:shown]]
    counted = sum(t != -1 for t in targets)
    return _token_boxes([_piece(tokenizer, i) for i in inputs[:shown]], colours,
                        f"green: the loss counts the next token ({counted} positions); grey: it does not "
                        f"({len(targets) - counted}, the request and the padding)", width, fontsize)


def _piece(tokenizer, token_id: int) -> str:
    return tokenizer.decode([token_id]).replace(" ", "·").replace("\n", "↵")


def _token_boxes(pieces: list[str], colours: list, title: str, width: float, fontsize: int):
    """Tokens as boxes of the given colours, wrapped like a paragraph, under ``title``."""
    fig = plt.figure(figsize=(width, 1))
    renderer = fig.canvas.get_renderer()
    x, y, line_height, positions = 0.0, 0.0, 0.0, []
    for piece in pieces:  # measure each box, wrap when the line is full
        probe = fig.text(0, 0, piece, fontsize=fontsize, family="monospace")
        box = probe.get_window_extent(renderer)
        probe.remove()
        w, h = box.width / fig.dpi + 0.12, box.height / fig.dpi + 0.18
        if x + w > width - 0.2 and x > 0:
            x, y = 0.0, y + line_height
        positions.append((x, y))
        x, line_height = x + w + 0.04, max(line_height, h)
    height = y + line_height + 0.3
    fig.set_size_inches(width, height)
    for (px, py), piece, colour in zip(positions, pieces, colours):
        fig.text((px + 0.1) / width, 1 - (py + 0.15 + line_height / 2) / height, piece, fontsize=fontsize,
                 family="monospace", va="center",
                 bbox=dict(boxstyle="round,pad=0.15", facecolor=colour, edgecolor="none"))
    fig.suptitle(title, fontsize=fontsize, y=1.0, va="bottom")
    fig.add_axes((0, 0, 1, 1)).axis("off")  # an empty axes: Jupyter draws only figures that have one
    return fig


def plot_scores(scores: dict, title: str = ""):
    """Checker scores side by side (notebook 08): for each model or text (``scores``' keys),
    bars for the share of required words used, of stories using every word, and of stories
    asked for Dialogue that have it."""
    measures = [("words", "required words used"), ("all_words", "stories using every word"),
                ("dialogue", "Dialogue when asked")]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(scores)
    for k, (name, score) in enumerate(scores.items()):
        values = [getattr(score, key) if getattr(score, key) is not None else 0.0 for key, _ in measures]
        bars = ax.bar([i + (k - (len(scores) - 1) / 2) * width for i in range(len(measures))], values, width,
                      label=name)
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], fontsize=8)
    ax.set_xticks(range(len(measures)), [label for _, label in measures])
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share")
    ax.legend(fontsize=8, loc="upper left", ncols=len(scores))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_attention(weights, tokens: list[str], titles: list[str] | None = None, suptitle: str = ""):
    """Attention weights, one heatmap per head: ``weights`` is ``(n_head, T, T)``, row i the
    query position, column j the key it looks at. The masked future is drawn grey and
    hatched, so it is not confused with a small weight; one colourbar for all heads."""
    import numpy as np

    weights = np.asarray(weights, dtype=float)
    n_head, T, _ = weights.shape
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    fig, axes = plt.subplots(1, n_head, figsize=(min(4.2 * n_head, 18), 4.6), squeeze=False)
    image = None
    for h, ax in enumerate(axes[0]):
        shown = np.ma.masked_array(weights[h], mask=future)
        cmap = plt.get_cmap("viridis").copy()
        cmap.set_bad("#d9d9d9")
        image = ax.imshow(shown, cmap=cmap, vmin=0, vmax=1)
        for i, j in zip(*np.nonzero(future)):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#a6a6a6",
                                       linewidth=0))
        ax.set_xticks(range(T), tokens, rotation=70, fontsize=9)
        ax.set_yticks(range(T), tokens if h == 0 else [], fontsize=9)
        ax.set_title(titles[h] if titles else f"head {h}")
        ax.set_xlabel("key (looked at)")
    axes[0][0].set_ylabel("query (looking)")
    fig.colorbar(image, ax=list(axes[0]), fraction=0.02, pad=0.02, label="attention weight (grey: masked future)")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def trace_shapes(model, idx) -> list[tuple[str, tuple[int, ...]]]:
    """The output shape of each stage of ``model`` on ``idx``, recorded by forward hooks
    during a real forward pass (one block shown; the others repeat it)."""
    import torch

    stages = [("token ids", idx)]
    t, block = model.transformer, model.transformer.h[0]
    wpe = getattr(t, "wpe", None)  # a rotary model has none
    names = [(t.wte, "wte: token embedding"), (wpe, "wpe: position embedding"), (block.ln_1, "ln_1"),
             (block.attn.c_attn, "attn.c_attn: q, k, v"), (block.attn, "attn: heads side by side, c_proj"),
             (block.ln_2, "ln_2"),
             (block.mlp.c_fc, "mlp.c_fc: widen 4x"), (block.mlp, "mlp: GELU, c_proj back to C"), (t.ln_f, "ln_f"),
             (model.lm_head, "lm_head: logits")]
    hooks = [module.register_forward_hook(lambda m, i, out, name=name: stages.append((name, out)))
             for module, name in names if module is not None]
    try:
        with torch.no_grad():
            model(idx, idx)  # with targets: logits for every position
    finally:
        for hook in hooks:
            hook.remove()
    return [(name, tuple(tensor.shape)) for name, tensor in stages]


def draw_architecture(model, batch: int = 2, T: int = 8):
    """The GPT as boxes, each with the shape of the tensor it outputs, traced from a forward
    pass of ``batch`` sequences of ``T`` tokens (notebook 03): the token and position
    embeddings side by side and added; then, in each block, two branches that read the
    residual stream and add their output back to it; then the final LayerNorm and the head.
    Returns the figure."""
    import torch

    c = model.config
    shape = dict(trace_shapes(model, torch.zeros(batch, T, dtype=torch.long)))
    fig, ax = plt.subplots(figsize=(9.5, 9.2))
    colours = {"token": "#fde2e4", "wte": "#e2ece9", "wpe": "#e2ece9", "ln": "#fff1e6", "attn": "#dfe7fd",
               "mlp": "#e9f5db", "lm_head": "#fde2e4"}

    def box(name: str, x0: float, x1: float, y: float, label: str | None = None) -> None:
        colour = next((v for k, v in colours.items() if name.startswith(k)), "#eeeeee")
        ax.add_patch(plt.Rectangle((x0, y - 0.32), x1 - x0, 0.64, facecolor=colour, edgecolor="#555555"))
        ax.text(x0 + 0.015, y, label or name, va="center", fontsize=10)
        ax.text(x1 - 0.015, y, str(shape[name]), va="center", ha="right", fontsize=10, family="monospace")

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color="#333333"))

    def add(x: float, y: float) -> None:  # a sum: a circle with a plus
        ax.plot([x], [y], "o", markersize=15, markerfacecolor="white", markeredgecolor="#333333", zorder=3)
        ax.text(x, y, "+", ha="center", va="center", fontsize=12, zorder=4)

    stream = 0.2  # the residual stream runs down this line, through every block
    box("token ids", 0.05, 0.47, 13)
    ax.text(0.75, 13, f"positions 0 .. {T - 1}", ha="center", va="center", fontsize=10)
    box("wte: token embedding", 0.05, 0.47, 12)
    box("wpe: position embedding", 0.53, 0.97, 12)
    arrow(0.26, 12.68, 0.26, 12.32)
    arrow(0.75, 12.8, 0.75, 12.32)
    add(stream, 11.0)
    arrow(stream, 11.68, stream, 11.12)
    arrow(0.75, 11.68, stream + 0.03, 11.05)
    for top, names in ((9.9, ("ln_1", "attn.c_attn: q, k, v", "attn: heads side by side, c_proj")),
                       (6.4, ("ln_2", "mlp.c_fc: widen 4x", "mlp: GELU, c_proj back to C"))):
        for i, name in enumerate(names):
            box(name, 0.32, 0.97, top - i)
            if i:
                arrow(0.64, top - i + 1 - 0.32, 0.64, top - i + 0.32)
        arrow(stream, top, 0.32, top)  # the branch reads the stream...
        add(stream, top - 3)
        arrow(0.32, top - 2, stream + 0.025, top - 2.93)  # ...and adds its output back to it
    ax.plot([stream, stream], [10.9, 2.75], color="tab:blue", linewidth=2.5, zorder=1)
    arrow(stream, 2.9, stream, 2.62)
    ax.text(stream - 0.03, 6.9, "x: the residual stream", rotation=90, ha="center", va="center", fontsize=10,
            color="tab:blue")
    ax.add_patch(plt.Rectangle((0.03, 3.05), 0.955, 7.35, fill=False, linestyle="--", edgecolor="tab:blue"))
    ax.text(0.985, 10.47, f"x {c.n_layer} blocks: each adds its attention's and its MLP's output to the stream",
            ha="right", va="bottom", color="tab:blue", fontsize=10)
    box("ln_f", 0.05, 0.97, 2.3)
    box("lm_head: logits", 0.05, 0.97, 1.3)
    arrow(0.5, 1.98, 0.5, 1.62)
    ax.set_xlim(0, 1)
    ax.set_ylim(0.7, 13.6)
    ax.axis("off")
    ax.set_title(f"GPT with B={batch} sequences of T={T} tokens: C={c.n_embd} channels, {c.n_head} heads, "
                 f"V={c.vocab_size:,} ids", fontsize=11)
    return fig
