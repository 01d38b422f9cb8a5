"""Training and evaluation loops shared by the flow stages (deterministic, CPU)."""

from __future__ import annotations

import logging
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from dbpim.model import limits
from dbpim.model._check import check_float, check_int
from dbpim.model.torch.data import loader
from dbpim.model.torch.prune import enforce_masks

__all__ = ["set_determinism", "train", "evaluate", "recalibrate_bn", "check_epochs", "check_lr", "check_batch_size",
           "check_seed", "EPOCHS_MAX", "LR_MAX", "BATCH_SIZE_MAX", "SEED_MAX"]

log = logging.getLogger(__name__)


def set_determinism(seed: int, threads: int = 2) -> None:
    """Seed torch, use deterministic algorithms, cap intra-op threads (``threads`` in [1, 1024])."""
    seed = check_seed(seed)
    threads = check_int("threads", threads, 1, 1024)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(max(1, min(threads, torch.get_num_threads())))


#: Ranges of the training options, written once (the library refuses anything else with one line naming
#: the field): epochs may be fractional (0 = no training); a learning rate above 10 or a batch above
#: 65536 samples is a typo, not a setting; seeds are the 32-bit seeds NumPy and torch share.
#: Their home is :mod:`model.limits` (the command line's option types read the same ranges).
EPOCHS_MAX = limits.EPOCHS.hi
LR_MAX = limits.LR.hi
BATCH_SIZE_MAX = limits.BATCH_SIZE.hi
SEED_MAX = limits.SEED.hi


def check_epochs(name: str, v) -> float:
    """``v`` (``epochs``, ``finetune_epochs``, ...) as a float in ``[0, EPOCHS_MAX]``, else ValueError."""
    return check_float(name, v, 0, EPOCHS_MAX)


def check_lr(name: str, v) -> float:
    """A learning rate: a finite number in ``(0, LR_MAX]``, else ValueError naming ``name``."""
    return check_float(name, v, 0, LR_MAX, lo_open=True)


def check_batch_size(v, name: str = "batch_size") -> int:
    """An integer in ``[1, BATCH_SIZE_MAX]``, else ValueError naming ``name``."""
    return check_int(name, v, 1, BATCH_SIZE_MAX)


def check_seed(v, name: str = "seed") -> int:
    """An integer in ``[0, SEED_MAX]``, else ValueError naming ``name``."""
    return check_int(name, v, 0, SEED_MAX)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: float, lr: float = 1e-3,
          batch_size: int = 64, seed: int = 0, weight_decay: float = 0.0, progress: bool = False,
          desc: str = "train", loss=F.cross_entropy) -> nn.Module:
    """Adam with cosine learning-rate decay for ``epochs`` epochs (fractions allowed).

    ``loss(model(xb), yb)`` is minimised (cross-entropy on class labels by
    default; distillation passes the teacher's outputs as ``y``). Pruned
    weights are re-zeroed after every step (:func:`enforce_masks`).
    With ``progress``, a progress bar is drawn on stderr when it is a terminal
    (never into a pipe, a file or a test log). Every epoch (and the last,
    partial one) is logged at INFO: ``<desc>: epoch 3/15, mean loss 0.214, 2.1 s``.
    """
    epochs, lr = check_epochs("epochs", epochs), check_lr("lr", lr)
    batch_size, seed = check_batch_size(batch_size), check_seed(seed)
    check_float("weight_decay", weight_decay, 0, 1)
    if epochs == 0:
        return model
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    dl = loader(x, y, batch_size, shuffle=True, seed=seed)
    steps = max(1, int(math.ceil(epochs * len(dl))))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc=desc, leave=False, disable=None)  # None: only on a terminal
    model.train()
    step = 0
    n_epochs = math.ceil(steps / len(dl))
    loss_sum, n_loss, t_epoch = 0.0, 0, time.perf_counter()
    while step < steps:
        for xb, yb in dl:
            lv = loss(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            lv.backward()
            opt.step()
            sched.step()
            enforce_masks(model)
            step += 1
            loss_sum, n_loss = loss_sum + float(lv.detach()), n_loss + 1
            if step % len(dl) == 0 or step >= steps:
                log.info("%s: epoch %d/%d, mean loss %.4f, %.1f s", desc, math.ceil(step / len(dl)), n_epochs,
                         loss_sum / n_loss, time.perf_counter() - t_epoch)
                loss_sum, n_loss, t_epoch = 0.0, 0, time.perf_counter()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{lv.item():.3f}")
            if step >= steps:
                break
    if bar is not None:
        bar.close()
    recalibrate_bn(model, x, batch_size)
    model.eval()
    return model


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int = 64, max_samples: int = 2048) -> None:
    """Re-estimate BatchNorm running statistics with the final weights.

    Short schedules leave the EMA running statistics behind the weights (a
    large train/eval gap); this resets them and accumulates the exact average
    (momentum None) over up to ``max_samples`` training samples. No-op
    without BatchNorm.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, min(len(x), max_samples), batch_size):
        model(x[i:i + batch_size])
    for m, mo in zip(bns, saved):
        m.momentum = mo
    model.eval()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return correct / max(1, len(x))
