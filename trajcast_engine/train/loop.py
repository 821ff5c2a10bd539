"""The one training loop shared by the potential and the forecaster.

Adam (Kingma & Ba, ICLR 2015), by default its AMSGrad variant (``amsgrad``; Reddi, Kale
& Kumar, ICLR 2018), with gradient-norm clipping, the
learning rate reduced by ``lr_factor`` after ``lr_patience`` epochs without validation
improvement, early stopping after ``early_stopping`` such epochs, and an exponential
moving average of the weights (``ema_decay``; 0 turns it off) that is what gets
validated and saved: ``θ_ema <- d θ_ema + (1 - d) θ`` after every optimiser step.

Data parallel: launched by ``torchrun`` (``WORLD_SIZE`` > 1), every process draws the
same global batches, computes the loss of its share (``batch[rank::world]``) and the
gradients are averaged over processes with ``torch.distributed.all_reduce`` before each
step (gloo on CPU, NCCL on CUDA), so with equal shares the update equals the one-process
update on the same global batch; rank 0 writes the checkpoints. The best model is the one
with the lowest validation ``select_by`` metric (by default the loss; a forecaster trained
with position noise is better chosen by ``velocity_relative``, since its validation loss
is dominated by a displacement term the noise holds fixed); the same metric drives the
learning-rate schedule and early stopping. It is written to ``checkpoint`` and the latest
to ``checkpoint`` with a ``.last`` suffix, both as ordinary model files (:class:`RunFiles`
names every file a run writes); ``.state`` holds what a resumed run needs to continue
exactly as an uninterrupted one would (weights, optimiser, scheduler, weight average,
random-generator states, history, a loss's running state); ``.csv`` the per-epoch log
(losses, validation errors, learning rate, elapsed seconds), rewritten after every epoch
so that it always matches the state a resumed run starts from.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trajcast_engine.nn.model_io import save_model
from trajcast_engine.progress import progress_bar
from trajcast_engine.train.history import write_history


@dataclass
class TrainSettings:
    """Optimisation settings common to every model type."""

    epochs: int = 200
    batch_size: int = 4
    learning_rate: float = 5e-3
    validation_fraction: float = 0.1
    lr_factor: float = 0.8
    lr_patience: int = 10
    early_stopping: int = 40
    max_grad_norm: float = 10.0
    ema_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    max_seconds: float | None = None  # stop (keeping the best model) after this long
    amsgrad: bool = True  # False: plain Adam
    select_by: str = "loss"  # validation metric that picks the best model (lower is better)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "lr_patience", "early_stopping"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass(frozen=True)
class RunFiles:
    """The files a training run writes beside its model file ``best``."""

    best: Path
    last: Path  # the latest epoch's model
    state: Path  # what ``resume`` continues from
    log: Path  # per-epoch CSV
    curve: Path  # learning-curve plot

    @classmethod
    def of(cls, checkpoint: str | Path) -> RunFiles:
        """The run files of a model written to ``checkpoint``."""
        name = str(checkpoint)
        paths = (Path(name + suffix) for suffix in (".last", ".state", ".csv", ".png"))
        return cls(Path(checkpoint), *paths)


Batches = Callable[[list, int, "np.random.Generator | None"], Iterable[Any]]
Losses = Callable[[nn.Module, Any], dict[str, torch.Tensor]]


class WeightAverage:
    """Exponential moving average of a model's floating-point parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                self.shadow[key].mul_(self.decay).add_(value.detach(), alpha=1 - self.decay)
            else:
                self.shadow[key].copy_(value)


def evaluate_batches(
    model: nn.Module, data: list, batches: Batches, losses: Losses, batch_size: int
) -> dict[str, float]:
    """Mean of every loss term over ``data``, weighted by examples per batch."""
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    for batch in batches(data, batch_size, None):
        terms = losses(model, batch)
        n = int(terms.pop("count"))
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach()) * n
        count += n
    return {key: value / count for key, value in sums.items()}


