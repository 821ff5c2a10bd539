"""The shared training loop: which epoch's weights it keeps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trajcast_engine.train.loop import TrainSettings, train


class Line(nn.Module):
    """y = w x + b, with the ``kind`` and ``config`` a model file records."""

    kind = "line"

    class config:  # noqa: N801 - stands in for a model's config object
        @staticmethod
        def to_dict() -> dict:
            return {}

    def __init__(self) -> None:
        super().__init__()
        self.fit = nn.Linear(1, 1)
        with torch.no_grad():
            self.fit.weight.fill_(0.0)
            self.fit.bias.fill_(0.0)


def batches(data, size, rng):
    order = range(len(data)) if rng is None else rng.permutation(len(data))
    order = list(order)
    for start in range(0, len(data), size):
        yield [data[k] for k in order[start : start + size]]


def losses(model, chosen):
    """``loss`` falls as the line fits y = 2x; ``drift`` (the weight's distance from its
    start) rises with every step: the two metrics pick opposite epochs."""
    x = torch.tensor([[c] for c in chosen])
    loss = (model.fit(x) - 2 * x).pow(2).mean()
    drift = model.fit.weight.abs().sum() + 0 * loss
    return {"loss": loss, "drift": drift, "count": torch.tensor(len(chosen))}


DATA = [0.1 * k for k in range(1, 21)]


def run(tmp_path, name, resume=False, **options):
    settings = TrainSettings(epochs=6, batch_size=5, learning_rate=0.05, **options)
    return train(Line(), DATA[:16], DATA[16:], batches, losses, settings, {},
                 checkpoint=tmp_path / name, resume=resume)  # fmt: skip


def test_the_best_epoch_is_chosen_by_select_by(tmp_path):
    history, best = run(tmp_path, "loss.pt")
    losses_seen = [row["val_loss"] for row in history]
    assert len(history) == 6 and losses_seen == sorted(losses_seen, reverse=True)
    assert best["loss"] == losses_seen[-1]  # the default: the lowest validation loss

    history, best = run(tmp_path, "drift.pt", select_by="drift", early_stopping=2)
    # drift only grows: epoch 0 stays best, and early stopping counts on drift too
    assert len(history) == 3
    assert best["drift"] == history[0]["val_drift"] < history[-1]["val_drift"]
    saved = torch.load(tmp_path / "drift.pt.state", weights_only=True)
    assert saved["select_by"] == "drift" and saved["best_loss"] == best["drift"]


def test_a_bad_select_by_fails_before_training_and_resume_keeps_it(tmp_path):
    with pytest.raises(ValueError, match="'forces' is not a validation metric.*drift, loss"):
        run(tmp_path, "bad.pt", select_by="forces")
    assert not (tmp_path / "bad.pt.state").exists()
    run(tmp_path, "a.pt", select_by="drift")
    with pytest.raises(ValueError, match="chose its best model by 'drift'"):
        run(tmp_path, "a.pt", resume=True)
