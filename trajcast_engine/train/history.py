"""The per-epoch training log: a CSV file and a learning-curve plot."""

from __future__ import annotations

import os
from pathlib import Path


def write_history(history: list[dict[str, float]], path: str | os.PathLike) -> None:
    """Write the per-epoch rows as CSV (one header of every key, rows in epoch order),
    replacing ``path`` atomically so a reader never sees half a file."""
    keys = list(dict.fromkeys(k for row in history for k in row))
    lines = [",".join(keys)]
    lines += [",".join(f"{row[k]:.8g}" if isinstance(row.get(k), float) else str(row.get(k, ""))
                       for k in keys) for row in history]  # fmt: skip
    temporary = Path(str(path) + ".tmp")
    temporary.write_text("\n".join(lines) + "\n")
    os.replace(temporary, path)


def plot_history(history: list[dict[str, float]], path: str | os.PathLike) -> Path:
    """Draw training and validation loss against epoch (log scale) with the learning rate
    on a second axis; the best validation epoch is marked. Returns the written path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] + 1 for row in history]
    validation = [row["val_loss"] for row in history]
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.plot(epochs, [row["train_loss"] for row in history], "o-", ms=3, label="training")
    ax.plot(epochs, validation, "s-", ms=3, label="validation")
    best = min(range(len(history)), key=validation.__getitem__)
    ax.plot([epochs[best]], [validation[best]], "k*", ms=12, label=f"best (epoch {epochs[best]})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    rate = ax.twinx()
    rate.plot(epochs, [row["lr"] for row in history], color="0.6", lw=1, ls="--")
    rate.set_yscale("log")
    rate.set_ylabel("learning rate (dashed)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
