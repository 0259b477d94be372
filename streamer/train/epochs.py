"""What every training run here shares: each epoch's batches, the rate at the run's progress, and checkpoints that
a kill never leaves half written."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from streamer.train.schedule import warmup_cosine


def epoch_loader(dataset: Dataset, batch: int, workers: int, seed: int, epoch: int, **options) -> DataLoader:
    """The epoch's batches: the dataset composes the epoch's own samples (``dataset.epoch``), in an order drawn from
    the seed and the epoch, so that a resumed run sees what it would have seen."""
    dataset.epoch = epoch
    order = torch.Generator().manual_seed(seed * 100003 + epoch)
    return DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers, generator=order,
                      **options)


def scheduled_rate(optimizer: torch.optim.Optimizer, peak: float, progress: float) -> float:
    """Sets every group of ``optimizer`` to ``warmup_cosine(peak, progress)``, and returns that rate."""
    lr = warmup_cosine(peak, progress)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def save_checkpoint(state: dict, path: Path) -> Path:
    """``state`` written to ``path`` through a temporary file: a kill mid-write leaves the previous checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, str(tmp))
    tmp.replace(path)
    return path


def descend(optimizer: torch.optim.Optimizer, terms: dict[str, torch.Tensor], sums: dict[str, float]) -> None:
    """One optimizer step down ``terms["loss"]``; each term's value added to ``sums`` (the epoch's running totals)."""
    optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    optimizer.step()
    for key, value in terms.items():
        sums[key] = sums.get(key, 0.0) + float(value.detach())


def freeze_early(net: torch.nn.Module, share: float) -> None:
    """Freezes the first ``share`` of ``net``'s trainable weights, in the order the graph uses them."""
    ordered = net.weights_in_use_order()
    for weight in ordered[:int(round(share * len(ordered)))]:
        weight.requires_grad_(False)