def train(
    model: nn.Module,
    training: list,
    validation: list,
    batches: Batches,
    losses: Losses,
    settings: TrainSettings,
    metadata: dict[str, Any],
    checkpoint: str | os.PathLike | None = None,
    log: Callable[[dict[str, float]], None] | None = None,
    resume: bool = False,
    progress: bool = False,
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Optimise ``model`` in place (ending with the best weights, in eval mode); returns
    the per-epoch history and the best validation metrics. ``losses(model, batch)``
    returns the loss terms (``loss`` is minimised) and ``count``, the batch's examples.
    ``resume=True`` continues from ``checkpoint.state`` when it exists. ``progress``
    shows a bar over each epoch's batches (rank 0 only) with the running training loss.
    A loss that carries state between batches keeps it in a dict ``losses.state``
    (tensors), which the training state saves and a resumed run restores."""
    rng = np.random.default_rng(settings.seed)
    rank, world = distributed_setup(settings.device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.learning_rate, amsgrad=bool(settings.amsgrad)
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=settings.lr_factor, patience=settings.lr_patience
    )
    ema = WeightAverage(model, settings.ema_decay) if settings.ema_decay > 0 else None
    files = None if checkpoint is None else RunFiles.of(checkpoint)
    written = files if rank == 0 else None  # every rank reads a resumed state; rank 0 writes
    best_loss, best_state, best_metrics, stale = math.inf, None, {}, 0
    history: list[dict[str, float]] = []
    first_epoch = 0
    if resume:
        if files is None:
            raise ValueError("resume needs the checkpoint whose training state to continue")
        if not files.state.is_file():
            raise FileNotFoundError(f"nothing to resume: {files.state} does not exist")
        saved = torch.load(files.state, map_location="cpu", weights_only=True)
        if saved.get("kind") != getattr(model, "kind", None):
            raise ValueError(
                f"{files.state} is a training state of a {saved.get('kind')}, not of a "
                f"{getattr(model, 'kind', type(model).__name__)}"
            )
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if ema is not None:
            ema.shadow = saved["ema"]
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        if getattr(losses, "state", None) is not None:
            losses.state.update(saved.get("loss_state") or {})
        best_loss, best_metrics, stale = saved["best_loss"], saved["best_metrics"], saved["stale"]
        best_state, history = saved["best_state"], saved["history"]
        chosen_by = saved.get("select_by", "loss")  # states written before select_by: loss
        if chosen_by != settings.select_by:
            raise ValueError(
                f"{files.state} chose its best model by {chosen_by!r}; "
                f"resume it with the same select_by (got {settings.select_by!r})"
            )
        first_epoch = saved["epoch"] + 1
    _check_select_by(model, validation, batches, losses, settings.select_by)
    start = time.monotonic() - (history[-1]["seconds"] if history else 0.0)
    per_epoch = math.ceil(len(training) / settings.batch_size)
    for epoch in range(first_epoch, settings.epochs):
        model.train()
        train_loss, seen = 0.0, 0
        bar = None
        if progress and rank == 0:
            bar = progress_bar(per_epoch, f"epoch {epoch + 1}/{settings.epochs}", "batch")
        for batch in batches(training, settings.batch_size, rng):
            optimizer.zero_grad(set_to_none=False)
            if world > 1:
                batch = batch[rank::world]
            if len(batch):
                terms = losses(model, batch)
                terms["loss"].backward()
            else:  # a short last batch: this process contributes zero gradients
                terms = {"loss": torch.zeros(()), "count": torch.tensor(0)}
            if world > 1:
                _average_gradients(model, world)
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            if ema is not None:
                ema.update(model)
            n = int(terms["count"])
            train_loss += float(terms["loss"].detach()) * n
            seen += n
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"loss {train_loss / max(seen, 1):.4g}", refresh=False)
        if bar is not None:
            bar.close()
        live = copy.deepcopy(model.state_dict()) if ema is not None else None
        if ema is not None:
            model.load_state_dict(ema.shadow)
        metrics = evaluate_batches(model, validation, batches, losses, settings.batch_size)
        score = metrics[settings.select_by]
        scheduler.step(score)
        row = {"epoch": epoch, "train_loss": train_loss / max(seen, 1), "train_examples": seen}
        row["lr"] = optimizer.param_groups[0]["lr"]
        row["seconds"] = time.monotonic() - start
        row.update({f"val_{k}": v for k, v in metrics.items()})
        history.append(row)
        if written is not None:
            write_history(history, written.log)
        if log is not None:
            log(row)
        info = {**metadata, "validation": metrics, "epoch": epoch}
        if score < best_loss:
            best_loss, best_metrics, stale = score, metrics, 0
            best_state = copy.deepcopy(model.state_dict())
            if written is not None:
                save_model(model, written.best, info)
        else:
            stale += 1
        if written is not None:
            save_model(model, written.last, info)
        if live is not None:
            model.load_state_dict(live)
        if written is not None:
            _save_state(written.state, model, optimizer, scheduler, ema, rng, epoch, best_loss,
                        best_metrics, stale, best_state, history, settings.select_by,
                        getattr(losses, "state", None))  # fmt: skip
        out_of_time = settings.max_seconds and time.monotonic() - start > settings.max_seconds
        if stale >= settings.early_stopping or out_of_time:
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return history, best_metrics


def _check_select_by(model: nn.Module, validation: list, batches: Batches, losses: Losses,
                     select_by: str) -> None:  # fmt: skip
    """Fail before the first epoch when ``select_by`` names no validation metric (the
    metric names are those the loss function returns, read off one validation example;
    each epoch puts the model back in training mode)."""
    if select_by == "loss":
        return
    names = evaluate_batches(model, validation[:1], batches, losses, 1)
    if select_by not in names:
        raise ValueError(
            f"select_by {select_by!r} is not a validation metric; choose one of: "
            f"{', '.join(sorted(names))}"
        )


def _save_state(path, model, optimizer, scheduler, ema, rng, epoch, best_loss, best_metrics,
                stale, best_state, history, select_by, loss_state=None) -> None:  # fmt: skip
    """Everything a resumed run needs, written atomically (plain tensors and numbers)."""
    state = {
        "kind": getattr(model, "kind", None),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "ema": None if ema is None else ema.shadow,
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "epoch": epoch,
        "best_loss": best_loss,  # of the select_by metric
        "select_by": select_by,
        "best_metrics": best_metrics,
        "stale": stale,
        "best_state": best_state,
        "history": history,
        "loss_state": None if loss_state is None else dict(loss_state),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def save_final_model(model: nn.Module, checkpoint: str | os.PathLike | None, device: str) -> None:
    """Write the trained ``model`` (with its ``metadata``) to ``checkpoint`` from rank 0
    only: every rank holds the same weights after :func:`train`, and two ranks writing
    one file race on its atomic rename."""
    if checkpoint is not None and distributed_setup(device)[0] == 0:
        save_model(model, Path(checkpoint), model.metadata)


def distributed_setup(device: str) -> tuple[int, int]:
    """``(rank, world size)``; joins the process group ``torchrun`` describes."""
    import os as _os

    world = int(_os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _average_gradients(model: nn.Module, world: int) -> None:
    import torch.distributed as dist

    for p in model.parameters():
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad /= world
